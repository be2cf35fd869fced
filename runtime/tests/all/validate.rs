//! Static validation details that the fixtures do not pin down.

use runtime::{FindingKind, Policy, validate};

fn kinds(policy: &Policy, wat: &str) -> Vec<String> {
    let bytes = wat::parse_str(wat).expect("wat");
    validate(policy, &bytes)
        .findings
        .iter()
        .map(|f| f.kind.to_string())
        .collect()
}

#[test]
fn score_is_one_minus_the_weights_and_floored() {
    let p = Policy::from_toml(
        "min_safety_score = 0.5\n[[patterns]]\nname = \"adds\"\nscope = \"text\"\nregex = 'i64\\.add'\nweight = 0.3\n[[patterns]]\nname = \"act\"\nscope = \"names\"\nregex = '^act$'\nweight = 0.15\n",
    )
    .expect("policy");
    let bytes = wat::parse_str(r#"(module (func (export "act") (param i64) (result i64) (i64.add (local.get 0) (local.get 0))))"#).expect("wat");
    let v = validate(&p, &bytes);
    assert_eq!(v.safety_score, 0.55);
    assert!(v.admitted);
    let heavy = Policy::from_toml("[weights]\nsignature_invalid = 0.7\nexport_missing = 0.7\n")
        .expect("policy");
    let bytes =
        wat::parse_str(r#"(module (import "agent" "log" (func (param i64))))"#).expect("wat");
    let v = validate(&heavy, &bytes);
    assert_eq!(v.safety_score, 0.0);
    assert!(!v.admitted);
}

#[test]
fn structural_findings_reject_even_with_zero_weight() {
    let p = Policy::from_toml("[weights]\nimport_denied = 0.0\n").expect("policy");
    let bytes = wat::parse_str(
        r#"(module (import "env" "f" (func)) (func (export "act") (result i32) i32.const 0))"#,
    )
    .expect("wat");
    let v = validate(&p, &bytes);
    assert_eq!(v.safety_score, 1.0);
    assert!(!v.admitted);
    assert_eq!(v.findings[0].kind, FindingKind::ImportDenied);
}

#[test]
fn imports_outside_the_policy_list_are_denied() {
    let p = Policy::from_toml("[imports]\nallow = [\"agent.input_len\"]\n").expect("policy");
    let k = kinds(
        &p,
        r#"(module (import "agent" "log" (func (param i32 i32))) (memory (export "memory") 1)
           (func (export "act") (result i32) i32.const 0))"#,
    );
    assert_eq!(k, ["import_denied"]);
}

#[test]
fn validation_never_panics_on_mutated_bytes() {
    // Every single-byte corruption and every truncation of a real module.
    let bytes = wat::parse_str(
        r#"(module (import "agent" "log" (func (param i32 i32))) (memory (export "memory") 1)
           (table 2 funcref) (data (i32.const 0) "hi")
           (func (export "act") (result i32) (call 0 (i32.const 0) (i32.const 2)) i32.const 0))"#,
    )
    .expect("wat");
    let p = Policy::default_policy();
    for i in 0..bytes.len() {
        for v in [0u8, 0x7f, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = validate(&p, &b);
        }
        let _ = validate(&p, &bytes[..i]);
    }
}
