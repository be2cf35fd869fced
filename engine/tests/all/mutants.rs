//! Every mutant validates.

use engine::genome::{Genome, Op, Ty};
use engine::mutators;
use engine::random;
use engine::rng::Rng;
use proptest::prelude::*;
use runtime::Policy;

const SIGS: [(&[Ty], Ty); 4] = [
    (&[Ty::F64], Ty::F64),
    (&[Ty::I64, Ty::I64], Ty::I64),
    (&[Ty::I64, Ty::I64, Ty::I64], Ty::I64),
    (&[Ty::I64, Ty::F64], Ty::F64),
];

/// Applies `steps` random operators (crossover with a second lineage one time in five)
/// and returns every offspring produced.
pub(crate) fn lineage(seed: u64, sig: usize, steps: usize) -> Vec<Genome> {
    named_lineage(seed, sig, steps)
        .into_iter()
        .map(|(g, _)| g)
        .collect()
}

/// [`lineage`], each offspring with the name of the operator that made it.
pub(crate) fn named_lineage(seed: u64, sig: usize, steps: usize) -> Vec<(Genome, &'static str)> {
    let mut rng = Rng::new(seed);
    let (params, result) = SIGS[sig % SIGS.len()];
    // task constants at the edges of their types
    let consts = std::sync::Arc::new(random::Constants {
        i64s: vec![i64::MIN, i64::MAX, 0, -1, 1000],
        f64s: vec![-0.0, f64::MAX, 5e-324, 0.1],
    });
    let ops = mutators::all(&consts, true);
    let mut a = random::module(params, result, 4, &consts, &mut rng);
    let mut b = random::module(params, result, 4, &consts, &mut rng);
    let mut out = Vec::new();
    for _ in 0..steps {
        let (child, name) = if rng.chance(0.2) {
            (mutators::crossover(&a, &b, true, &mut rng), "crossover")
        } else {
            let (m, _) = &ops[rng.below(ops.len())];
            (m.mutate(&a, &mut rng), m.name())
        };
        if let Some(c) = child {
            out.push((c.clone(), name));
            if c.ops.len() < 400 {
                b = std::mem::replace(&mut a, c);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn every_mutant_validates(seed in any::<u64>(), sig in 0usize..4) {
        let policy = Policy::default_policy();
        for g in lineage(seed, sig, 60) {
            let bytes = g.encode();
            let v = runtime::validate(&policy, &bytes);
            prop_assert!(v.admitted, "{:?}\n{:?}", v.findings, g.ops);
            // and it decodes back to the same body
            let again = Genome::decode(&bytes).expect("decodes");
            prop_assert_eq!(&again.ops, &g.ops);
        }
    }
}

/// The share of valid offspring over more than 10,000 offspring that hold a loop. An
/// offspring that fails validation is written out (its bytes, and how to replay its
/// lineage) under the test's temporary folder.
#[test]
fn valid_share_over_many_offspring_with_loops() {
    let policy = Policy::default_policy();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("invalid-mutants");
    let (mut total, mut valid, mut looped, mut looped_valid) = (0usize, 0usize, 0usize, 0usize);
    let mut seed = 0u64;
    while looped < 10_000 && seed < 5_000 {
        for (k, (g, name)) in named_lineage(seed, seed as usize, 60)
            .into_iter()
            .enumerate()
        {
            let bytes = g.encode();
            let ok = runtime::validate(&policy, &bytes).admitted;
            let has_loop = g.ops.iter().any(|o| matches!(o, Op::Loop(_)));
            total += 1;
            valid += usize::from(ok);
            looped += usize::from(has_loop);
            looped_valid += usize::from(has_loop && ok);
            if !ok {
                std::fs::create_dir_all(&out).expect("mkdir");
                let stem = out.join(format!("seed{seed}-offspring{k}"));
                std::fs::write(stem.with_extension("wasm"), &bytes).expect("write");
                std::fs::write(
                    stem.with_extension("txt"),
                    format!(
                        "replay: named_lineage({seed}, {seed}, 60)[{k}], made by {name}\n{:?}\n",
                        g.ops
                    ),
                )
                .expect("write");
            }
        }
        seed += 1;
    }
    let share = valid as f64 / total as f64;
    let loop_share = looped_valid as f64 / looped.max(1) as f64;
    println!(
        "valid offspring: {valid}/{total} = {share:.5}; with a loop: {looped_valid}/{looped} = {loop_share:.5}"
    );
    assert!(looped >= 10_000, "{looped} offspring with loops");
    assert!(loop_share >= 0.999, "{loop_share}; see {}", out.display());
    assert!(share >= 0.999, "{share}; see {}", out.display());
}

#[test]
fn mutators_work_on_seeded_modules_with_control_flow() {
    // A module the engine did not write: other functions, a block, a memory.
    let wat = r#"(module
        (memory 1)
        (func $sq (param i64) (result i64) (i64.mul (local.get 0) (local.get 0)))
        (func (export "act") (param i64 i64) (result i64)
          (local $t i64)
          (local.set $t (i64.add (local.get 0) (i64.const 3)))
          (i64.add (call $sq (local.get $t)) (local.get 1))))"#;
    let bytes = wat::parse_str(wat).expect("wat");
    let g = Genome::decode(&bytes).expect("decode");
    let mut rng = Rng::new(7);
    let policy = Policy::default_policy();
    let mut changed = 0;
    for (m, _) in mutators::all(&Default::default(), true) {
        for _ in 0..50 {
            if let Some(c) = m.mutate(&g, &mut rng) {
                assert!(
                    runtime::validate(&policy, &c.encode()).admitted,
                    "{}: {:?}",
                    m.name(),
                    c.ops
                );
                changed += 1;
            }
        }
    }
    assert!(changed > 100);
}
