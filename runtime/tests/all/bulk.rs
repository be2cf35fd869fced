//! Bulk memory and table operations: out of bounds they trap `out_of_bounds` whatever
//! their length (wasmtime alone charges the length in fuel first and would say
//! `out_of_fuel`); in bounds they run and are charged per byte or element.

use crate::{admit, sandbox};
use runtime::{Input, Outcome, RunResult};

/// Runs a bytes-form agent whose `act` body is `body` (it leaves nothing on the stack;
/// `act` then answers 7), over one page of memory, a 10-element table and a passive
/// data segment of 10 bytes and element segment of 2 functions.
fn run_with(policy: &str, body: &str) -> runtime::RunReport {
    let wat = format!(
        r#"(module
          (memory (export "memory") 1)
          (table $t 10 funcref)
          (table $u 10 funcref)
          (data $d "0123456789")
          (elem $e func $f $f)
          (func $f)
          (func (export "act") (result i32)
            {body}
            i32.const 7))"#
    );
    let sb = sandbox(policy);
    let agent = admit(&sb, &wat);
    sb.run(&agent, Input::Bytes(vec![])).expect("run")
}

fn run(body: &str) -> runtime::RunReport {
    run_with("", body)
}

fn assert_out_of_bounds(body: &str) {
    let r = run(body);
    assert_eq!(
        r.outcome,
        Outcome::OutOfBounds,
        "{body}: {:?}",
        r.trap_message
    );
    // The trap comes before the length is charged.
    assert!(r.fuel_used < 1000, "{body}: {} fuel", r.fuel_used);
}

fn assert_ok(body: &str) -> u64 {
    let r = run(body);
    assert_eq!(r.outcome, Outcome::Ok, "{body}: {:?}", r.trap_message);
    assert_eq!(r.result, Some(RunResult::Status(7)), "{body}");
    r.fuel_used
}

#[test]
fn memory_fill() {
    assert_out_of_bounds("(memory.fill (i32.const 0) (i32.const 1) (i32.const 20000000))");
    assert_out_of_bounds("(memory.fill (i32.const 60000) (i32.const 1) (i32.const 70000))");
    assert_out_of_bounds("(memory.fill (i32.const -1) (i32.const 1) (i32.const 2))");
    assert_out_of_bounds("(memory.fill (i32.const 65537) (i32.const 1) (i32.const 0))");
    // Up to the end, and a zero length at the end, are in bounds.
    let fuel = assert_ok("(memory.fill (i32.const 0) (i32.const 1) (i32.const 65536))");
    assert!(
        fuel >= 65536,
        "an in-bounds fill is charged per byte: {fuel}"
    );
    assert_ok("(memory.fill (i32.const 65536) (i32.const 1) (i32.const 0))");
}

#[test]
fn memory_copy() {
    assert_out_of_bounds("(memory.copy (i32.const 0) (i32.const 0) (i32.const 20000000))");
    // Destination in bounds, source not, and the reverse.
    assert_out_of_bounds("(memory.copy (i32.const 0) (i32.const 60000) (i32.const 10000))");
    assert_out_of_bounds("(memory.copy (i32.const 60000) (i32.const 0) (i32.const 10000))");
    let fuel = assert_ok("(memory.copy (i32.const 0) (i32.const 32768) (i32.const 32768))");
    assert!(fuel >= 32768, "{fuel}");
    assert_ok("(memory.copy (i32.const 65536) (i32.const 65536) (i32.const 0))");
}

#[test]
fn memory_init() {
    assert_out_of_bounds("(memory.init $d (i32.const 0) (i32.const 0) (i32.const 20000000))");
    // Past the segment's 10 bytes, and past the memory.
    assert_out_of_bounds("(memory.init $d (i32.const 0) (i32.const 5) (i32.const 6))");
    assert_out_of_bounds("(memory.init $d (i32.const 65530) (i32.const 0) (i32.const 10))");
    // A dropped segment has length 0.
    assert_out_of_bounds(
        "(data.drop $d) (memory.init $d (i32.const 0) (i32.const 0) (i32.const 1))",
    );
    assert_ok("(data.drop $d) (memory.init $d (i32.const 0) (i32.const 0) (i32.const 0))");
    assert_ok("(memory.init $d (i32.const 65526) (i32.const 0) (i32.const 10))");
}

