//! Host functions: input cursor, output and log caps, fuel charged per byte.

use crate::{admit, sandbox};
use runtime::{Input, Outcome, RunResult};

const READER: &str = r#"(module
  (import "agent" "input_len" (func $len (result i32)))
  (import "agent" "read_input" (func $read (param i32 i32) (result i32)))
  (import "agent" "write_output" (func $write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; reads the input 3 bytes at a time and writes each chunk back
  (func (export "act") (result i32)
    (local $n i32)
    (loop $l
      (local.set $n (call $read (i32.const 0) (i32.const 3)))
      (if (local.get $n) (then
        (drop (call $write (i32.const 0) (local.get $n)))
        (br $l))))
    (call $len)))"#;

#[test]
fn read_input_continues_where_it_stopped() {
    let sb = sandbox("");
    let agent = admit(&sb, READER);
    let r = sb
        .run(&agent, Input::Bytes(b"abcdefgh".to_vec()))
        .expect("run");
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.output, b"abcdefgh");
    assert_eq!(r.result, Some(RunResult::Status(8)));
}

#[test]
fn host_calls_are_charged_per_byte() {
    let sb = sandbox("[limits]\nhost_fuel_per_byte = 100\n");
    let agent = admit(&sb, READER);
    let small = sb.run(&agent, Input::Bytes(vec![1; 10])).expect("run");
    let large = sb.run(&agent, Input::Bytes(vec![1; 1000])).expect("run");
    // 990 more bytes read and 990 more written, at 100 fuel each.
    assert!(large.fuel_used - small.fuel_used >= 990 * 2 * 100);

    let tight = sandbox("[limits]\nhost_fuel_per_byte = 100\nfuel_per_call = 50000\n");
    let agent = admit(&tight, READER);
    let r = tight.run(&agent, Input::Bytes(vec![1; 1000])).expect("run");
    assert_eq!(r.outcome, Outcome::OutOfFuel);
    assert_eq!(r.fuel_used, 50000);
}

#[test]
fn output_cap_is_exact() {
    let sb = sandbox("[limits]\noutput_bytes = 9\n");
    let agent = admit(&sb, READER);
    let ok = sb
        .run(&agent, Input::Bytes(b"123456789".to_vec()))
        .expect("run");
    assert_eq!(ok.outcome, Outcome::Ok);
    let over = sb
        .run(&agent, Input::Bytes(b"1234567890".to_vec()))
        .expect("run");
    assert_eq!(over.outcome, Outcome::OutputLimit);
    // what was written before the cap is kept
    assert_eq!(over.output, b"123456789");
}

#[test]
fn logs_are_capped_cut_and_escaped() {
    let sb = sandbox("[limits]\nlog_lines = 2\nlog_line_bytes = 5\n");
    let agent = admit(
        &sb,
        r#"(module
          (import "agent" "log" (func $log (param i32 i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "\1b[31mred\ff")
          (func (export "act") (result i32)
            (call $log (i32.const 0) (i32.const 3))
            (call $log (i32.const 5) (i32.const 4))
            (call $log (i32.const 0) (i32.const 9))
            (call $log (i32.const 0) (i32.const 9))
            i32.const 0))"#,
    );
    let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
    assert_eq!(r.outcome, Outcome::Ok);
    // The cap holds for the line as kept, escaped: `\u{1b}` alone is 6 bytes, over
    // the cap of 5, and no marker fits in 5 bytes.
    assert_eq!(r.logs, vec!["".to_string(), "red".to_string()]);
    assert_eq!(r.logs_dropped, 2);

    let sb = sandbox("[limits]\nlog_line_bytes = 30\n");
    let agent = admit(
        &sb,
        r#"(module
          (import "agent" "log" (func $log (param i32 i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "abcdefghijklmnopqrstuvwxyz0123456789")
          (func (export "act") (result i32) (call $log (i32.const 0) (i32.const 36)) i32.const 0))"#,
    );
    let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
    assert!(r.logs[0] == "abcdefghijkl …[cut 24 bytes]", "{:?}", r.logs);
}

#[test]
fn send_and_recv_in_a_single_run_have_no_peers() {
    let sb = sandbox("");
    let agent = admit(
        &sb,
        r#"(module
          (import "agent" "send" (func $send (param i32 i32 i32 i32) (result i32)))
          (import "agent" "recv" (func $recv (param i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "act") (result i32)
            (i32.add
              (i32.mul (call $send (i32.const 0) (i32.const 4) (i32.const 4) (i32.const 4)) (i32.const 10))
              (call $recv (i32.const 0) (i32.const 16)))))"#,
    );
    let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
    assert_eq!(
        r.result,
        Some(RunResult::Status(
            runtime::SEND_UNKNOWN_RECIPIENT * 10 + runtime::RECV_NONE
        ))
    );
}

#[test]
fn memory_within_the_cap_grows_and_past_it_traps() {
    let sb = sandbox("[limits]\nmemory_bytes = 196608\n");
    let agent = admit(
        &sb,
        r#"(module (memory (export "memory") 1)
          (func (export "act") (param i64) (result i64)
            (i64.extend_i32_s (memory.grow (i32.wrap_i64 (local.get 0))))))"#,
    );
    let r = sb
        .run(&agent, Input::Typed(vec![runtime::Value::I64(2)]))
        .expect("run");
    assert_eq!(r.result, Some(RunResult::Value(runtime::Value::I64(1))));
    let r = sb
        .run(&agent, Input::Typed(vec![runtime::Value::I64(3)]))
        .expect("run");
    assert_eq!(r.outcome, Outcome::MemoryLimit);
}

#[test]
fn every_run_starts_from_a_fresh_instance() {
    let sb = sandbox("");
    let agent = admit(
        &sb,
        r#"(module (global $g (mut i64) (i64.const 0))
          (func (export "act") (result i64)
            (global.set $g (i64.add (global.get $g) (i64.const 1))) (global.get $g)))"#,
    );
    for _ in 0..3 {
        let r = sb.run(&agent, Input::Typed(vec![])).expect("run");
        assert_eq!(r.result, Some(RunResult::Value(runtime::Value::I64(1))));
    }
}

#[test]
fn wrong_inputs_are_errors_not_runs() {
    let sb = sandbox("");
    let agent = admit(&sb, READER);
    assert!(sb.run(&agent, Input::Typed(vec![])).is_err());
    let typed = admit(
        &sb,
        r#"(module (func (export "act") (param i64) (result i64) local.get 0))"#,
    );
    assert!(sb.run(&typed, Input::Bytes(vec![])).is_err());
    assert!(
        sb.run(&typed, Input::Typed(vec![runtime::Value::F64(0)]))
            .is_err()
    );
    assert!(runtime::parse_args(&[runtime::Param::I64], "1,2").is_err());
    assert!(runtime::parse_args(&[runtime::Param::F64], "x").is_err());
}

#[test]
fn pooling_slots_are_reused_across_many_runs() {
    let sb = sandbox("");
    let agent = admit(&sb, READER);
    // Far more runs than pool slots: each instance is freed when its run ends.
    for i in 0..500u32 {
        let r = sb
            .run(&agent, Input::Bytes(i.to_le_bytes().to_vec()))
            .expect("run");
        assert_eq!(r.output, i.to_le_bytes());
    }
}
