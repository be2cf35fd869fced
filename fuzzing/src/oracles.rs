//! The body of each fuzz target: it takes the fuzzer's bytes, drives one entry point
//! and panics when an invariant breaks. The same functions run under `cargo test` over
//! the stored corpus and seeded random inputs.

use crate::generators::{self, Shape};
use crate::probe::{self, Probe};
use arbitrary::Unstructured;
use engine::genome::Genome;
use engine::mutators;
use engine::random::Constants;
use engine::rng::Rng;
use runtime::{
    ActForm, Admission, Allocation, FindingKind, Input, Outcome, Param, Policy, RunResult, Sandbox,
    SandboxConfig, Value,
};
use std::sync::{Arc, OnceLock};
use wasmparser::{Validator, WasmFeatures};

/// The sandbox under the default policy, built once per process.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| match Sandbox::new(Policy::default_policy()) {
        Ok(s) => s,
        Err(e) => panic!("cannot build the default sandbox: {e}"),
    })
}

/// Whether open defects with a known signature are to be passed over
/// (`TDEV_FUZZ_KNOWN=skip`), so that a long fuzzing run looks for new ones instead of
/// stopping at the first of a bug already filed. Off by default: the tests stay strict.
pub fn skip_known() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var("TDEV_FUZZ_KNOWN").is_ok_and(|v| v == "skip"))
}

/// The signature of an open defect in an error or divergence message.
pub fn known_defect(message: &str) -> Option<&'static str> {
    const KNOWN: [(&str, &str); 3] = [
        // validation does not enforce the pooling allocator's per-module table count
        (
            "does not fit in pooling allocator",
            "tables_over_pool_limit",
        ),
        // a stack cap over tokio's 2 MiB async stack breaks the engine
        ("async_stack_size", "stack_over_async_stack"),
        // memory.grow past the module's own maximum traps instead of answering -1
        ("memory_limit", "grow_past_declared_max"),
    ];
    KNOWN
        .iter()
        .find(|(sig, _)| message.contains(sig))
        .map(|(_, name)| *name)
}

/// What an oracle saw, for the tests' statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seen {
    /// The input could not be turned into a case (too short, not generatable).
    Skipped,
    /// The module or file was refused with a typed error or a verdict.
    Rejected,
    /// Accepted (admitted, parsed, decoded).
    Accepted,
    /// A module ran and ended with this outcome.
    Ran(Outcome),
}

/// `admit`: `Sandbox::admit` of arbitrary bytes under the default policy. Never panics;
/// a module admitted is compiled (no `Compile` error after a clean verdict); the verdict
/// agrees with `validate` and is well-formed.
pub fn admit(data: &[u8]) -> Seen {
    let sb = sandbox();
    let policy = sb.policy();
    let verdict = sb.validate(data);
    check_verdict(policy, data, &verdict);
    let admission = match sb.admit(data, false) {
        Ok(a) => a,
        Err(e) if skip_known() && known_defect(&e.to_string()).is_some() => {
            return Seen::Skipped;
        }
        Err(e) => panic!(
            "admit of a module with verdict admitted={} findings={:?} failed: {e}",
            verdict.admitted,
            verdict
                .findings
                .iter()
                .map(|f| f.kind.to_string())
                .collect::<Vec<_>>()
        ),
    };
    match admission {
        Admission::Admitted(agent) => {
            assert!(verdict.admitted, "admitted although the verdict rejects it");
            assert_eq!(agent.id(), verdict.agent_id);
            assert_eq!(Some(agent.form()), verdict.form.as_ref());
            Seen::Accepted
        }
        Admission::Rejected(v) => {
            assert!(!verdict.admitted, "rejected although the verdict admits it");
            assert_eq!(v.agent_id, verdict.agent_id);
            Seen::Rejected
        }
    }
}

fn check_verdict(policy: &Policy, data: &[u8], v: &runtime::Verdict) {
    assert_eq!(v.size_bytes, data.len());
    assert_eq!(v.agent_id, runtime::agent_id(data));
    assert!(
        (0.0..=1.0).contains(&v.safety_score),
        "score {}",
        v.safety_score
    );
    let over = data.len() as u64 > policy.limits.module_bytes;
    assert_eq!(
        over,
        v.findings.iter().any(|f| f.kind == FindingKind::SizeCap),
        "size_cap finding iff over the cap"
    );
    for f in &v.findings {
        let word = f.kind.to_string();
        assert_eq!(
            FindingKind::from_word(&word).as_ref(),
            Some(&f.kind),
            "{word}"
        );
        assert!(
            !f.detail.chars().any(char::is_control),
            "finding detail not escaped: {:?}",
            f.detail
        );
    }
    if v.admitted {
        assert!(!v.has_structural_finding());
        assert!(v.form.is_some(), "admitted without an act form");
    }
}

