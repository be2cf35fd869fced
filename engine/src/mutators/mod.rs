//! Operators on genomes. Each is a [`Mutator`] in its own file; all take their
//! randomness from the seeded [`Rng`] they are given. They keep the stack typing of the
//! parts of `act` they understand, so almost every offspring validates; the engine
//! still validates each one before it runs.

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
