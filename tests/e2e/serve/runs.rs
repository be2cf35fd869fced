//! How the server runs agents: one instantiation per request (a start function runs
//! once), and agent threads whose stacks fit the policy's Wasm stack.

use super::{auth, http, json, serve, wasm};
use crate::support::{fixture, tdev, write};
use std::time::Duration;

/// A module whose start function spins until the wall clock or a stop ends it.
const SPINNING_START: &str = r#"(module
  (func $spin (local $i i64)
    (loop $l
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l)))
  (start $spin)
  (func (export "act") (result i32) i32.const 0))"#;

#[test]
fn a_start_function_runs_once_per_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slow = write(
        dir.path(),
        "slow.toml",
        "[limits]\nfuel_per_call = 1000000000000000\nwall_clock_ms = 8000\n",
    );
    let s = serve(&["--max-runs", "1", "--policy", slow.to_str().expect("p")]);
    let module = wat::parse_str(SPINNING_START).expect("wat");
    let spinning = {
        let a = s.addr.clone();
        std::thread::spawn(move || {
            let au = auth();
            // the probes below may hold the one run place for a moment: retry on 503
            loop {
                let r = http(
                    &a,
                    "POST",
                    "/v1/run",
                    &[
                        ("Authorization", au.as_str()),
                        ("Content-Type", "application/wasm"),
                    ],
                    &module,
                );
                if r.0 != 503 {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // wait until the spinning run holds the one run place (a probe is refused), then
    // give it time to instantiate
    let au = auth();
    let h = [
        ("Authorization", au.as_str()),
        ("Content-Type", "application/wasm"),
    ];
    let add = wasm("agents/add.wat");
    let mut held = false;
    for _ in 0..500 {
        if http(&s.addr, "POST", "/v1/run?args=1,2", &h, &add).0 == 503 {
            held = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(held, "the spinning run never took the run place");
    std::thread::sleep(Duration::from_millis(700));
    let v = json(
        &http(
            &s.addr,
            "POST",
            "/v1/emergency-stop",
            &[("Authorization", au.as_str())],
            b"",
        )
        .2,
    );
    assert_eq!(v["stopped"], true);
    // The stop interrupts the one instantiation there is, so the run ends with
    // emergency_stop. Were the module instantiated twice (once to time it, once to
    // run it), the stop would end the first and the second would spin on to its
    // deadline.
    let (st, _, body) = spinning.join().expect("run thread");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let r = json(&body);
    assert_eq!(r["outcome"], "emergency_stop", "{r}");
}

/// The largest `limits.stack_bytes` that `tdev run` takes (it refuses the others with
/// exit 1: the policy loader or the sandbox), of the values worth trying.
fn largest_stack_accepted(dir: &std::path::Path) -> u64 {
    for mib in [16u64, 8, 4, 3, 2] {
        let bytes = mib << 20;
        let p = write(
            dir,
            &format!("stack{mib}.toml"),
            &format!("[limits]\nstack_bytes = {bytes}\nfuel_per_call = 1000000000000\n"),
        );
        let out = tdev(
            dir,
            &[
                "run",
                fixture("agents/add.wat").to_str().expect("path"),
                "--args",
                "1,2",
                "--policy",
                p.to_str().expect("path"),
            ],
        );
        if out.status.code() == Some(0) {
            return bytes;
        }
    }
    panic!("no stack size from 2 MiB up is accepted");
}

#[test]
fn deep_recursion_under_the_largest_stack_the_policy_allows_is_a_stack_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = largest_stack_accepted(dir.path());
    let policy = write(
        dir.path(),
        "big_stack.toml",
        &format!("[limits]\nstack_bytes = {bytes}\nfuel_per_call = 1000000000000\n"),
    );
    let mut s = serve(&["--policy", policy.to_str().expect("p")]);
    let au = auth();
    let h = [
        ("Authorization", au.as_str()),
        ("Content-Type", "application/wasm"),
    ];
    for module in ["hostile/deep_recursion.wat", "hostile/mutual_recursion.wat"] {
        let path = if module.contains("deep") {
            "/v1/run?args=1"
        } else {
            "/v1/run"
        };
        let (st, _, body) = http(&s.addr, "POST", path, &h, &wasm(module));
        assert_eq!(
            st,
            200,
            "{module} under {bytes} bytes: {}",
            String::from_utf8_lossy(&body)
        );
        let v = json(&body);
        assert_eq!(v["outcome"], "stack_overflow", "{module}: {v}");
        assert!(
            s.alive(),
            "the server died of {module} under {bytes} bytes of stack"
        );
    }
    // and it goes on serving
    let v = json(
        &http(
            &s.addr,
            "POST",
            "/v1/run?args=2,3",
            &h,
            &wasm("agents/add.wat"),
        )
        .2,
    );
    assert_eq!(v["result"], 5);
    assert_eq!(http(&s.addr, "GET", "/v1/healthz", &[], b"").0, 200);
    assert!(s.alive());
}