fn arbitrary_value(u: &mut Unstructured<'_>, p: Param) -> arbitrary::Result<Value> {
    Ok(match p {
        Param::I64 => Value::I64(u.arbitrary()?),
        Param::F64 => {
            // Mostly "interesting" floats, sometimes raw bits (NaN payloads included).
            let pick: u8 = u.arbitrary()?;
            let f = match pick % 8 {
                0 => 0.0,
                1 => -0.0,
                2 => f64::INFINITY,
                3 => f64::NAN,
                4 => f64::from(u.arbitrary::<i32>()?),
                _ => f64::from_bits(u.arbitrary()?),
            };
            Value::F64(f.to_bits())
        }
    })
}

/// `run_smith`: a wasm-smith module shaped to the default policy (an ABI v1 `act`,
/// allowed features only, memories and tables up to twice the caps), probed so that
/// its final memory or table size is its result, run in the sandbox. Invariants: admitted
/// modules compile; the outcome is a word of the vocabulary and not `host_error`; a
/// trap has a message and no result, a return a result of `act`'s type; memory, table,
/// output, logs and fuel stay within the policy.
pub fn run_smith(data: &[u8]) -> Seen {
    let mut u = Unstructured::new(data);
    let sb = sandbox();
    let policy = sb.policy();
    let Ok(g) = generators::module(policy, &Shape::sandbox(), &mut u) else {
        return Seen::Skipped;
    };
    let prefer_memory = u.arbitrary().unwrap_or(true);
    let (wasm, probe) = match probe::add(&g.wasm, prefer_memory) {
        Some((w, p)) => (w, Some(p)),
        None => (g.wasm, None),
    };
    let agent = match sb.admit(&wasm, false) {
        Ok(Admission::Admitted(a)) => a,
        Ok(Admission::Rejected(_)) => return Seen::Rejected,
        Err(e) if skip_known() && known_defect(&e.to_string()).is_some() => {
            return Seen::Skipped;
        }
        Err(e) => panic!("a module with a clean verdict does not compile: {e}"),
    };
    let input = match agent.form() {
        ActForm::Bytes => {
            let n = u.int_in_range(0..=512usize).unwrap_or(0);
            Input::Bytes(u.bytes(n).unwrap_or(&[]).to_vec())
        }
        ActForm::Typed { params, .. } => Input::Typed(
            params
                .iter()
                .map(|p| arbitrary_value(&mut u, *p).unwrap_or(Value::I64(0)))
                .collect(),
        ),
    };
    let report = match sb.run(&agent, input) {
        Ok(r) => r,
        Err(e) => panic!("run refused arguments built from act's own signature: {e}"),
    };
    let l = &policy.limits;
    let o = report.outcome;
    assert_eq!(Outcome::from_word(o.as_str()), Some(o));
    assert!(
        !matches!(o, Outcome::HostError | Outcome::EmergencyStop),
        "outcome {o}: {:?}",
        report.trap_message
    );
    assert_eq!(report.trap_message.is_some(), o != Outcome::Ok);
    assert_eq!(report.result.is_some(), o == Outcome::Ok);
    assert!(
        report.output.len() as u64 <= l.output_bytes,
        "output {} over the cap",
        report.output.len()
    );
    assert!(report.logs.len() as u64 <= l.log_lines);
    assert!(report.fuel_used <= l.fuel_per_call);
    if let Some(result) = report.result {
        let size = match (agent.form(), result) {
            (ActForm::Bytes, RunResult::Status(s)) => u64::from(s as u32),
            (ActForm::Typed { result, .. }, RunResult::Value(v)) => match (result, v) {
                (Param::I64, Value::I64(x)) => x as u64,
                (Param::F64, Value::F64(b)) => f64::from_bits(b) as u64,
                other => panic!("result of the wrong type: {other:?}"),
            },
            other => panic!("result of the wrong form: {other:?}"),
        };
        match probe {
            Some(Probe::MemoryPages) => assert!(
                size * 65536 <= l.memory_bytes,
                "memory of {size} pages is over the cap"
            ),
            Some(Probe::TableElements) => assert!(
                size <= l.table_elements,
                "table of {size} elements is over the cap"
            ),
            None => {}
        }
    }
    Seen::Ran(o)
}

