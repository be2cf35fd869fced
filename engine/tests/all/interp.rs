//! The screening interpreter gives the sandbox's answers: every numeric operation on
//! edge operands, and random lineages on edge and random arguments, compared outcome
//! for outcome and bit for bit.

use crate::mutants::lineage;
use engine::genome::{Genome, NumOp, Op, Ty};
use engine::interp::{Answer, Plan};
use engine::rng::Rng;
use proptest::prelude::*;
use runtime::{Admission, Input, Outcome, Policy, RunResult, Sandbox, Value};

fn sandbox_answer(sandbox: &Sandbox, g: &Genome, args: &[Value]) -> Answer {
    sandbox_answer_with(sandbox, g, args, sandbox.policy().limits.fuel_per_call)
}

fn sandbox_answer_with(sandbox: &Sandbox, g: &Genome, args: &[Value], fuel: u64) -> Answer {
    let bytes = g.encode();
    let agent = match sandbox.admit(&bytes, false).expect("admit") {
        Admission::Admitted(a) => a,
        Admission::Rejected(v) => panic!("not admitted: {:?}\n{:?}", v.findings, g.ops),
    };
    let r = sandbox
        .run_with_fuel(&agent, Input::Typed(args.to_vec()), fuel)
        .expect("run");
    match (r.outcome, r.result) {
        (Outcome::Ok, Some(RunResult::Value(v))) => Answer::Value(v),
        (o, _) => Answer::Trap(o),
    }
}

const I64S: [i64; 12] = [
    0,
    1,
    -1,
    2,
    -7,
    63,
    64,
    65,
    12345,
    i64::MIN,
    i64::MAX,
    i64::MIN + 1,
];
const I32S: [i32; 6] = [0, 1, -1, 31, i32::MIN, i32::MAX];
const F64S: [u64; 20] = [
    0x0000_0000_0000_0000, // +0
    0x8000_0000_0000_0000, // -0
    0x3ff8_0000_0000_0000, // 1.5
    0xc004_0000_0000_0000, // -2.5
    0x3fe0_0000_0000_0000, // 0.5
    0x4004_0000_0000_0000, // 2.5
    0x7ff0_0000_0000_0000, // inf
    0xfff0_0000_0000_0000, // -inf
    0x7ff8_0000_0000_0000, // NaN
    0xfff8_0000_0000_0000, // -NaN
    0x7ff8_0000_0000_1234, // NaN with a payload
    0x7ff4_0000_0000_0001, // signalling NaN
    0x7fef_ffff_ffff_ffff, // MAX
    0x0000_0000_0000_0001, // 5e-324
    0x43e0_0000_0000_0000, // 2^63
    0xc3e0_0000_0000_0000, // -2^63
    0x43df_ffff_ffff_ffff, // just under 2^63
    0x4415_af1d_78b5_8c40, // 1e20
    0xbff0_0000_0000_0000, // -1
    0x4000_0000_0000_0000, // 2
];

fn konst(ty: Ty, i: usize) -> Op {
    match ty {
        Ty::I64 => Op::I64Const(I64S[i % I64S.len()]),
        Ty::I32 => Op::I32Const(I32S[i % I32S.len()]),
        Ty::F64 => Op::F64Const(F64S[i % F64S.len()]),
    }
}

fn count(ty: Ty) -> usize {
    match ty {
        Ty::I64 => I64S.len(),
        Ty::I32 => I32S.len(),
        Ty::F64 => F64S.len(),
    }
}

#[test]
fn every_numeric_operation_on_edge_operands() {
    let policy = Policy::default_policy();
    let sandbox = Sandbox::new(policy.clone()).expect("sandbox");
    let mut compared = 0;
    for &n in NumOp::ALL {
        let (pops, push) = n.sig();
        let first = count(pops[0]);
        let second = pops.get(1).map_or(1, |t| count(*t));
        for i in 0..first {
            for j in 0..second {
                let mut ops = vec![konst(pops[0], i)];
                if let Some(t) = pops.get(1) {
                    ops.push(konst(*t, j));
                }
                ops.push(Op::Num(n));
                let result = if push == Ty::I32 {
                    ops.push(Op::Num(NumOp::I64ExtendI32U));
                    Ty::I64
                } else {
                    push
                };
                let g = Genome::new(&[], result, ops);
                let plan = Plan::new(&g, &policy).expect("interpretable");
                let want = sandbox_answer(&sandbox, &g, &[]);
                let got = plan.call(&[], 10_000_000);
                assert_eq!(got, want, "{n:?} on ({i}, {j}): {:?}", g.ops);
                compared += 1;
            }
        }
    }
    assert!(compared > 2000, "{compared}");
}