#[test]
fn table_fill() {
    assert_out_of_bounds("(table.fill $t (i32.const 0) (ref.null func) (i32.const 20000000))");
    assert_out_of_bounds("(table.fill $t (i32.const 5) (ref.null func) (i32.const 6))");
    assert_out_of_bounds("(table.fill $t (i32.const 11) (ref.null func) (i32.const 0))");
    assert_ok("(table.fill $t (i32.const 0) (ref.func $f) (i32.const 10))");
    assert_ok("(table.fill $t (i32.const 10) (ref.null func) (i32.const 0))");
}

#[test]
fn table_copy() {
    assert_out_of_bounds("(table.copy $t $u (i32.const 0) (i32.const 0) (i32.const 20000000))");
    assert_out_of_bounds("(table.copy $t $u (i32.const 0) (i32.const 5) (i32.const 6))");
    assert_out_of_bounds("(table.copy $t $u (i32.const 5) (i32.const 0) (i32.const 6))");
    assert_ok("(table.copy $t $u (i32.const 0) (i32.const 0) (i32.const 10))");
    assert_ok("(table.copy $t $t (i32.const 1) (i32.const 0) (i32.const 9))");
}

#[test]
fn table_init() {
    assert_out_of_bounds("(table.init $t $e (i32.const 0) (i32.const 0) (i32.const 20000000))");
    assert_out_of_bounds("(table.init $t $e (i32.const 0) (i32.const 1) (i32.const 2))");
    assert_out_of_bounds("(table.init $t $e (i32.const 9) (i32.const 0) (i32.const 2))");
    assert_out_of_bounds(
        "(elem.drop $e) (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))",
    );
    assert_ok("(table.init $t $e (i32.const 8) (i32.const 0) (i32.const 2))");
}

#[test]
fn in_bounds_bulk_operations_in_a_loop_run_out_of_fuel() {
    let r = run("(loop $l (memory.fill (i32.const 0) (i32.const 1) (i32.const 65536)) (br $l))");
    assert_eq!(r.outcome, Outcome::OutOfFuel);
    let r = run("(loop $l (table.fill $t (i32.const 0) (ref.null func) (i32.const 10)) (br $l))");
    assert_eq!(r.outcome, Outcome::OutOfFuel);
}

#[test]
fn out_of_bounds_is_out_of_bounds_with_little_fuel_too() {
    let r = run_with(
        "[limits]\nfuel_per_call = 100\n",
        "(memory.fill (i32.const 0) (i32.const 1) (i32.const 20000000))",
    );
    assert_eq!(r.outcome, Outcome::OutOfBounds);
}

#[test]
fn an_out_of_bounds_fill_traps_where_it_stands() {
    // What ran before the trap stands (the output written); the out-of-bounds fill
    // ends the run before the next instruction.
    let wat = r#"(module
      (import "agent" "write_output" (func $w (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "act") (result i32)
        (memory.fill (i32.const 0) (i32.const 65) (i32.const 4))
        (drop (call $w (i32.const 0) (i32.const 4)))
        (memory.fill (i32.const 65535) (i32.const 66) (i32.const 20000000))
        (drop (call $w (i32.const 65535) (i32.const 1)))
        i32.const 0))"#;
    let sb = sandbox("");
    let agent = admit(&sb, wat);
    let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
    assert_eq!(r.outcome, Outcome::OutOfBounds);
    assert_eq!(r.output, b"AAAA");
}

#[test]
fn several_kinds_of_bulk_operation_in_one_module_each_get_their_own_guard() {
    // Operations of different kinds, in an order unlike the guards' own: each must be
    // checked against its own bounds (the copy is exactly in bounds, so a mixed-up
    // guard would see it out of bounds or let an out-of-bounds one through).
    assert_ok(
        "(memory.copy (i32.const 0) (i32.const 32768) (i32.const 32768))
         (table.copy $u $t (i32.const 0) (i32.const 0) (i32.const 10))
         (memory.fill (i32.const 0) (i32.const 7) (i32.const 65536))
         (table.init $t $e (i32.const 8) (i32.const 0) (i32.const 2))
         (memory.init $d (i32.const 65526) (i32.const 0) (i32.const 10))
         (table.fill $u (i32.const 0) (ref.null func) (i32.const 10))
         (drop (table.grow $t (ref.null func) (i32.const 1)))",
    );
    let r = run("(memory.fill (i32.const 0) (i32.const 7) (i32.const 65536))
         (table.fill $u (i32.const 0) (ref.null func) (i32.const 10))
         (memory.copy (i32.const 0) (i32.const 32769) (i32.const 32768))");
    assert_eq!(r.outcome, Outcome::OutOfBounds);
}