/// `genome`: engine genome decode → mutate → encode. A module that decodes encodes
/// back to a module that validates and decodes to the same body; every mutant and
/// crossover child validates under the features the original validated under, and
/// decodes back to its own body.
pub fn genome(data: &[u8]) -> Seen {
    let mut u = Unstructured::new(data);
    let policy = sandbox().policy();
    let from_smith = u.arbitrary::<bool>().unwrap_or(false);
    let wasm = if from_smith {
        let shape = Shape {
            bytes_form: false,
            ..Shape::sandbox()
        };
        match generators::module(policy, &shape, &mut u) {
            Ok(g) => g.wasm,
            Err(_) => return Seen::Skipped,
        }
    } else {
        let n = u.int_in_range(0..=8192usize).unwrap_or(0);
        u.bytes(n).unwrap_or(&[]).to_vec()
    };
    let Some(g) = Genome::decode(&wasm) else {
        return Seen::Rejected;
    };
    let features = if Validator::new_with_features(policy.features.wasm_features())
        .validate_all(&wasm)
        .is_ok()
    {
        policy.features.wasm_features()
    } else {
        WasmFeatures::all()
    };
    let check = |child: &Genome, what: &str| {
        let bytes = child.encode();
        if let Err(e) = Validator::new_with_features(features).validate_all(&bytes) {
            panic!("{what} does not validate: {e}\nops: {:?}", child.ops);
        }
        match Genome::decode(&bytes) {
            Some(again) => assert_eq!(again.ops, child.ops, "{what} decodes to another body"),
            None => panic!("{what} does not decode"),
        }
    };
    check(&g, "the round trip");
    let consts = Arc::new(Constants {
        i64s: (0..u.int_in_range(0..=4).unwrap_or(0))
            .map(|_| u.arbitrary().unwrap_or(0))
            .collect(),
        f64s: (0..u.int_in_range(0..=4).unwrap_or(0))
            .map(|_| f64::from_bits(u.arbitrary().unwrap_or(0)))
            .filter(|f| f.is_finite())
            .collect(),
    });
    let ops = mutators::all(&consts, true);
    let mut rng = Rng::new(u.arbitrary().unwrap_or(0));
    let (mut a, mut b) = (g.clone(), g);
    let steps = u.int_in_range(1..=24usize).unwrap_or(1);
    for _ in 0..steps {
        let choice = u.int_in_range(0..=ops.len()).unwrap_or(0);
        let (child, what) = if choice == ops.len() {
            (mutators::crossover(&a, &b, true, &mut rng), "crossover")
        } else {
            let (m, _) = &ops[choice];
            (m.mutate(&a, &mut rng), m.name())
        };
        if let Some(c) = child {
            check(&c, what);
            if c.ops.len() < 400 {
                b = std::mem::replace(&mut a, c);
            }
        }
    }
    Seen::Accepted
}

/// `policy_task`: policy TOML (`runtime::Policy`) and task files (`engine::task`, TOML
/// and JSON). Never panics; errors are the crate's typed kinds with a message; a policy
/// that is accepted builds a sandbox; a task that is accepted is self-consistent.
pub fn policy_task(data: &[u8]) -> Seen {
    let Some((&which, rest)) = data.split_first() else {
        return Seen::Skipped;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 3 {
        0 => match Policy::from_toml(&text) {
            Ok(p) => {
                let mut cfg = SandboxConfig::new();
                cfg.allocation(Allocation::OnDemand);
                if let Err(e) = Sandbox::with_config(p, &cfg) {
                    if skip_known() && known_defect(&e.to_string()).is_some() {
                        return Seen::Skipped;
                    }
                    panic!("a policy the loader accepts cannot build a sandbox: {e}");
                }
                Seen::Accepted
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        runtime::ErrorKind::Policy(_)
                            | runtime::ErrorKind::PolicyToml { .. }
                            | runtime::ErrorKind::PolicyRegex { .. }
                    ),
                    "untyped policy error: {e:?}"
                );
                assert!(!e.to_string().is_empty());
                Seen::Rejected
            }
        },
        n => match engine::task::Task::parse(&text, n == 2) {
            Ok(t) => {
                assert!(t.params.len() <= 8);
                assert!(!t.cases.is_empty());
                assert!(t.success_threshold.is_finite() && t.success_threshold >= 0.0);
                for c in t.cases.iter().chain(&t.test_cases) {
                    assert_eq!(c.args.len(), t.params.len());
                    for (v, p) in c.args.iter().zip(&t.params).chain([(&c.expect, &t.result)]) {
                        assert!(
                            matches!(
                                (v, p),
                                (Value::I64(_), Param::I64) | (Value::F64(_), Param::F64)
                            ),
                            "{v:?} for a {p} param"
                        );
                    }
                    let e = t.error(c.expect, c.expect);
                    assert!(
                        e.is_finite() && e >= 0.0,
                        "error of a case against itself: {e}"
                    );
                }
                Seen::Accepted
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        engine::ErrorKind::Task(_)
                            | engine::ErrorKind::TaskToml(_)
                            | engine::ErrorKind::TaskJson(_)
                    ),
                    "untyped task error: {e:?}"
                );
                Seen::Rejected
            }
        },
    }
}

