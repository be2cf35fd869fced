//! `memory.grow` and `table.grow`: past the module's own maximum they answer -1 and
//! the program goes on (the Wasm spec); within it but past the policy's cap the run
//! traps `memory_limit` / `table_limit`.

use crate::{admit, sandbox};
use runtime::{Input, Outcome, RunResult, Value};

/// An agent that grows memory (`(memory 1 MAX?)`) by `delta` pages and returns what
/// `memory.grow` answered, then the new size in pages * 1000 (so the test sees that
/// the program went on after the answer).
fn memory_agent(max: Option<u32>, delta: i32) -> String {
    let max = max.map(|m| m.to_string()).unwrap_or_default();
    format!(
        r#"(module
          (memory 1 {max})
          (func (export "act") (result i64)
            (i64.add
              (i64.extend_i32_s (memory.grow (i32.const {delta})))
              (i64.mul (i64.extend_i32_u (memory.size)) (i64.const 1000)))))"#
    )
}

/// The same for a funcref table of 1 element.
fn table_agent(max: Option<u32>, delta: i32) -> String {
    let max = max.map(|m| m.to_string()).unwrap_or_default();
    format!(
        r#"(module
          (table $t 1 {max} funcref)
          (func (export "act") (result i64)
            (i64.add
              (i64.extend_i32_s (table.grow $t (ref.null func) (i32.const {delta})))
              (i64.mul (i64.extend_i32_u (table.size $t)) (i64.const 1000)))))"#
    )
}

fn run(policy: &str, wat: &str) -> (Outcome, Option<i64>) {
    let sb = sandbox(policy);
    let agent = admit(&sb, wat);
    let r = sb.run(&agent, Input::Typed(vec![])).expect("run");
    let v = match r.result {
        Some(RunResult::Value(Value::I64(v))) => Some(v),
        _ => None,
    };
    (r.outcome, v)
}

#[test]
fn memory_grow_within_the_declared_maximum_succeeds() {
    // From 1 page to the declared maximum of 4: answers the old size, 1.
    assert_eq!(
        run("", &memory_agent(Some(4), 3)),
        (Outcome::Ok, Some(1 + 4000))
    );
}

#[test]
fn memory_grow_past_the_declared_maximum_answers_minus_one() {
    // One page past the declared maximum: -1, the size stays 1 and the run goes on.
    assert_eq!(
        run("", &memory_agent(Some(4), 4)),
        (Outcome::Ok, Some(-1 + 1000))
    );
    // The case seen in the wild: a module declaring 16 pages (the default cap) asks
    // for 32.
    assert_eq!(
        run("", &memory_agent(Some(16), 31)),
        (Outcome::Ok, Some(-1 + 1000))
    );
}

#[test]
fn memory_grow_past_the_declared_maximum_answers_minus_one_even_above_the_cap() {
    // Declared maximum 20 pages, policy cap 16: growth to 21 is past the module's own
    // maximum, so -1, not `memory_limit`.
    assert_eq!(
        run("", &memory_agent(Some(20), 20)),
        (Outcome::Ok, Some(-1 + 1000))
    );
}

#[test]
fn memory_grow_within_the_declared_maximum_but_over_the_cap_traps() {
    // Declared maximum 20, cap 16: growth to 17 is legal for the module, the policy
    // forbids it.
    assert_eq!(run("", &memory_agent(Some(20), 16)).0, Outcome::MemoryLimit);
    // No declared maximum: the same.
    assert_eq!(run("", &memory_agent(None, 16)).0, Outcome::MemoryLimit);
    // Exactly at the cap is fine.
    assert_eq!(
        run("", &memory_agent(None, 15)),
        (Outcome::Ok, Some(1 + 16000))
    );
}

#[test]
fn memory_grow_past_four_gib_answers_minus_one() {
    // 65536 pages more than the 1 there is: past what a 32-bit memory can hold.
    let policy = "[limits]\nmemory_bytes = 4294967296\n";
    assert_eq!(
        run(policy, &memory_agent(None, 65536)),
        (Outcome::Ok, Some(-1 + 1000))
    );
    // u32::MAX pages (the i32 -1).
    assert_eq!(
        run("", &memory_agent(None, -1)),
        (Outcome::Ok, Some(-1 + 1000))
    );
    // Up to exactly 4 GiB is a legal request; the default cap forbids it.
    assert_eq!(run("", &memory_agent(None, 65535)).0, Outcome::MemoryLimit);
}

#[test]
fn table_grow_within_the_declared_maximum_succeeds() {
    assert_eq!(
        run("", &table_agent(Some(10), 9)),
        (Outcome::Ok, Some(1 + 10_000))
    );
}

#[test]
fn table_grow_past_the_declared_maximum_answers_minus_one() {
    assert_eq!(
        run("", &table_agent(Some(10), 10)),
        (Outcome::Ok, Some(-1 + 1000))
    );
    // A declared maximum above the cap (1024): growth past it is still -1...
    assert_eq!(
        run("", &table_agent(Some(2000), 2000)),
        (Outcome::Ok, Some(-1 + 1000))
    );
    // ...and so is growth by u32::MAX elements, past the 2^32-1 any table can hold.
    assert_eq!(
        run("", &table_agent(None, -1)),
        (Outcome::Ok, Some(-1 + 1000))
    );
}

#[test]
fn table_grow_within_the_declared_maximum_but_over_the_cap_traps() {
    assert_eq!(
        run("", &table_agent(Some(2000), 1500)).0,
        Outcome::TableLimit
    );
    assert_eq!(run("", &table_agent(None, 1024)).0, Outcome::TableLimit);
    // Exactly at the cap is fine.
    assert_eq!(
        run("", &table_agent(None, 1023)),
        (Outcome::Ok, Some(1 + 1_024_000))
    );
}

#[test]
fn table_grow_by_more_than_the_fuel_is_judged_by_size_not_fuel() {
    // 2^31 - 1 elements with 10,000,000 fuel: legal for a table without a maximum,
    // over the cap, so `table_limit` (wasmtime would charge the length first and say
    // `out_of_fuel`).
    assert_eq!(run("", &table_agent(None, i32::MAX)).0, Outcome::TableLimit);
    // Past a declared maximum: -1.
    assert_eq!(
        run("", &table_agent(Some(5000), i32::MAX)),
        (Outcome::Ok, Some(-1 + 1000))
    );
    // And with little fuel, -1 still costs almost nothing.
    assert_eq!(
        run(
            "[limits]\nfuel_per_call = 1000\n",
            &table_agent(Some(5), 1_000_000)
        ),
        (Outcome::Ok, Some(-1 + 1000))
    );
}

#[test]
fn grow_answers_the_same_with_on_demand_allocation() {
    use runtime::{Allocation, Policy, Sandbox, SandboxConfig};
    let sb = Sandbox::with_config(
        Policy::default_policy(),
        SandboxConfig::new().allocation(Allocation::OnDemand),
    )
    .expect("sandbox");
    for (wat, want) in [
        (memory_agent(Some(20), 20), Some(-1 + 1000)),
        (table_agent(Some(2000), 2000), Some(-1 + 1000)),
        (table_agent(Some(10), 10), Some(-1 + 1000)),
        (memory_agent(None, 16), None),
        (table_agent(None, 1024), None),
    ] {
        let agent = admit(&sb, &wat);
        let r = sb.run(&agent, Input::Typed(vec![])).expect("run");
        match want {
            Some(v) => assert_eq!(r.result, Some(RunResult::Value(Value::I64(v))), "{wat}"),
            None => assert!(r.outcome.is_limit(), "{wat}: {:?}", r.outcome),
        }
    }
}
