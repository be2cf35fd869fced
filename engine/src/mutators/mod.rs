//! Operators on genomes. Each is a [`Mutator`] in its own file; all take their
//! randomness from the seeded [`Rng`] they are given. They keep the stack typing of the
//! parts of `act` they understand, so almost every offspring validates; the engine
//! still validates each one before it runs.

/// `fn name` of a [`Mutator`]: its name for statistics.
macro_rules! named {
    ($name:literal) => {
        fn name(&self) -> &'static str {
            $name
        }
    };
}

mod const_perturb;
mod crossover;
mod delete;
mod insert;
mod neutral;
mod opcode_swap;
mod subtree;

pub use const_perturb::ConstPerturb;
pub use crossover::crossover;
pub use delete::Delete;
pub use insert::Insert;
pub use neutral::Neutral;
pub use opcode_swap::OpcodeSwap;
pub use subtree::Subtree;

use crate::genome::{Genome, Op, Ty};
use crate::random::Constants;
use crate::rng::Rng;
use std::sync::Arc;

/// A mutation operator.
pub trait Mutator: Send + Sync {
    /// Its name, for statistics.
    fn name(&self) -> &'static str;
    /// A mutant of `g`, or `None` when it has nothing to work on.
    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome>;
}

/// Every mutator with its weight in the mix; those that make constants draw some from
/// `consts` (the task's, see [`Constants::from_task`]).
pub fn all(consts: &Arc<Constants>) -> Vec<(Box<dyn Mutator>, u32)> {
    vec![
        (
            Box::new(ConstPerturb {
                consts: consts.clone(),
            }),
            3,
        ),
        (Box::new(OpcodeSwap), 3),
        (
            Box::new(Insert {
                max_depth: 2,
                consts: consts.clone(),
            }),
            2,
        ),
        (
            Box::new(Delete {
                consts: consts.clone(),
            }),
            2,
        ),
        (
            Box::new(Subtree {
                max_depth: 3,
                consts: consts.clone(),
            }),
            3,
        ),
        (Box::new(Neutral), 1),
    ]
}

/// Single-value expressions of a body: (first op, last op, type) for each contiguous
/// run of understood ops that pushes exactly one value and never reaches below its
/// starting stack height.
pub fn expressions(g: &Genome) -> Vec<(usize, usize, Ty)> {
    let stacks = g.stacks();
    let mut out = Vec::new();
    for b in 0..g.ops.len() {
        let Some(after) = &stacks[b + 1] else { break };
        let Some(ty) = after.last().copied() else {
            continue;
        };
        let target = after.len() - 1;
        let mut min = usize::MAX;
        for a in (0..=b).rev() {
            let Some(before) = &stacks[a] else { break };
            if matches!(g.ops[a], Op::LocalSet(_) | Op::Drop) {
                break;
            }
            min = min.min(before.len());
            if min < target {
                break;
            }
            if before.len() == target {
                out.push((a, b, ty));
                break;
            }
        }
    }
    out
}

/// Positions where the stack is known and has a value of a tracked type on top.
pub fn typed_points(g: &Genome) -> Vec<(usize, Ty)> {
    g.stacks()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, *s.as_ref()?.last()?)))
        .collect()
}

fn pick<T: Copy>(items: &[T], rng: &mut Rng) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.below(items.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genome::NumOp;

    fn valid(g: &Genome) -> bool {
        runtime::validate(&runtime::Policy::default_policy(), &g.encode()).admitted
    }

    #[test]
    fn a_single_leaf_leaves_most_mutators_nothing_to_do() {
        let g = Genome::new(&[Ty::I64], Ty::I64, vec![Op::LocalGet(0)]);
        let mut rng = Rng::new(3);
        let none = Arc::new(Constants::default());
        // nothing of two or more ops to delete, no constant, no other local or op
        assert!(
            Delete {
                consts: none.clone()
            }
            .mutate(&g, &mut rng)
            .is_none()
        );
        assert!(
            ConstPerturb {
                consts: none.clone()
            }
            .mutate(&g, &mut rng)
            .is_none()
        );
        assert!(OpcodeSwap.mutate(&g, &mut rng).is_none());
        // the others grow it, validly
        for (m, _) in all(&none) {
            for _ in 0..20 {
                if let Some(c) = m.mutate(&g, &mut rng) {
                    assert!(valid(&c), "{}: {:?}", m.name(), c.ops);
                }
            }
        }
        // a body with no value on top offers no insertion point
        let empty = Genome::new(&[Ty::I64], Ty::I64, vec![]);
        assert!(
            Insert {
                max_depth: 2,
                consts: none.clone()
            }
            .mutate(&empty, &mut rng)
            .is_none()
        );
        assert!(Neutral.mutate(&empty, &mut rng).is_none());
        assert!(crossover(&empty, &g, &mut rng).is_none());
    }

    #[test]
    fn crossover_needs_a_donor_of_the_same_type() {
        let a = Genome::new(&[Ty::I64], Ty::I64, vec![Op::LocalGet(0)]);
        let b = Genome::new(
            &[Ty::F64],
            Ty::F64,
            vec![Op::LocalGet(0), Op::LocalGet(0), Op::Num(NumOp::F64Add)],
        );
        let mut rng = Rng::new(5);
        for _ in 0..20 {
            assert!(crossover(&a, &b, &mut rng).is_none());
        }
    }

    #[test]
    fn mutants_of_a_module_near_the_size_cap_stay_valid() {
        let policy = runtime::Policy::default_policy();
        let cap = policy.limits.module_bytes as usize;
        // a body of ten-byte constants, as large as the module cap allows
        let mut ops = vec![Op::LocalGet(0)];
        let mut g = Genome::new(&[Ty::I64], Ty::I64, ops.clone());
        for i in 0.. {
            ops.push(Op::I64Const(i64::MAX - i));
            ops.push(Op::Num(if i % 2 == 0 {
                NumOp::I64Add
            } else {
                NumOp::I64Xor
            }));
            let bigger = Genome::new(&[Ty::I64], Ty::I64, ops.clone());
            if bigger.encode().len() > cap {
                break;
            }
            g = bigger;
        }
        assert!(g.encode().len() > cap - 32 && valid(&g));
        let consts = Arc::new(Constants {
            i64s: vec![i64::MIN, i64::MAX],
            f64s: vec![],
        });
        let (mut rng, mut over) = (Rng::new(11), 0);
        for (m, _) in all(&consts) {
            for _ in 0..10 {
                let Some(c) = m.mutate(&g, &mut rng) else {
                    continue;
                };
                let bytes = c.encode();
                let v = runtime::validate(&policy, &bytes);
                if bytes.len() <= cap {
                    assert!(v.admitted, "{}: {:?}", m.name(), v.findings);
                } else {
                    // over the cap: refused for its size only (the engine culls it)
                    over += 1;
                    assert!(!v.admitted);
                    assert!(
                        v.findings.iter().all(|f| f.kind.to_string() == "size_cap"),
                        "{}: {:?}",
                        m.name(),
                        v.findings
                    );
                }
                assert_eq!(
                    c.stacks().last(),
                    Some(&Some(vec![Ty::I64])),
                    "{}",
                    m.name()
                );
            }
        }
        assert!(over > 0, "some mutants grow past the cap");
    }
}
