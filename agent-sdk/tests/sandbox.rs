//! The SDK held against the runtime: its ABI constants are the runtime's, and every
//! example, built for wasm32 with the `agent` profile and run in the sandbox, gives the
//! same status, output and logs as its source run natively on the in-memory host
//! ([`agent_sdk::testing`]).
//!
//! The examples' sources are compiled here for the in-memory host (`act!` makes a
//! plain `pub fn act` off wasm32); their `#![no_std]` is a crate attribute, idle in a
//! module.

#![allow(unused_attributes)]

use agent_sdk::testing::{self, Host};
use runtime::{Admission, Agent, Input, Member, Outcome, Policy, RunResult, Sandbox, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

#[path = "../examples/divide.rs"]
mod divide;
#[path = "../examples/echo.rs"]
mod echo;
#[path = "../examples/empty.rs"]
mod empty;
#[path = "../examples/gcd.rs"]
mod gcd;
#[path = "../examples/greet.rs"]
mod greet;
#[path = "../examples/ping.rs"]
mod ping;
#[path = "../examples/pong.rs"]
mod pong;
#[path = "../examples/rle.rs"]
mod rle;
#[path = "../examples/sort.rs"]
mod sort;
#[path = "../examples/wc.rs"]
mod wc;

#[test]
fn the_sdk_abi_is_the_runtime_abi() {
    use agent_sdk::abi as sdk;
    use runtime::abi as rt;
    assert_eq!(sdk::MODULE, rt::MODULE);
    assert_eq!(sdk::ACT, rt::ACT);
    assert_eq!(sdk::MEMORY, rt::MEMORY);
    let rt_functions: Vec<(&str, usize, usize)> = rt::HOST_FUNCTIONS
        .iter()
        .map(|f| (f.name, f.params, f.results))
        .collect();
    assert_eq!(sdk::HOST_FUNCTIONS.to_vec(), rt_functions);
    assert_eq!(
        [
            sdk::SEND_OK,
            sdk::SEND_UNKNOWN_RECIPIENT,
            sdk::SEND_MAILBOX_FULL,
            sdk::SEND_TOO_LARGE,
            sdk::RECV_NONE,
            sdk::RECV_TOO_SMALL,
        ],
        [
            rt::SEND_OK,
            rt::SEND_UNKNOWN_RECIPIENT,
            rt::SEND_MAILBOX_FULL,
            rt::SEND_TOO_LARGE,
            rt::RECV_NONE,
            rt::RECV_TOO_SMALL,
        ]
    );
}

/// Builds the examples for wasm32 with the `agent` profile, once, in this build's
/// target folder (as `tests/e2e/agents.rs` does); returns their folder.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR is inside the target folder")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let wasm = ["--target", "wasm32-unknown-unknown", "--profile", "agent"];
        for extra in [
            &["--examples"][..],
            &["--example", "greet", "--features", "fmt,alloc"],
            // its required feature: `--examples` leaves it out
            &["--example", "divide", "--features", "panic-message"],
        ] {
            let out = Command::new(&cargo)
                .args(["build", "-p", "agent-sdk"])
                .args(extra)
                .args(wasm)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .expect("cargo runs");
            assert!(
                out.status.success(),
                "building the examples failed (is the wasm32-unknown-unknown target installed?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        target.join("wasm32-unknown-unknown/agent/examples")
    })
}

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(Policy::default_policy()).expect("sandbox"))
}

/// The example `name` as built, admitted by the default policy (so its imports are
/// the runtime's ABI, with the runtime's types) and within the size cap.
fn agent(name: &str) -> Arc<Agent> {
    let path = built().join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).expect("built example");
    assert!(bytes.len() <= 6656, "{name}: {} bytes", bytes.len());
    match sandbox().admit(&bytes, false).expect("admit") {
        Admission::Admitted(agent) => agent,
        Admission::Rejected(v) => panic!("{name} rejected: {:?}", v.findings),
    }
}

/// What a bytes-form call shows.
#[derive(Debug, PartialEq)]
struct Seen {
    status: i32,
    output: Vec<u8>,
    logs: Vec<String>,
}

fn in_memory(act: fn() -> i32, input: &[u8]) -> Seen {
    testing::reset(input);
    let status = act();
    Seen {
        status,
        output: testing::output(),
        logs: testing::logs(),
    }
}

