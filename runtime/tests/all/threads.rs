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
        ErrorKind::Thread { thread, message } => {
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
        matches!(e.kind(), ErrorKind::Thread { thread, .. } if thread == EPOCH_THREAD),
        "{e}"
    );
}
