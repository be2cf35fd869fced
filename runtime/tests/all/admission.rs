//! Admission limits: the size cap stops analysis, the text form is bounded, every
//! limit of the pooling allocator is a validation rule, and the cost limits reject a
//! module just over them and admit one at them.

use crate::modules::locals_only;
use runtime::{Admission, FindingKind, Input, Outcome, Policy, Sandbox, Verdict, validate};
use std::fmt::Write;

fn kinds(v: &Verdict) -> Vec<String> {
    v.findings.iter().map(|f| f.kind.to_string()).collect()
}

fn policy(toml: &str) -> Policy {
    Policy::from_toml(toml).expect("policy")
}

#[test]
fn a_module_over_the_size_cap_gets_size_cap_alone() {
    // 1,000 functions of 50,000 locals and no `act`: ~7 KB. Analysing it used to cost
    // seconds and a gigabyte, and added `export_missing`.
    let bytes = locals_only(1000, 50_000, false);
    let p = Policy::default_policy();
    assert!(bytes.len() as u64 > p.limits.module_bytes);
    let v = validate(&p, &bytes);
    assert_eq!(kinds(&v), ["size_cap"]);
    assert!(!v.admitted && v.form.is_none());
    assert_eq!(runtime::text_form(&p, &bytes), None);
}

#[test]
fn the_text_form_is_cut_at_the_policy_budget() {
    // 600 functions of 50,000 locals: under the size cap; its whole text form would
    // be ~120 MB.
    let p = Policy::default_policy();
    let bytes = locals_only(600, 50_000, true);
    assert!(bytes.len() as u64 <= p.limits.module_bytes);
    let cap = p.limits.text_bytes as usize;
    let text = runtime::text_form(&p, &bytes).expect("printable");
    let marker = format!("\n;; text form cut at {cap} bytes (limits.text_bytes)\n");
    assert!(text.ends_with(&marker), "no cut marker");
    assert!(text.len() <= cap + marker.len(), "{} bytes", text.len());

    // A smaller budget from the policy cuts there; a module that fits is not cut.
    let small = policy("[limits]\ntext_bytes = 4096\n");
    let text = runtime::text_form(&small, &locals_only(1, 2000, true)).expect("printable");
    assert!(text.len() <= 4096 + 64 && text.contains("cut at 4096 bytes"));
    let whole = runtime::text_form(&small, &locals_only(1, 3, true)).expect("printable");
    assert!(whole.starts_with("(module") && !whole.contains("cut at"));
}