fn in_sandbox(name: &str, input: &[u8]) -> Seen {
    let agent = agent(name);
    let sb = sandbox();
    let r = sb
        .on_agent_thread(name, || sb.run(&agent, Input::Bytes(input.to_vec())))
        .expect("agent thread")
        .expect("run");
    assert_eq!(r.outcome, Outcome::Ok, "{name}: {:?}", r.trap_message);
    let Some(RunResult::Status(status)) = r.result else {
        panic!("{name}: {:?}", r.result)
    };
    assert_eq!(r.logs_dropped, 0);
    Seen {
        status,
        output: r.output,
        logs: r.logs,
    }
}

/// Runs `name` on `input` both ways; they must agree. Returns what was seen.
fn both(name: &str, act: fn() -> i32, input: &[u8]) -> Seen {
    let native = in_memory(act, input);
    assert_eq!(
        native,
        in_sandbox(name, input),
        "{name} on {:?}",
        runtime::escape_bytes(input)
    );
    native
}

fn ok(output: &[u8]) -> Seen {
    Seen {
        status: 0,
        output: output.to_vec(),
        logs: vec![],
    }
}

#[test]
fn bytes_examples_agree_with_the_sandbox() {
    let text = b"the quick brown fox\njumps over\n\nthe lazy dog\n";
    assert_eq!(both("empty", empty::act, b"ignored"), ok(b""));
    assert_eq!(both("echo", echo::act, text), ok(text));
    let big = vec![b'x'; 20_000];
    assert_eq!(both("echo", echo::act, &big), ok(&big));
    assert_eq!(both("wc", wc::act, text), ok(b"4 9 45\n"));
    assert_eq!(both("wc", wc::act, b""), ok(b"0 0 0\n"));
    assert_eq!(
        both("wc", wc::act, b"one two\nthree\n\n  four"),
        ok(b"3 4 21\n")
    );
    assert_eq!(both("sort", sort::act, b"banana"), ok(b"aaabnn"));
    let mut all: Vec<u8> = (0..=255u8).rev().collect();
    let sorted = both("sort", sort::act, &all).output;
    all.sort();
    assert_eq!(sorted, all);
    assert_eq!(
        both("greet", greet::act, b"world"),
        Seen {
            status: 0,
            output: b"hello, world!".to_vec(),
            logs: vec!["input of 5 bytes".into()],
        }
    );
}

#[test]
fn rle_agrees_with_the_sandbox() {
    assert_eq!(
        both("rle", rle::act, b"eaaaabbbcd"),
        ok(&[4, b'a', 3, b'b', 1, b'c', 1, b'd'])
    );
    let long = vec![b'z'; 600];
    let enc = both("rle", rle::act, &[b"e".as_slice(), &long].concat()).output;
    assert_eq!(enc, [255, b'z', 255, b'z', 90, b'z']);
    assert_eq!(
        both("rle", rle::act, &[b"d".as_slice(), &enc].concat()),
        ok(&long)
    );
    // An odd-length or zero-count encoding, an unknown mode, no mode at all.
    for (input, status) in [(&b"d\x03"[..], 2), (b"d\x00a", 2), (b"x", 1), (b"", 1)] {
        assert_eq!(both("rle", rle::act, input).status, status, "{input:?}");
    }
}

/// A typed call both ways: its value, or the outcome that ended it (a native panic is
/// the sandbox's `unreachable`).
fn typed(name: &str, act: fn(i64, i64) -> i64, a: i64, b: i64) -> Result<i64, Outcome> {
    let native = std::panic::catch_unwind(|| act(a, b)).map_err(|_| Outcome::Unreachable);
    let agent = agent(name);
    let sb = sandbox();
    let r = sb
        .on_agent_thread(name, || {
            sb.run(&agent, Input::Typed(vec![Value::I64(a), Value::I64(b)]))
        })
        .expect("agent thread")
        .expect("run");
    let sandboxed = match r.result {
        Some(RunResult::Value(Value::I64(v))) => Ok(v),
        _ => Err(r.outcome),
    };
    assert_eq!(native, sandboxed, "{name}({a}, {b})");
    native
}

