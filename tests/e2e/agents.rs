//! The SDK's example agents: rebuilt from source, they stay under the size cap and
//! behave exactly like the committed copies in fixtures/agents/.

use crate::support::{code, fixture, json, root, tdev, tdev_stdin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const AGENTS: [&str; 10] = [
    "empty", "echo", "wc", "sort", "rle", "gcd", "divide", "ping", "pong", "greet",
];

/// Builds the examples once for wasm32 with the `agent` profile; returns their folder.
fn rebuilt() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"));
        let wasm = ["--target", "wasm32-unknown-unknown", "--profile", "agent"];
        for extra in [
            &["--examples"][..],
            &["--example", "greet", "--features", "fmt,alloc"],
            &["--example", "divide", "--features", "panic-message"],
        ] {
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-p", "agent-sdk"])
                .args(extra)
                .args(wasm)
                .current_dir(root())
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .expect("cargo");
            assert!(
                out.status.success(),
                "building the agents failed (is the wasm32-unknown-unknown target installed?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        target.join("wasm32-unknown-unknown/agent/examples")
    })
}

/// (committed, rebuilt) paths of an agent.
fn both(name: &str) -> [String; 2] {
    [
        fixture(&format!("agents/{name}.wasm"))
            .to_string_lossy()
            .into_owned(),
        rebuilt()
            .join(format!("{name}.wasm"))
            .to_string_lossy()
            .into_owned(),
    ]
}

#[test]
fn rebuilt_agents_fit_the_caps() {
    for name in AGENTS {
        for path in both(name) {
            let size = std::fs::metadata(&path).expect("agent").len();
            assert!(size <= 6656, "{path}: {size} bytes");
            if name == "empty" {
                assert!(size <= 300, "empty agent is {size} bytes");
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let v = json(&tdev(dir.path(), &["validate", &path, "--json"]), &path);
            assert_eq!(v["admitted"], true, "{path}: {v}");
            assert_eq!(v["findings"], serde_json::json!([]), "{path}");
        }
    }
}

fn run_bytes(path: &str, input: &[u8]) -> (String, i64, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tdev_stdin(dir.path(), &["run", path, "--input", "-", "--json"], input);
    code(&out, path);
    let r = json(&out, path);
    let bytes = runtime::from_hex(r["output_hex"].as_str().expect("hex")).expect("hex");
    (
        r["outcome"].as_str().expect("outcome").to_string(),
        r["result"].as_i64().unwrap_or(-999),
        bytes,
    )
}

#[test]
fn bytes_agents_do_their_work_in_both_builds() {
    let text = b"the quick brown fox\njumps over\n\nthe lazy dog\n";
    for path in both("echo") {
        assert_eq!(run_bytes(&path, text), ("ok".into(), 0, text.to_vec()));
        let big = vec![b'x'; 20_000];
        assert_eq!(run_bytes(&path, &big).2, big);
    }
    for path in both("greet") {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = tdev_stdin(
            dir.path(),
            &["run", &path, "--input", "-", "--json"],
            b"agents",
        );
        let r = json(&out, &path);
        assert_eq!(r["output_hex"], runtime::to_hex(b"hello, agents!"));
        assert_eq!(r["logs"], serde_json::json!(["input of 6 bytes"]));
    }
    for path in both("empty") {
        assert_eq!(run_bytes(&path, b"ignored"), ("ok".into(), 0, vec![]));
    }
    for path in both("wc") {
        assert_eq!(run_bytes(&path, text).2, b"4 9 45\n");
        assert_eq!(run_bytes(&path, b"").2, b"0 0 0\n");
    }
    for path in both("sort") {
        assert_eq!(run_bytes(&path, b"sandbox").2, b"abdnosx");
        let mut all: Vec<u8> = (0..=255u8).rev().collect();
        let out = run_bytes(&path, &all).2;
        all.sort();
        assert_eq!(out, all);
    }
    for path in both("rle") {
        let (_, status, enc) = run_bytes(&path, b"eaaaabbbcd");
        assert_eq!(status, 0);
        assert_eq!(enc, [4, b'a', 3, b'b', 1, b'c', 1, b'd']);
        let long = vec![b'z'; 600];
        let (_, _, enc) = run_bytes(&path, &[b"e".as_slice(), &long].concat());
        assert_eq!(enc, [255, b'z', 255, b'z', 90, b'z']);
        let (_, status, dec) = run_bytes(&path, &[b"d".as_slice(), &enc].concat());
        assert_eq!((status, dec), (0, long));
        assert_eq!(run_bytes(&path, b"d\x03").1, 2, "odd-length encoding");
        assert_eq!(run_bytes(&path, b"x").1, 1, "unknown mode");
    }
}

#[test]
fn typed_agent_in_both_builds() {
    for path in both("gcd") {
        let dir = tempfile::tempdir().expect("tempdir");
        for (args, want) in [("12,18", 6), ("-48,18", 6), ("17,5", 1), ("0,9", 9)] {
            let r = json(
                &tdev(dir.path(), &["run", &path, "--args", args, "--json"]),
                args,
            );
            assert_eq!(r["outcome"], "ok");
            assert_eq!(r["result"], want, "gcd({args})");
        }
    }
}

#[test]
fn a_panic_in_an_agent_is_a_trap() {
    for path in both("divide") {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = json(
            &tdev(dir.path(), &["run", &path, "--args", "42,5", "--json"]),
            "ok",
        );
        assert_eq!(r["result"], 8);
        let out = tdev(dir.path(), &["run", &path, "--args", "1,0", "--json"]);
        assert_eq!(code(&out, "panic"), 4);
        let r = json(&out, "panic");
        assert_eq!(r["outcome"], "unreachable");
        assert_eq!(r["quarantined"], false);
        // the panic handler logged where and why (feature panic-message)
        assert_eq!(
            r["logs"],
            serde_json::json!([
                "panicked at agent-sdk/examples/divide.rs:10: division by zero or overflow"
            ]),
            "{path}: {r}"
        );
        let text = tdev(dir.path(), &["run", &path, "--args", "1,0"]);
        assert!(
            String::from_utf8_lossy(&text.stdout)
                .contains("log:        panicked at agent-sdk/examples/divide.rs:10"),
            "{}",
            String::from_utf8_lossy(&text.stdout)
        );
    }
}

#[test]
fn ping_and_pong_talk_to_completion() {
    let [ping, ping2] = both("ping");
    let [pong, pong2] = both("pong");
    for (ping, pong) in [(&ping, &pong), (&ping2, &pong2)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("n");
        std::fs::write(&input, "4").expect("input");
        let out = tdev(
            dir.path(),
            &[
                "run",
                ping,
                "--peer",
                pong,
                "--input",
                input.to_str().expect("p"),
                "--json",
            ],
        );
        assert_eq!(
            code(&out, "ping"),
            0,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = json(&out, "ping");
        assert_eq!(r["outcome"], "ok");
        assert_eq!(r["quiescent"], true);
        assert_eq!(r["messages_sent"], 4);
        assert_eq!(r["messages_received"], 4);
        assert_eq!(r["output_hex"], runtime::to_hex(b"done after 4 pongs\n"));
        assert_eq!(r["peers"][0]["name"], "pong");
        assert_eq!(r["peers"][0]["outcome"], "ok");
        assert_eq!(r["peers"][0]["messages_received"], 4);
        assert_eq!(r["rounds"], 9);
    }
}
