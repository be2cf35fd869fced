//! How the server runs agents: one instantiation per request (a start function runs
//! once), agent threads whose stacks fit the policy's Wasm stack, the bound on runs in
//! progress, exact answers under load, and the emergency stop.

use super::{Server, TOKEN, call, http, json, ok_json, post_wasm, serve, serve_policy, wasm};
use crate::fixtures::is_right;
use crate::load::{Plan, drive, hostile_cases};
use crate::support::{fixture, tdev, write};
use std::time::Duration;

/// `tdev serve EXTRA…` under a policy of unbounded fuel and a wall clock of
/// `wall_ms`: a spinning module runs until its deadline or a stop. The folder holds
/// the policy.
fn serve_slow(wall_ms: u64, extra: &[&str]) -> (Server, tempfile::TempDir) {
    serve_policy(
        &format!("[limits]\nfuel_per_call = 1000000000000000\nwall_clock_ms = {wall_ms}\n"),
        extra,
    )
}

/// `POST /v1/run` of `module` on another thread.
fn run_in_background(
    addr: &str,
    module: Vec<u8>,
) -> std::thread::JoinHandle<(u16, String, Vec<u8>)> {
    let addr = addr.to_string();
    std::thread::spawn(move || post_wasm(&addr, "/v1/run", &module))
}

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
    let (s, _policy) = serve_slow(8000, &["--max-runs", "1"]);
    let module = wat::parse_str(SPINNING_START).expect("wat");
    let spinning = {
        let a = s.addr.clone();
        std::thread::spawn(move || {
            // the probes below may hold the one run place for a moment: retry on 503
            loop {
                let r = post_wasm(&a, "/v1/run", &module);
                if r.0 != 503 {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // wait until the spinning run holds the one run place (a probe is refused), then
    // give it time to instantiate
    let add = wasm("agents/add.wat");
    let mut held = false;
    for _ in 0..500 {
        if post_wasm(&s.addr, "/v1/run?args=1,2", &add).0 == 503 {
            held = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(held, "the spinning run never took the run place");
    std::thread::sleep(Duration::from_millis(700));
    let v = ok_json(call(&s.addr, "POST", "/v1/emergency-stop"));
    assert_eq!(v["stopped"], true);
    // The stop interrupts the one instantiation there is, so the run ends with
    // emergency_stop. Were the module instantiated twice (once to time it, once to
    // run it), the stop would end the first and the second would spin on to its
    // deadline.
    let r = ok_json(spinning.join().expect("run thread"));
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
    for (module, path) in [
        ("hostile/deep_recursion.wat", "/v1/run?args=1"),
        ("hostile/mutual_recursion.wat", "/v1/run"),
    ] {
        let (st, _, body) = post_wasm(&s.addr, path, &wasm(module));
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
    let v = ok_json(post_wasm(
        &s.addr,
        "/v1/run?args=2,3",
        &wasm("agents/add.wat"),
    ));
    assert_eq!(v["result"], 5);
    assert_eq!(http(&s.addr, "GET", "/v1/healthz", &[], b"").0, 200);
    assert!(s.alive());
}

#[test]
fn runs_past_the_bound_get_503_with_retry_after() {
    let (s, _policy) = serve_slow(400, &["--max-runs", "1"]);
    let module = wasm("hostile/deadline_spin.wat");
    let handles: Vec<_> = (0..4)
        .map(|_| run_in_background(&s.addr, module.clone()))
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect();
    let busy = results.iter().filter(|r| r.0 == 503).count();
    let ran = results.iter().filter(|r| r.0 == 200).count();
    assert!(
        ran >= 1 && busy >= 1,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.0 == 503) {
        assert!(
            r.1.to_ascii_lowercase().contains("retry-after: 1"),
            "{}",
            r.1
        );
    }
    assert_eq!(http(&s.addr, "GET", "/v1/healthz", &[], b"").0, 200);
}

#[test]
fn concurrent_runs_with_hostile_modules_get_right_answers_and_healthz_stays_up() {
    // The load measures the server, not a token's rate. The default policy but for a
    // wall clock the machine's load cannot reach: every hostile fixture here is cut by
    // another limit (none expects `deadline`), and 20,000 host calls of `log_flood`
    // share two cores with eleven other clients in a debug build.
    assert!(hostile_cases().iter().all(|c| c.outcome != "deadline"));
    let (mut s, _policy) = serve_policy(
        "[limits]\nwall_clock_ms = 60000\n",
        &[
            "--max-runs",
            "4",
            "--token-rate",
            "1000000",
            "--token-burst",
            "1000000",
        ],
    );
    let plan = Plan {
        clients: 12,
        requests: 300,
        // A watchdog, not a speed bound: 300 small runs take seconds; this only ends a
        // run that hangs.
        time_limit: Duration::from_secs(600),
        hostile_every: 4,
        health_every: Duration::from_millis(20),
        retry_busy: true,
    };
    let r = drive(&s.addr, TOKEN, &plan);
    eprintln!(
        "{} requests ({} hostile), {} busy answers, outcomes {:?}",
        r.sent, r.hostile, r.busy, r.outcomes
    );
    assert!(
        r.failed.is_empty(),
        "failed: {:?}",
        &r.failed[..r.failed.len().min(5)]
    );
    assert!(
        r.wrong.is_empty(),
        "wrong answers: {:?}",
        &r.wrong[..r.wrong.len().min(5)]
    );
    assert_eq!(r.sent, plan.requests, "the watchdog cut the run short");
    // every request was answered and checked, some after retries past the bound
    assert_eq!(r.ok, r.sent, "{r:?}");
    assert!(r.hostile >= 70);
    assert_eq!(r.health_failures, 0);
    assert!(!r.health.is_empty());
    // the hostile mix reached the sandbox: traps of several kinds, and rejections
    for word in [
        "ok",
        "rejected",
        "out_of_fuel",
        "memory_limit",
        "stack_overflow",
    ] {
        assert!(
            r.outcomes.keys().any(|got| is_right(word, got)),
            "{word} never seen: {:?}",
            r.outcomes
        );
    }
    assert!(s.alive(), "the server died under load");
    // the server's own counts agree with what the clients saw
    let m = call(&s.addr, "GET", "/metrics").2;
    let m = String::from_utf8_lossy(&m);
    let served: u64 = m
        .lines()
        .filter(|l| l.starts_with("tdev_runs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(served, r.ok as u64, "{m}");
    assert!(
        m.contains(&format!("tdev_runs_refused_total {}\n", r.busy)),
        "{m}"
    );
    assert_eq!(http(&s.addr, "GET", "/v1/healthz", &[], b"").0, 200);
}

#[test]
fn emergency_stop_interrupts_the_servers_runs_and_evolve_processes_on_its_store() {
    use crate::evolve::{spawn_evolve, task, wait_for_generation};
    // a run that would last 20 s of wall clock if nothing stopped it
    let (mut s, _policy) = serve_slow(20_000, &[]);
    let d = s.dir.path().to_path_buf();
    // an evolution on the same store, in its own process
    let evolve = spawn_evolve(
        &d,
        &[
            "--task",
            &task("sum_range"),
            "--population",
            "60",
            "--generations",
            "100000",
        ],
    );
    let id = wait_for_generation(&d.join(".tdev"), 1);
    let spinning = run_in_background(&s.addr, wasm("hostile/deadline_spin.wat"));
    std::thread::sleep(Duration::from_millis(500));
    let v = ok_json(call(&s.addr, "POST", "/v1/emergency-stop"));
    assert_eq!(v["stopped"], true);
    // the running agent ends with emergency_stop, not at its deadline
    let r = ok_json(spinning.join().expect("run thread"));
    assert_eq!(r["outcome"], "emergency_stop", "{r}");
    // the evolve process halts with its last generation durable (the watchdog only
    // keeps a broken stop from hanging the suite)
    let out = evolve.finish(Duration::from_secs(300), "evolve after the stop");
    assert!(out.status.success());
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).expect("evolve JSON");
    assert_eq!(e["stopped"], true, "{e}");
    assert_eq!(e["evolution_id"], id.as_str());
    let listed = ok_json(call(&s.addr, "GET", &format!("/v1/evolutions/{id}")));
    assert_eq!(listed["head_generation"], e["generations"], "{listed}");
    // the server itself goes on: new runs are not affected by the stop
    let v = ok_json(post_wasm(
        &s.addr,
        "/v1/run?args=2,3",
        &wasm("agents/add.wat"),
    ));
    assert_eq!(v["result"], 5);
    assert!(s.alive());
}
