//! Defects the fuzz targets and the differential found, each as the smallest input that
//! shows it, run through the same oracle. Each fails until its defect is fixed.

use fuzzing::differential::{self, Case, Diff, End};
use fuzzing::oracles::{self, Seen};
use runtime::{Outcome, Param, Value};

/// What the differential says of `wat`'s `act(args)`, of parameters `params` and an
/// i64 result.
fn compare(wat: &str, params: Vec<Param>, args: Vec<Value>) -> Diff {
    differential::compare(&Case {
        wasm: wat::parse_str(wat).expect("wat"),
        params,
        result: Param::I64,
        args,
    })
}

/// `run_smith` seeded input #111 and `admit`: a module of five tables passes validation
/// under the default policy and then fails to compile ("module table does not fit in
/// pooling allocator requirements"): the pool's per-module table limit must be a
/// validation rule.
#[test]
fn five_tables_are_rejected_or_compile() {
    let wasm = wat::parse_str(
        r#"(module
            (table 0 funcref) (table 0 funcref) (table 0 funcref)
            (table 0 funcref) (table 0 funcref)
            (func (export "act") (result i32) i32.const 0))"#,
    )
    .expect("wat");
    let seen = std::panic::catch_unwind(|| oracles::admit(&wasm));
    assert!(
        matches!(seen, Ok(Seen::Accepted | Seen::Rejected)),
        "admit of five tables broke the admitted-implies-compiles invariant"
    );
}

/// Differential seeds 62 and 182: `memory.grow` past the module's own declared maximum
/// (and past the policy's cap) traps with `memory_limit` in the sandbox where the spec
/// (and wasmi) answer -1.
#[test]
fn grow_past_declared_maximum_answers_minus_one_like_wasmi() {
    let wat = r#"(module
        (memory 1 2)
        (func (export "act") (result i64)
          i32.const 100 memory.grow i64.extend_i32_s))"#;
    let minus_one = Diff::Agree(End::Returned(Value::I64(-1)));
    assert_eq!(compare(wat, vec![], vec![]), minus_one);
}

/// Differential seeds 1001480 and 1003601: the same for `table.grow` past the table's
/// declared maximum and the policy's cap: `table_limit` where the spec answers -1.
#[test]
fn table_grow_past_declared_maximum_answers_minus_one_like_wasmi() {
    let wat = r#"(module
        (table 1 2 funcref)
        (func (export "act") (result i64)
          ref.null func i32.const 2000 table.grow 0 i64.extend_i32_s))"#;
    let minus_one = Diff::Agree(End::Returned(Value::I64(-1)));
    assert_eq!(compare(wat, vec![], vec![]), minus_one);
}

/// `api_decode`: `from_hex` takes a sign inside a digit pair (`u8::from_str_radix`), so
/// `+f+f` decodes to `[0x0f, 0x0f]`: the hex of `X-Tdev-Input` must be hex digits only.
#[test]
fn hex_with_signs_is_refused() {
    let mut input = vec![0u8];
    input.extend_from_slice(b"+f+f");
    let seen = std::panic::catch_unwind(|| oracles::api_decode(&input));
    assert!(matches!(seen, Ok(Seen::Rejected)), "from_hex accepted +f+f");
    // and the inputs libFuzzer found for it (`h+1`, `h+d+d+1`, ...)
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/api_decode");
    let mut failed = Vec::new();
    for e in std::fs::read_dir(dir).expect("regressions dir").flatten() {
        let bytes = std::fs::read(e.path()).expect("read");
        if std::panic::catch_unwind(|| oracles::api_decode(&bytes)).is_err() {
            failed.push(e.file_name());
        }
    }
    assert!(failed.is_empty(), "from_hex accepted a sign: {failed:?}");
}

/// `policy_task`: a policy the loader accepts must build a sandbox; `stack_bytes` over
/// 2 MiB is accepted, then the engine refuses it (`max_wasm_stack` over the async stack).
#[test]
fn accepted_policy_builds_a_sandbox() {
    let mut input = vec![0u8];
    input.extend_from_slice(b"[limits]\nstack_bytes = 3145728\n");
    let seen = std::panic::catch_unwind(|| oracles::policy_task(&input));
    assert!(
        matches!(seen, Ok(Seen::Accepted | Seen::Rejected)),
        "a policy the loader accepts cannot build a sandbox"
    );
}

/// Not a defect, a guard for the differential itself: a trap both engines agree on.
#[test]
fn engines_agree_on_a_trap() {
    let wat = r#"(module (func (export "act") (param i64) (result i64)
        i64.const 1 local.get 0 i64.div_s))"#;
    assert_eq!(
        compare(wat, vec![Param::I64], vec![Value::I64(0)]),
        Diff::Agree(End::Trapped(Outcome::DivisionByZero))
    );
}