/// `api_decode`: the decoders and encoders runtime exposes to the API and CLI —
/// `from_hex` (the `X-Tdev-Input` header), `parse_args` (`?args=`, `--args`), agent ids
/// and the escaping of text that came from a module. A decoder accepts only what its
/// encoder writes; typed arguments survive formatting and parsing bit for bit; escaped
/// text has no control or bidirectional characters.
///
/// One case in five is a whole run request through the API's own decoder
/// ([`crate::api_request::check`]): base64, the JSON body, `X-Tdev-Input`, `?args=` and
/// the body and input caps.
pub fn api_decode(data: &[u8]) -> Seen {
    let mut u = Unstructured::new(data);
    let Ok(which) = u.arbitrary::<u8>() else {
        return Seen::Skipped;
    };
    if which % 5 == 4 {
        return crate::api_request::check(&mut u);
    }
    let rest = u.take_rest();
    let text = String::from_utf8_lossy(rest);
    match which % 5 {
        0 => {
            // hex: decode what the fuzzer wrote; what decodes must be exactly the hex of
            // its bytes (either case), and every byte string's hex decodes back.
            assert_eq!(
                runtime::from_hex(&runtime::to_hex(rest)).as_deref(),
                Some(rest)
            );
            match runtime::from_hex(&text) {
                // lax hex: `+f+f` decodes (u8::from_str_radix takes a sign)
                Some(_) if skip_known() && text.contains(['+', '-']) => Seen::Skipped,
                Some(bytes) => {
                    assert_eq!(
                        runtime::to_hex(&bytes),
                        text.to_ascii_lowercase(),
                        "from_hex accepted {text:?} as {bytes:?}"
                    );
                    Seen::Accepted
                }
                None => Seen::Rejected,
            }
        }
        1 => {
            // parse_args over arbitrary text: a typed error or values of the right types.
            let mut u = Unstructured::new(rest);
            let n = u.int_in_range(0..=8usize).unwrap_or(0);
            let params: Vec<Param> = (0..n)
                .map(|_| {
                    if u.arbitrary().unwrap_or(false) {
                        Param::I64
                    } else {
                        Param::F64
                    }
                })
                .collect();
            let text = String::from_utf8_lossy(u.take_rest());
            match runtime::parse_args(&params, &text) {
                Ok(values) => {
                    assert_eq!(values.len(), params.len());
                    for (v, p) in values.iter().zip(&params) {
                        assert!(matches!(
                            (v, p),
                            (Value::I64(_), Param::I64) | (Value::F64(_), Param::F64)
                        ));
                    }
                    Seen::Accepted
                }
                Err(e) => {
                    assert!(
                        matches!(
                            e.kind(),
                            runtime::ErrorKind::Args(_) | runtime::ErrorKind::ArgValue { .. }
                        ),
                        "untyped error: {e:?}"
                    );
                    Seen::Rejected
                }
            }
        }
        2 => {
            // values formatted as a client would write them parse back bit for bit.
            let mut u = Unstructured::new(rest);
            let n = u.int_in_range(0..=8usize).unwrap_or(0);
            let mut params = Vec::new();
            let mut values = Vec::new();
            for _ in 0..n {
                let p = if u.arbitrary().unwrap_or(false) {
                    Param::I64
                } else {
                    Param::F64
                };
                params.push(p);
                values.push(arbitrary_value(&mut u, p).unwrap_or(Value::I64(0)));
            }
            let text = values
                .iter()
                .map(|v| match v {
                    Value::I64(x) => x.to_string(),
                    Value::F64(b) => format!("{:?}", f64::from_bits(*b)),
                })
                .collect::<Vec<_>>()
                .join(",");
            let parsed = match runtime::parse_args(&params, &text) {
                Ok(p) => p,
                Err(e) => panic!("{text:?} for {params:?}: {e}"),
            };
            for (got, want) in parsed.iter().zip(&values) {
                match (got, want) {
                    (Value::F64(g), Value::F64(w)) if f64::from_bits(*w).is_nan() => {
                        assert!(f64::from_bits(*g).is_nan(), "{text:?}")
                    }
                    _ => assert_eq!(got, want, "{text:?}"),
                }
            }
            Seen::Accepted
        }
        _ => {
            // agent ids and escaping
            let id = runtime::agent_id(rest);
            assert!(runtime::is_agent_id(&id), "{id}");
            assert_eq!(runtime::is_agent_id(&text), {
                text.len() == 71
                    && text.starts_with("sha256:")
                    && text[7..]
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
            for escaped in [runtime::escape_bytes(rest), runtime::escape(&text)] {
                let bad = escaped.chars().find(|c| {
                    c.is_control()
                        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
                });
                assert_eq!(bad, None, "escaped text keeps {bad:?}: {escaped:?}");
            }
            Seen::Accepted
        }
    }
}