#[test]
fn text_patterns_see_at_most_the_budget_and_say_so() {
    // A policy that lets 50,000 locals through the cost limits: the text scan is the
    // only thing that could blow up, and it stops at `limits.text_bytes`.
    let p = policy(
        "[limits]\nfunctions = 1000\nlocals_per_function = 50000\nlocals = 50000000\ntext_bytes = 65536\n",
    );
    let bytes = locals_only(600, 50_000, true);
    let v = validate(&p, &bytes);
    assert_eq!(kinds(&v), ["text_cap"], "{:?}", v.findings);
    let detail = &v.findings[0].detail;
    assert!(detail.contains("`limits.text_bytes` = 65536"), "{detail}");
    let seen: usize = detail
        .split("first ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("bytes seen in the detail");
    assert!(seen <= 65536, "{seen}");
    // Not structural: a person may release it after reading it.
    assert!(!FindingKind::TextCap.is_structural());
    assert!(!v.admitted && !v.has_structural_finding());
    // A module whose text fits gets no such finding.
    assert!(kinds(&validate(&p, &locals_only(1, 100, true))).is_empty());
}

/// Validates `wat` with `p`; when admitted, compiles, instantiates and runs it.
fn admit_and_run(p: &Policy, wat: &str) -> Result<Outcome, Verdict> {
    let bytes = wat::parse_str(wat).expect("wat");
    let sb = Sandbox::new(p.clone()).expect("sandbox");
    match sb
        .admit(&bytes, false)
        .expect("admit: a module that validates must compile")
    {
        Admission::Admitted(agent) => {
            let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
            Ok(r.outcome)
        }
        Admission::Rejected(v) => Err(v),
    }
}

/// Asserts that `at` validates and runs `ok`, and `over` is rejected with one finding
/// of `kind` whose detail names `field`.
fn at_and_over(p: &Policy, kind: &str, field: &str, at: &str, over: &str) {
    match admit_and_run(p, at) {
        Ok(o) => assert_eq!(o, Outcome::Ok, "{field}: the module at the limit"),
        Err(v) => panic!(
            "{field}: the module at the limit is rejected: {:?}",
            v.findings
        ),
    }
    match admit_and_run(p, over) {
        Ok(o) => panic!("{field}: the module over the limit ran ({o})"),
        Err(v) => {
            let hits: Vec<_> = v
                .findings
                .iter()
                .filter(|f| f.kind.to_string() == kind)
                .collect();
            assert_eq!(hits.len(), 1, "{field}: {:?}", v.findings);
            assert!(
                hits[0].detail.contains(field),
                "{field} not named in {:?}",
                hits[0].detail
            );
        }
    }
}

const ACT: &str = r#"(func (export "act") (result i32) i32.const 0)"#;

fn repeat(n: u64, item: &str) -> String {
    (0..n).map(|_| item).collect::<Vec<_>>().join(" ")
}

#[test]
fn every_pool_limit_is_a_validation_rule() {
    let p = Policy::default_policy();
    let l = p.limits.clone();
    let tables = |n| format!("(module {} {ACT})", repeat(n, "(table 1 funcref)"));
    at_and_over(
        &p,
        "table_cap",
        "limits.tables",
        &tables(l.tables),
        &tables(l.tables + 1),
    );
    let elements = |n| format!("(module (table {n} funcref) {ACT})");
    at_and_over(
        &p,
        "table_cap",
        "limits.table_elements",
        &elements(l.table_elements),
        &elements(l.table_elements + 1),
    );
    let pages = |n| format!("(module (memory {n}) {ACT})");
    at_and_over(
        &p,
        "memory_cap",
        "limits.memory_bytes",
        &pages(l.memory_bytes / 65536),
        &pages(l.memory_bytes / 65536 + 1),
    );
    // Memories per module: with multi-memory allowed, the count is the policy's.
    let multi = policy("[features]\nmulti_memory = true\n[limits]\nmemories = 3\n");
    let memories = |n| format!("(module {} {ACT})", repeat(n, "(memory 1)"));
    at_and_over(
        &multi,
        "memory_cap",
        "limits.memories",
        &memories(3),
        &memories(4),
    );
    let none = policy("[limits]\nmemories = 0\n");
    at_and_over(
        &none,
        "memory_cap",
        "limits.memories",
        &memories(0),
        &memories(1),
    );
}

#[test]
fn the_core_instance_size_follows_the_policy() {
    // 70,000 globals need ~1.1 MB of instance, over wasmtime's default 1 MiB: the
    // pool is sized from the policy, so a module within it instantiates.
    let p = policy("[limits]\nmodule_bytes = 1048576\nglobals = 70000\ntext_bytes = 16777216\n");
    let globals = |n| {
        let mut m = String::from("(module ");
        for _ in 0..n {
            m.push_str("(global (mut i32) (i32.const 0)) ");
        }
        m.push_str(ACT);
        m.push(')');
        m
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.globals",
        &globals(70_000),
        &globals(70_001),
    );
}

#[test]
fn the_five_table_module_of_the_report_is_rejected_not_a_compile_error() {
    let wat = format!("(module {} {ACT})", repeat(5, "(table 1 funcref)"));
    let v = admit_and_run(&Policy::default_policy(), &wat).expect_err("rejected");
    assert_eq!(kinds(&v), ["table_cap"]);
}

fn funcs(n: u64) -> String {
    let mut m = String::from("(module ");
    for _ in 1..n {
        m.push_str("(func) ");
    }
    m.push_str(ACT);
    m.push(')');
    m
}

/// `act` with `n` locals (it has no parameters).
fn locals_fn(n: u64) -> String {
    format!(
        "(func (export \"act\") (result i32) {} i32.const 0)",
        if n == 0 {
            String::new()
        } else {
            format!("(local {})", repeat(n, "i64"))
        }
    )
}

#[test]
fn each_cost_limit_rejects_just_over_and_admits_at() {
    let p = Policy::default_policy();
    let l = p.limits.clone();
    at_and_over(
        &p,
        "cost_cap",
        "limits.functions",
        &funcs(l.functions),
        &funcs(l.functions + 1),
    );

    let one = |n| format!("(module {})", locals_fn(n));
    at_and_over(
        &p,
        "cost_cap",
        "limits.locals_per_function",
        &one(l.locals_per_function),
        &one(l.locals_per_function + 1),
    );
    // Parameters count as locals.
    let with_params = |n: u64| {
        format!(
            "(module (func (param i64 i64) {}) {})",
            if n > 2 {
                format!("(local {})", repeat(n - 2, "i64"))
            } else {
                String::new()
            },
            locals_fn(0)
        )
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.locals_per_function",
        &with_params(l.locals_per_function),
        &with_params(l.locals_per_function + 1),
    );

    // Spread over functions so that none is over the per-function limit.
    let spread = |total: u64| {
        let per = l.locals_per_function;
        let mut m = String::from("(module ");
        let mut left = total;
        while left > per {
            let _ = write!(m, "(func (local {})) ", repeat(per, "i64"));
            left -= per;
        }
        m.push_str(&locals_fn(left));
        m.push(')');
        m
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.locals",
        &spread(l.locals),
        &spread(l.locals + 1),
    );

    let nest = |n| {
        format!(
            "(module (func (export \"act\") (result i32) {}{} i32.const 0))",
            repeat(n, "(block"),
            ")".repeat(n as usize)
        )
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.nesting_depth",
        &nest(l.nesting_depth),
        &nest(l.nesting_depth + 1),
    );
    // Loops and ifs nest too.
    let mixed = |n: u64| {
        let mut open = String::new();
        for k in 0..n {
            open.push_str(match k % 3 {
                0 => "(block ",
                1 => "(loop ",
                _ => "i32.const 0 (if (then ",
            });
        }
        let mut close = String::new();
        for k in (0..n).rev() {
            close.push_str(if k % 3 == 2 { "))" } else { ")" });
        }
        format!("(module (func (export \"act\") (result i32) {open}{close} i32.const 0))")
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.nesting_depth",
        &mixed(l.nesting_depth),
        &mixed(l.nesting_depth + 1),
    );

    // br_table: `n` targets plus the default.
    let table = |n| {
        format!(
            "(module (func (export \"act\") (result i32) (block i32.const 7 (br_table {} 0)) i32.const 0))",
            repeat(n, "0")
        )
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.br_table_targets",
        &table(l.br_table_targets),
        &table(l.br_table_targets + 1),
    );

    let globals = |n| format!("(module {} {ACT})", repeat(n, "(global i32 (i32.const 0))"));
    at_and_over(
        &p,
        "cost_cap",
        "limits.globals",
        &globals(l.globals),
        &globals(l.globals + 1),
    );

    // `act`'s type is one of them.
    let types = |n: u64| {
        let mut m = String::from("(module ");
        for k in 1..n {
            let _ = write!(m, "(type (func (param {})))", repeat(k % 50 + 1, "i32"));
        }
        m.push_str(ACT);
        m.push(')');
        m
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.types",
        &types(l.types),
        &types(l.types + 1),
    );

    let data = |n| {
        format!(
            "(module (memory 1) {} {ACT})",
            repeat(n, "(data (i32.const 0) \"x\")")
        )
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.data_segments",
        &data(l.data_segments),
        &data(l.data_segments + 1),
    );

    let elems = |n| {
        format!(
            "(module (table 1 funcref) (func $f) {} {ACT})",
            repeat(n, "(elem (i32.const 0) $f)")
        )
    };
    at_and_over(
        &p,
        "cost_cap",
        "limits.element_segments",
        &elems(l.element_segments),
        &elems(l.element_segments + 1),
    );
}

/// The same host function imported many times is valid Wasm, and each import takes room
/// in the instance: the count is a limit, and the pool's instance size holds it.
#[test]
fn imports_are_counted_and_the_pool_holds_as_many_as_the_policy_allows() {
    let imports = |n| {
        format!(
            "(module {} (memory (export \"memory\") 1) {ACT})",
            repeat(n, r#"(import "agent" "log" (func (param i32 i32)))"#)
        )
    };
    let p = Policy::default_policy();
    let l = &p.limits;
    at_and_over(
        &p,
        "cost_cap",
        "limits.imports",
        &imports(l.imports),
        &imports(l.imports + 1),
    );
    // A policy with room for 9,000 imports: the module validates, so it must also
    // compile and run (the pool's instance size grows with the limit).
    let roomy = policy("[limits]\nmodule_bytes = 131072\nimports = 9000\ntext_bytes = 4194304\n");
    match admit_and_run(&roomy, &imports(9000)) {
        Ok(o) => assert_eq!(o, Outcome::Ok),
        Err(v) => panic!("rejected: {:?}", v.findings),
    }
}

#[test]
fn the_compile_cost_module_of_the_report_is_rejected_cheaply() {
    // 300 functions of 48,000 locals, ~4.5 KB: it took over a second to admit. It is now
    // rejected by the cheap pass, before full validation and the text scan.
    let bytes = locals_only(300, 48_000, true);
    let p = Policy::default_policy();
    assert!(bytes.len() < 6000);
    let v = validate(&p, &bytes);
    assert!(!v.admitted);
    assert!(v.findings.iter().all(|f| f.kind == FindingKind::CostCap));
    let details: Vec<&str> = v.findings.iter().map(|f| f.detail.as_str()).collect();
    assert_eq!(details, ["300 functions is over `limits.functions` = 200"]);
    // With room for the functions, the locals limits catch it.
    let roomy = policy("[limits]\nfunctions = 1000\n");
    let v = validate(&roomy, &bytes);
    let details: Vec<&str> = v.findings.iter().map(|f| f.detail.as_str()).collect();
    assert!(v.findings.iter().all(|f| f.kind == FindingKind::CostCap));
    assert!(
        details
            .iter()
            .any(|d| d.contains("limits.locals_per_function"))
            && details.iter().any(|d| d.contains("limits.locals`")),
        "{details:?}"
    );
}

#[test]
fn every_agent_fixture_is_within_the_default_limits() {
    // Real agents (rustc output and hand-written WAT) must not be caught by the cost
    // limits.
    let p = Policy::default_policy();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/agents");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures/agents") {
        let path = entry.expect("entry").path();
        let bytes = match path.extension().and_then(|e| e.to_str()) {
            Some("wasm") => std::fs::read(&path).expect("read"),
            Some("wat") => wat::parse_file(&path).expect("wat"),
            _ => continue,
        };
        let v = validate(&p, &bytes);
        assert!(v.admitted, "{}: {:?}", path.display(), v.findings);
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} agents");
}