fn args_for(params: &[Ty], rng: &mut Rng) -> Vec<Value> {
    params
        .iter()
        .map(|t| match t {
            Ty::F64 => Value::F64(if rng.chance(0.5) {
                F64S[rng.below(F64S.len())]
            } else {
                ((rng.below(2001) as f64 - 1000.0) / 37.0).to_bits()
            }),
            _ => Value::I64(if rng.chance(0.5) {
                I64S[rng.below(I64S.len())]
            } else {
                rng.below(2001) as i64 - 1000
            }),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_lineages_get_the_sandboxs_answers(seed in any::<u64>(), sig in 0usize..4) {
        let policy = Policy::default_policy();
        let sandbox = Sandbox::new(policy.clone()).expect("sandbox");
        let mut rng = Rng::new(seed ^ 0x5eed);
        let (mut planned, mut total) = (0, 0);
        for g in lineage(seed, sig, 30) {
            total += 1;
            let Some(plan) = Plan::new(&g, &policy) else { continue };
            planned += 1;
            for _ in 0..4 {
                let args = args_for(&g.params, &mut rng);
                // a small budget, as a task's per-case budget: loops run out of it,
                // and must do so on the same calls in both
                let fuel = 1 + rng.below(3000) as u64;
                prop_assert_eq!(
                    plan.call(&args, fuel),
                    sandbox_answer_with(&sandbox, &g, &args, fuel),
                    "{:?} on {:?} with fuel {}", g.ops, args, fuel
                );
            }
        }
        // engine-made offspring are almost all interpretable
        prop_assert!(planned * 10 >= total * 9, "{planned}/{total}");
    }
}

/// Loops, exits and budgets: lineages long enough to hold control flow, each offspring
/// with a loop compared on several budgets around where it runs out.
#[test]
fn loops_run_out_of_fuel_on_the_same_call_in_both() {
    let policy = Policy::default_policy();
    let sandbox = Sandbox::new(policy.clone()).expect("sandbox");
    let mut rng = Rng::new(99);
    let (mut looped, mut exhausted, mut answered) = (0, 0, 0);
    for seed in 0..40u64 {
        for g in lineage(seed, seed as usize, 40) {
            if !g.ops.iter().any(|o| matches!(o, Op::Loop(_))) {
                continue;
            }
            let Some(plan) = Plan::new(&g, &policy) else {
                continue;
            };
            looped += 1;
            let args = args_for(&g.params, &mut rng);
            for fuel in [1, 2, 7, 40, 41, 300, 1000 + rng.below(5000) as u64] {
                let ours = plan.call(&args, fuel);
                assert_eq!(
                    ours,
                    sandbox_answer_with(&sandbox, &g, &args, fuel),
                    "{:?} on {:?} with fuel {}",
                    g.ops,
                    args,
                    fuel
                );
                match ours {
                    Answer::Trap(Outcome::OutOfFuel) => exhausted += 1,
                    Answer::Value(_) => answered += 1,
                    Answer::Trap(_) => {}
                }
            }
        }
    }
    println!("{looped} offspring with loops: {exhausted} calls out of fuel, {answered} answered");
    assert!(looped >= 200, "{looped}");
    assert!(
        exhausted > 100 && answered > 100,
        "{exhausted} / {answered}"
    );
}

#[test]
fn what_the_interpreter_refuses() {
    let policy = Policy::default_policy();
    // a module with a memory, a start function or a call is left to the sandbox
    for wat in [
        r#"(module (memory 1) (func (export "act") (param i64) (result i64) (local.get 0)))"#,
        r#"(module (func $s) (start $s) (func (export "act") (param i64) (result i64) (local.get 0)))"#,
        r#"(module (func $f (result i64) (i64.const 1))
                   (func (export "act") (param i64) (result i64) (i64.add (local.get 0) (call $f))))"#,
    ] {
        let g = Genome::decode(&wat::parse_str(wat).expect("wat")).expect("decode");
        assert!(Plan::new(&g, &policy).is_none(), "{wat}");
    }
    // a pure module is taken, blocks and loops included, whatever the policy's fuel
    let g = Genome::new(&[Ty::I64], Ty::I64, vec![Op::LocalGet(0)]);
    assert!(Plan::new(&g, &policy).is_some());
    let mut tight = policy.clone();
    tight.limits.fuel_per_call = 50;
    assert!(Plan::new(&g, &tight).is_some());
    let block = wat::parse_str(
        r#"(module (func (export "act") (param i64) (result i64)
               (block (result i64) (local.get 0))))"#,
    )
    .expect("wat");
    let g = Genome::decode(&block).expect("decode");
    assert!(Plan::new(&g, &policy).is_some());
}