#[test]
fn typed_examples_agree_with_the_sandbox() {
    for (a, b, want) in [
        (12, 18, 6),
        (-12, 18, 6),
        (-48, 18, 6),
        (7, 0, 7),
        (0, 0, 0),
    ] {
        assert_eq!(typed("gcd", gcd::act, a, b), Ok(want));
    }
    assert_eq!(typed("gcd", gcd::act, i64::MIN, 0), Ok(i64::MIN));
    assert_eq!(typed("divide", divide::act, 42, 5), Ok(8));
    assert_eq!(typed("divide", divide::act, -7, 2), Ok(-3));
    assert_eq!(
        typed("divide", divide::act, 1, 0),
        Err(Outcome::Unreachable)
    );
    assert_eq!(
        typed("divide", divide::act, i64::MIN, -1),
        Err(Outcome::Unreachable)
    );
}

/// A member of a native group run: its name, its `act` and its input.
type Player<'a> = (&'a str, fn() -> i32, &'a [u8]);

/// How a member of a group run fared: status, output, logs and calls.
type Fared = (i32, Vec<u8>, Vec<String>, u32);

/// A group run on the in-memory host, by the hub's rules: round 0 calls every
/// member, a later round those with mail; mail sent in a round is read from the next
/// one; the run ends when no mail is left or after `max_rounds`. Gives the rounds,
/// whether it ended without mail, and each member's [`Fared`].
fn group_in_memory(members: &[Player<'_>], max_rounds: u32) -> (u32, bool, Vec<Fared>) {
    let mut hosts: Vec<Host> = members
        .iter()
        .map(|(_, _, input)| {
            let mut host = Host::default();
            testing::with(&mut host, || {
                testing::reset(input);
                for (name, _, _) in members {
                    testing::add_peer(name);
                }
            });
            host
        })
        .collect();
    let mut fared: Vec<Fared> = vec![(0, vec![], vec![], 0); members.len()];
    let mut round = 0;
    let quiescent = loop {
        if round >= max_rounds {
            break false;
        }
        let mut mail = Vec::new();
        for (i, (_, act, _)) in members.iter().enumerate() {
            let host = &mut hosts[i];
            if round > 0 && testing::with(host, testing::pending) == 0 {
                continue;
            }
            fared[i].0 = testing::with(host, || {
                testing::rewind();
                act()
            });
            fared[i].3 += 1;
            mail.extend(testing::with(host, testing::take_sent));
        }
        for (to, msg) in mail {
            let j = members
                .iter()
                .position(|(name, _, _)| *name == to)
                .expect("a member");
            testing::with(&mut hosts[j], || testing::deliver(&msg));
        }
        round += 1;
        if hosts
            .iter_mut()
            .all(|h| testing::with(h, testing::pending) == 0)
        {
            break true;
        }
    };
    for (f, host) in fared.iter_mut().zip(&mut hosts) {
        (f.1, f.2) = testing::with(host, || (testing::output(), testing::logs()));
    }
    (round, quiescent, fared)
}

#[test]
fn ping_and_pong_agree_with_the_hub() {
    let members: [Player<'_>; 2] = [("ping", ping::act, b"2"), ("pong", pong::act, b"")];
    let sb = sandbox();
    let group = members
        .iter()
        .map(|(name, _, input)| Member {
            name: name.to_string(),
            agent: agent(name),
            input: input.to_vec(),
        })
        .collect();
    let g = sb
        .on_agent_thread("group", || sb.run_group(group))
        .expect("agent thread")
        .expect("group run");
    let sandboxed: Vec<Fared> = g
        .members
        .iter()
        .map(|m| {
            assert_eq!(m.report.outcome, Outcome::Ok, "{}", m.name);
            let Some(RunResult::Status(status)) = m.report.result else {
                panic!("{}: {:?}", m.name, m.report.result)
            };
            (
                status,
                m.report.output.clone(),
                m.report.logs.clone(),
                m.calls,
            )
        })
        .collect();
    let max_rounds = u32::try_from(sb.policy().limits.max_rounds).expect("max_rounds");
    // ping's `act` keeps a static: this is the only native run of it in this binary.
    let native = group_in_memory(&members, max_rounds);
    assert_eq!(native, (g.rounds, g.quiescent, sandboxed));
    assert!(native.1, "the game ends without mail left");
    assert_eq!(native.2[0].1, b"done after 2 pongs\n");
}
