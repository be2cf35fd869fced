//! Host threads: agents run on threads sized from the policy's Wasm stack, and a
//! thread of the runtime that dies surfaces as an error naming it.

use crate::{admit, sandbox};
use runtime::{
    DEFAULT_HOST_STACK_MARGIN, EPOCH_THREAD, ErrorKind, Input, Outcome, Policy, Sandbox, Value,
};

const RECURSE: &str = r#"(module
  (func $f (param i64) (result i64)
    (call $f (i64.add (local.get 0) (i64.const 1))))
  (func (export "act") (param i64) (result i64)
    (call $f (local.get 0))))"#;

#[test]
fn thread_stack_is_the_wasm_stack_plus_the_host_margin() {
    let sb = sandbox("[limits]\nstack_bytes = 1048576\n");
    assert_eq!(
        sb.thread_stack_bytes(),
        (1 << 20) + DEFAULT_HOST_STACK_MARGIN
    );
}

#[test]
fn a_wasm_stack_over_two_mib_builds_a_sandbox() {
    // wasmtime refuses a `max_wasm_stack` above its async stack size (2 MiB by
    // default), even with async off; every command failed with such a policy.
    let sb = sandbox("[limits]\nstack_bytes = 4194304\n");
    let agent = admit(&sb, RECURSE);
    let r = sb
        .on_agent_thread("deep", || sb.run(&agent, Input::Typed(vec![Value::I64(0)])))
        .expect("thread")
        .expect("run");
    assert_eq!(r.outcome, Outcome::StackOverflow);
}

#[test]
fn the_largest_wasm_stack_the_policy_allows_overflows_cleanly() {
    let sb = sandbox("[limits]\nstack_bytes = 16777216\n");
    let agent = admit(&sb, RECURSE);
    let r = sb
        .on_agent_thread("deepest", || {
            sb.run(&agent, Input::Typed(vec![Value::I64(0)]))
        })
        .expect("thread")
        .expect("run");
    assert_eq!(r.outcome, Outcome::StackOverflow);
}

#[test]
fn a_stack_the_host_does_not_promise_is_refused() {
    let e = Policy::from_toml("[limits]\nstack_bytes = 16777217\n")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("limits.stack_bytes"), "{e}");
}

#[test]
fn a_panicking_agent_thread_is_an_error_naming_it() {
    let sb = sandbox("");
    let e = sb
        .on_agent_thread("scorer-3", || -> u32 { panic!("boom") })
        .expect_err("error");
    match e.kind() {
        ErrorKind::ThreadPanicked { thread, message } => {
            assert_eq!(thread, "scorer-3");
            assert!(message.contains("boom"), "{message}");
        }
        k => panic!("{k:?}"),
    }
    assert!(e.to_string().contains("scorer-3"));
}

#[test]
fn join_thread_names_a_panicked_thread() {
    let sb = sandbox("");
    let h = sb
        .agent_thread_builder("worker-9")
        .spawn(|| -> u8 { panic!("lost") })
        .expect("spawn");
    let e = runtime::join_thread(h).expect_err("error").to_string();
    assert!(e.contains("worker-9") && e.contains("lost"), "{e}");
    let ok = sb
        .agent_thread_builder("fine")
        .spawn(|| 5u8)
        .expect("spawn");
    assert_eq!(runtime::join_thread(ok).expect("joined"), 5);
}

#[test]
fn a_dead_epoch_thread_stops_runs_with_an_error_naming_it() {
    let sb = Sandbox::new(Policy::default_policy()).expect("sandbox");
    let agent = admit(&sb, RECURSE);
    sb.crash_epoch_thread_for_test();
    let mut err = None;
    for _ in 0..2000 {
        match sb.run(&agent, Input::Typed(vec![Value::I64(0)])) {
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("runs refused once the epoch thread died");
    assert!(
        matches!(e.kind(), ErrorKind::ThreadStopped { thread, .. } if thread == EPOCH_THREAD),
        "{e}"
    );
}

/// The deepest host path: a recursion where every frame logs a full line of bytes
/// that escape to 4 characters each, asks to grow memory past its maximum (the
/// limiter answers) and writes output, until the Wasm stack overflows.
const HOST_HEAVY_RECURSION: &str = r#"(module
  (import "agent" "log" (func $log (param i32 i32)))
  (import "agent" "write_output" (func $w (param i32 i32) (result i32)))
  (memory (export "memory") 1 2)
  (func $f (param i64) (result i64)
    (memory.fill (i32.const 0) (i32.const 255) (i32.const 1024))
    (call $log (i32.const 0) (i32.const 1024))
    (drop (memory.grow (i32.const 2)))
    (drop (call $w (i32.const 0) (i32.const 0)))
    (call $f (i64.add (local.get 0) (i64.const 1))))
  (func (export "act") (param i64) (result i64)
    (call $f (local.get 0))))"#;

const PROBE_STACK: u64 = 1 << 20;

/// The child side of the margin probes: runs the host-heavy recursion under a Wasm
/// stack of 1 MiB on a thread of `PROBE_STACK + TDEV_PROBE_MARGIN` bytes and prints the
/// outcome. An overflow of the host stack kills the process instead.
#[test]
fn host_margin_probe_child() {
    let Ok(margin) = std::env::var("TDEV_PROBE_MARGIN") else {
        return;
    };
    let margin: usize = margin.parse().expect("margin");
    let sb = sandbox(&format!(
        "[limits]\nstack_bytes = {PROBE_STACK}\nfuel_per_call = 1000000000\nwall_clock_ms = 60000\nlog_lines = 1000000\n"
    ));
    let agent = admit(&sb, HOST_HEAVY_RECURSION);
    let outcome = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(PROBE_STACK as usize + margin)
            .spawn_scoped(s, || {
                sb.run(&agent, Input::Typed(vec![Value::I64(0)]))
                    .expect("run")
                    .outcome
            })
            .expect("spawn")
            .join()
            .expect("join")
    });
    println!("probe outcome: {outcome}");
}

/// Runs the probe child with `margin` bytes above the Wasm stack; true when the run
/// ended `stack_overflow` and the process survived.
fn probe(margin: usize) -> bool {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", "threads::host_margin_probe_child", "--nocapture"])
        .env("TDEV_PROBE_MARGIN", margin.to_string())
        .output()
        .expect("child");
    out.status.success()
        && String::from_utf8_lossy(&out.stdout).contains("probe outcome: stack_overflow")
}

#[test]
fn the_default_host_margin_covers_the_deepest_host_path() {
    assert!(probe(DEFAULT_HOST_STACK_MARGIN));
}

/// Measures the smallest margin that survives (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn measure_the_host_margin() {
    let (mut lo, mut hi) = (0usize, DEFAULT_HOST_STACK_MARGIN);
    assert!(probe(hi));
    while hi - lo > 4096 {
        let mid = (lo + hi) / 2;
        if probe(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    println!("smallest host margin that survives: {hi} bytes (fails at {lo})");
}