/// Cranelift rewrites `fmul(fneg x, fneg y)` to `fmul(x, y)`: the same number, but a
/// NaN operand comes out with the other sign. The interpreter follows it where the
/// optimizer sees two negations (through the stack and locals, not through a constant),
/// and leaves to the sandbox a body where a merge of control flow hides whether it does.
/// (Found by the lineage proptest at seed 10089220076918437326.)
#[test]
fn products_of_negations_keep_the_sandboxs_nan_bits() {
    let policy = Policy::default_policy();
    let sandbox = Sandbox::new(policy.clone()).expect("sandbox");
    let body = |b: &str| {
        format!(r#"(module (func (export "act") (param f64 f64) (result f64) (local f64) {b}))"#)
    };
    let cases = [
        // both negated on the stack: rewritten
        ("local.get 0 f64.neg local.get 1 f64.neg f64.mul", true),
        // through locals
        (
            "local.get 0 f64.neg local.set 2 local.get 1 f64.neg local.get 2 f64.mul",
            true,
        ),
        // one square of a negation
        ("local.get 0 f64.neg local.tee 2 local.get 2 f64.mul", true),
        // a negated constant folds: not a negation
        ("local.get 0 f64.neg f64.const 2 f64.neg f64.mul", true),
        ("local.get 0 f64.neg local.get 2 f64.neg f64.mul", true),
        // three negations are one
        (
            "local.get 0 f64.neg f64.neg f64.neg local.get 1 f64.neg f64.mul",
            true,
        ),
        // two negations are none
        (
            "local.get 0 f64.neg f64.neg local.get 1 f64.neg f64.mul",
            true,
        ),
        // a negation of a product of negations
        (
            "local.get 0 f64.neg local.get 1 f64.neg f64.mul f64.neg local.get 0 f64.neg f64.mul",
            true,
        ),
        // through a block without a branch to its end
        (
            "(block (result f64) local.get 0 f64.neg) local.get 1 f64.neg f64.mul",
            true,
        ),
        // a merge: one way or the other, the sandbox says
        (
            "(block (result f64) local.get 0 f64.neg local.get 1 f64.const 0 f64.lt br_if 0 drop local.get 1 f64.neg) local.get 0 f64.neg f64.mul",
            false,
        ),
    ];
    let nans = [
        0x7ff8_0000_0000_0034u64,
        0xfff8_0000_0000_0034,
        0x7ff4_0000_0000_0001,
        0xfff0_0000_0000_0000,
        0x3ff8_0000_0000_0000,
        0x8000_0000_0000_0000,
    ];
    for (text, planned) in cases {
        let wasm = wat::parse_str(body(text)).expect("wat");
        let g = Genome::decode(&wasm).expect("decode");
        let plan = Plan::new(&g, &policy);
        assert_eq!(plan.is_some(), planned, "{text}");
        let Some(plan) = plan else { continue };
        for a in nans {
            for b in nans {
                let args = [Value::F64(a), Value::F64(b)];
                assert_eq!(
                    plan.call(&args, 1_000_000),
                    sandbox_answer(&sandbox, &g, &args),
                    "{text} on {a:#x}, {b:#x}"
                );
            }
        }
    }
}
