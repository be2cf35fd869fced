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
mod exit;
mod insert;
mod locals;
mod neutral;
mod opcode_swap;
mod retarget;
mod subtree;
mod unwrap;
mod wrap;

pub use const_perturb::ConstPerturb;
pub use crossover::crossover;
pub use delete::Delete;
pub use exit::Exit;
pub use insert::Insert;
pub use locals::Locals;
pub use neutral::Neutral;
pub use opcode_swap::OpcodeSwap;
pub use retarget::Retarget;
pub use subtree::Subtree;
pub use unwrap::Unwrap;
pub use wrap::Wrap;

use crate::genome::{Genome, Op, Ty};
use crate::random::{Constants, Fresh};
use crate::rng::Rng;
use crate::typing::{self, Typing};
use std::sync::Arc;

/// A mutation operator.
pub trait Mutator: Send + Sync {
    /// Its name, for statistics.
    fn name(&self) -> &'static str;
    /// A mutant of `g`, or `None` when it has nothing to work on.
    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome>;
}

/// Every mutator with its weight in the mix; those that make constants draw some from
/// `consts` (the task's, see [`Constants::from_task`]). With `control`, the mutators
/// of control flow and locals ([`control`]) join the mix.
pub fn all(consts: &Arc<Constants>, control: bool) -> Vec<(Box<dyn Mutator>, u32)> {
    let mut v = straight(consts);
    if control {
        v.extend(self::control(consts));
    }
    v
}

/// The mutators of control flow and locals, with their weights: wrap a piece in a
/// loop, a conditional or a block; unwrap one; insert a conditional exit; retarget a
/// branch; add or reuse a local.
pub fn control(consts: &Arc<Constants>) -> Vec<(Box<dyn Mutator>, u32)> {
    let fresh = Fresh {
        max_depth: 2,
        consts: consts.clone(),
    };
    vec![
        (Box::new(Wrap(fresh.clone())), 3),
        (Box::new(Unwrap), 1),
        (Box::new(Exit(fresh.clone())), 2),
        (Box::new(Retarget), 1),
        (Box::new(Locals { fresh, max_new: 8 }), 3),
    ]
}

/// The mutators of straight-line code, with their weights.
pub fn straight(consts: &Arc<Constants>) -> Vec<(Box<dyn Mutator>, u32)> {
    vec![
        (
            Box::new(ConstPerturb {
                consts: consts.clone(),
            }),
            3,
        ),
        (Box::new(OpcodeSwap), 3),
        (
            Box::new(Insert(Fresh {
                max_depth: 2,
                consts: consts.clone(),
            })),
            2,
        ),
        (
            Box::new(Delete {
                consts: consts.clone(),
            }),
            2,
        ),
        (
            Box::new(Subtree(Fresh {
                max_depth: 3,
                consts: consts.clone(),
            })),
            3,
        ),
        (Box::new(Neutral), 1),
    ]
}

/// Single-value expressions of a body: (first op, last op, type) for each contiguous
/// run of understood ops that pushes exactly one value, never reaches below its
/// starting stack height, and closes every frame it opens (branches to frames around
/// it are kept: the run stays where it is).
pub fn expressions(g: &Genome) -> Vec<(usize, usize, Ty)> {
    let t = Typing::of(g);
    let points = &t.points;
    let mut out = Vec::new();
    for b in 0..g.ops.len() {
        let Some(after) = &points[b + 1] else {
            continue;
        };
        let Some(ty) = after.top() else {
            continue;
        };
        let target = after.stack.len() - 1;
        let mut min = usize::MAX;
        for a in (0..=b).rev() {
            let Some(before) = &points[a] else { break };
            if matches!(g.ops[a], Op::LocalSet(_) | Op::Drop) {
                break;
            }
            min = min.min(before.stack.len());
            if min < target {
                break;
            }
            // The first start at the result's height is the expression's (an earlier
            // one would take values from under it), unless it lies in a frame the
            // expression opens.
            if before.stack.len() == target && before.depth() <= after.depth() {
                if before.depth() == after.depth() && typing::balanced(&g.ops[a..=b]) {
                    out.push((a, b, ty));
                }
                break;
            }
        }
    }
    out
}

/// Positions where the stack is known and has a value of a tracked type on top that
/// the innermost frame may use.
pub fn typed_points(g: &Genome) -> Vec<(usize, Ty)> {
    Typing::of(g)
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.as_ref()?.top()?)))
        .collect()
}

/// The ends `b` of the net-zero pieces `ops[a..b]` (the empty one included): each leaves
/// the stack and the control depth as they were at `a`, never reaching below them,
/// with every position in between known to the typing.
pub fn segments_from(g: &Genome, t: &Typing, a: usize) -> Vec<usize> {
    let ops = &g.ops;
    let Some(Some(start)) = t.points.get(a) else {
        return Vec::new();
    };
    let (h, d) = (start.stack.len(), start.depth());
    let mut out = vec![a];
    for b in a + 1..t.points.len() {
        // the op just passed must not leave or re-enter the starting frame
        if matches!(ops[b - 1], Op::Else | Op::End)
            && t.points[b - 1].as_ref().is_none_or(|p| p.depth() <= d)
        {
            break;
        }
        // nor take a value from under its start while an op runs
        let prev = t.points[b - 1].as_ref();
        if prev
            .and_then(|p| p.low(g, &ops[b - 1]))
            .is_none_or(|low| low < h)
        {
            break;
        }
        let Some(p) = &t.points[b] else { break };
        if p.stack.len() < h || p.depth() < d {
            break;
        }
        if p.stack.len() == h && p.depth() == d {
            out.push(b);
        }
    }
    out
}

/// Positions the typing knows (live code).
pub fn live_points(t: &Typing) -> Vec<usize> {
    (0..t.points.len())
        .filter(|&i| t.points[i].is_some())
        .collect()
}

/// `ops` moved under `by` more (or, negative, fewer) frames: branches that leave the
/// piece get their depths shifted; `None` when one would target a frame that is gone.
pub fn shift_branches(ops: &[Op], by: i64) -> Option<Vec<Op>> {
    let mut depth = 0u32;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let shifted = |d: u32| -> Option<u32> {
            if d < depth {
                Some(d)
            } else {
                u32::try_from(i64::from(d) + by)
                    .ok()
                    .filter(|n| *n >= depth)
            }
        };
        out.push(match op {
            Op::Block(_) | Op::Loop(_) | Op::If(_) => {
                depth += 1;
                op.clone()
            }
            Op::End => {
                depth = depth.saturating_sub(1);
                Op::End
            }
            Op::Br(d) => Op::Br(shifted(*d)?),
            Op::BrIf(d) => Op::BrIf(shifted(*d)?),
            other => other.clone(),
        });
    }
    Some(out)
}

/// Swaps locals `x` and `y` (of one type).
fn swap(x: u32, y: u32) -> [Op; 4] {
    [
        Op::LocalGet(x),
        Op::LocalGet(y),
        Op::LocalSet(x),
        Op::LocalSet(y),
    ]
}

fn pick<T: Copy>(items: &[T], rng: &mut Rng) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.below(items.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genome::{BlockTy, NumOp};

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
        for (m, _) in all(&none, false) {
            for _ in 0..20 {
                if let Some(c) = m.mutate(&g, &mut rng) {
                    assert!(valid(&c), "{}: {:?}", m.name(), c.ops);
                }
            }
        }
        // a body with no value on top offers no insertion point
        let empty = Genome::new(&[Ty::I64], Ty::I64, vec![]);
        assert!(
            Insert(Fresh {
                max_depth: 2,
                consts: none.clone()
            })
            .mutate(&empty, &mut rng)
            .is_none()
        );
        assert!(Neutral.mutate(&empty, &mut rng).is_none());
        assert!(crossover(&empty, &g, false, &mut rng).is_none());
    }

    /// Offspring of `m` on `g` (seeds 0..400) whose body holds `pattern` somewhere.
    fn offspring_with(m: &dyn Mutator, g: &Genome, pattern: &[Op]) -> Vec<Genome> {
        (0..400)
            .filter_map(|seed| m.mutate(g, &mut Rng::new(seed)))
            .filter(|c| c.ops.windows(pattern.len()).any(|w| w == pattern))
            .collect()
    }

    #[test]
    fn wrap_makes_while_loops_that_test_before_the_body() {
        // local 0 - local 1, with `local 0 += 1` as the piece to wrap
        use Op::*;
        let g = Genome::new(
            &[Ty::I64, Ty::I64],
            Ty::I64,
            vec![
                LocalGet(0),
                I64Const(1),
                Num(NumOp::I64Add),
                LocalSet(0),
                LocalGet(0),
                LocalGet(1),
                Num(NumOp::I64Sub),
            ],
        );
        let fresh = Fresh {
            max_depth: 1,
            consts: Arc::new(Constants::default()),
        };
        let head = [Block(BlockTy::Empty), Loop(BlockTy::Empty)];
        let found = offspring_with(&Wrap(fresh), &g, &head);
        assert!(!found.is_empty(), "no while loop in 400 offspring");
        let policy = runtime::Policy::default_policy();
        for c in &found {
            assert!(valid(c), "{:?}", c.ops);
            // `block loop <cond> br_if 1 … br 0 end end`
            let at = c.ops.windows(2).position(|w| w == head).expect("head");
            let exit = c.ops[at..].iter().position(|o| *o == BrIf(1));
            assert!(exit.is_some(), "{:?}", c.ops);
            // the interpreter and the sandbox agree on it, loops included
            let plan = crate::interp::Plan::new(c, &policy).expect("plan");
            let args = [runtime::Value::I64(5), runtime::Value::I64(3)];
            let fuel = 10_000;
            let sb = runtime::Sandbox::new(policy.clone()).expect("sandbox");
            let runtime::Admission::Admitted(agent) = sb.admit(&c.encode(), false).expect("admit")
            else {
                panic!("rejected: {:?}", c.ops);
            };
            let r = sb
                .run_with_fuel(&agent, runtime::Input::Typed(args.to_vec()), fuel)
                .expect("run");
            let by_sandbox = match (r.outcome, r.result) {
                (runtime::Outcome::Ok, Some(runtime::RunResult::Value(v))) => {
                    crate::interp::Answer::Value(v)
                }
                (o, _) => crate::interp::Answer::Trap(o),
            };
            assert_eq!(plan.call(&args, fuel), by_sandbox, "{:?}", c.ops);
        }
    }

    #[test]
    fn wrap_makes_recurrences_such_as_euclids_loop() {
        // `local 0` alone: a recurrence over copies of (0, 1) in its place with
        // `f = a % b` is Euclid's algorithm
        use Op::*;
        let g = Genome::new(&[Ty::I64, Ty::I64], Ty::I64, vec![LocalGet(0)]);
        let fresh = Fresh {
            max_depth: 1,
            consts: Arc::new(Constants::default()),
        };
        let copies = [LocalGet(0), LocalSet(2), LocalGet(1), LocalSet(3)];
        let step = [
            LocalGet(2),
            LocalGet(3),
            Num(NumOp::I64RemS),
            LocalSet(2),
            LocalGet(2),
            LocalGet(3),
            LocalSet(2),
            LocalSet(3),
        ];
        let test = [LocalGet(3), Num(NumOp::I64Eqz), BrIf(1)];
        let found: Vec<Genome> = (0..4000)
            .filter_map(|seed| Wrap(fresh.clone()).mutate(&g, &mut Rng::new(seed)))
            .filter(|c| c.ops.starts_with(&copies))
            .filter(|c| c.ops.windows(step.len()).any(|w| w == step))
            .filter(|c| c.ops.windows(test.len()).any(|w| w == test))
            .filter(|c| c.ops.last() == Some(&LocalGet(2)))
            .collect();
        assert!(!found.is_empty(), "no Euclid's loop in 4,000 offspring");
        let policy = runtime::Policy::default_policy();
        let sb = runtime::Sandbox::new(policy.clone()).expect("sandbox");
        for c in &found {
            assert!(valid(c), "{:?}", c.ops);
            let plan = crate::interp::Plan::new(c, &policy).expect("plan");
            let runtime::Admission::Admitted(agent) = sb.admit(&c.encode(), false).expect("admit")
            else {
                panic!("rejected: {:?}", c.ops);
            };
            for (a, b, gcd) in [
                (54, 24, 6),
                (4200, 3528, 168),
                (123456, 654321, 3),
                (1, 1, 1),
            ] {
                let args = [runtime::Value::I64(a), runtime::Value::I64(b)];
                let r = sb
                    .run_with_fuel(&agent, runtime::Input::Typed(args.to_vec()), 10_000)
                    .expect("run");
                let want = runtime::Value::I64(gcd);
                assert_eq!(
                    r.result,
                    Some(runtime::RunResult::Value(want)),
                    "{:?}",
                    c.ops
                );
                assert_eq!(
                    plan.call(&args, 10_000),
                    crate::interp::Answer::Value(want),
                    "{:?}",
                    c.ops
                );
            }
        }
    }

    #[test]
    fn the_recurrences_of_wrap_end() {
        // three i64 params (max3's shape), `local 0` alone: every recurrence in its
        // place makes |b| smaller each round, so on small inputs it ends well within
        // the budget, whichever pair and f it drew
        use Op::*;
        let g = Genome::new(&[Ty::I64, Ty::I64, Ty::I64], Ty::I64, vec![LocalGet(0)]);
        let fresh = Fresh {
            max_depth: 2,
            consts: Arc::new(Constants::default()),
        };
        let is_recurrence = |c: &Genome| {
            c.ops.windows(7).any(|w| {
                matches!(
                    w,
                    [LocalGet(x), LocalGet(y), LocalSet(x2), LocalSet(y2), Br(0), End, End]
                        if x == x2 && y == y2
                )
            })
        };
        let found: Vec<Genome> = (0..6000)
            .filter_map(|seed| Wrap(fresh.clone()).mutate(&g, &mut Rng::new(seed)))
            .filter(is_recurrence)
            .collect();
        let has = |p: &[Op]| {
            found
                .iter()
                .filter(|c| c.ops.windows(p.len()).any(|w| w == p))
                .count()
        };
        // each kind of f is among them: Euclid's step, a digit step, a reduced expression
        assert!(found.len() >= 50, "{} recurrences", found.len());
        assert!(has(&[LocalGet(3), LocalGet(4), Num(NumOp::I64RemS), LocalSet(3)]) > 0);
        assert!(
            has(&[LocalGet(4), Num(NumOp::I64RemS), LocalSet(3)])
                > has(&[LocalGet(3), LocalGet(4), Num(NumOp::I64RemS), LocalSet(3)])
        );
        assert!(has(&[I64Const(10), Num(NumOp::I64DivS)]) > 0);
        assert!(has(&[I64Const(2), Num(NumOp::I64DivS)]) > 0);
        let policy = runtime::Policy::default_policy();
        let values = [-100, -37, -10, -2, -1, 0, 1, 2, 3, 10, 64, 99, 100];
        for c in &found {
            assert!(valid(c), "{:?}", c.ops);
            // it works on copies: no parameter is written
            assert!(
                !c.ops
                    .iter()
                    .any(|o| matches!(o, LocalSet(k) | LocalTee(k) if *k < 3)),
                "{:?}",
                c.ops
            );
            let plan = crate::interp::Plan::new(c, &policy).expect("plan");
            for a in values {
                for b in values {
                    let args = [
                        runtime::Value::I64(a),
                        runtime::Value::I64(b),
                        runtime::Value::I64(a - b),
                    ];
                    let answer = plan.call(&args, 10_000);
                    assert_ne!(
                        answer,
                        crate::interp::Answer::Trap(runtime::Outcome::OutOfFuel),
                        "{args:?} {:?}",
                        c.ops
                    );
                }
            }
        }
    }

    #[test]
    fn locals_swaps_two_locals_of_one_type() {
        use Op::*;
        // local 0 - local 1: a swap before it gives local 1 - local 0
        let g = Genome::new(
            &[Ty::I64, Ty::I64],
            Ty::I64,
            vec![LocalGet(0), LocalGet(1), Num(NumOp::I64Sub)],
        );
        let m = Locals {
            fresh: Fresh {
                max_depth: 1,
                consts: Arc::new(Constants::default()),
            },
            max_new: 0,
        };
        let swap = [LocalGet(0), LocalGet(1), LocalSet(0), LocalSet(1)];
        let found = offspring_with(&m, &g, &swap);
        let first = found
            .iter()
            .find(|c| c.ops.starts_with(&swap))
            .expect("a swap at the start in 400 offspring");
        assert!(valid(first));
        let plan =
            crate::interp::Plan::new(first, &runtime::Policy::default_policy()).expect("plan");
        let (a, b) = (runtime::Value::I64(10), runtime::Value::I64(3));
        assert_eq!(
            plan.call(&[a, b], 1000),
            crate::interp::Answer::Value(runtime::Value::I64(-7))
        );
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
            assert!(crossover(&a, &b, false, &mut rng).is_none());
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
        for (m, _) in all(&consts, true) {
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
                    "{}: {:?}",
                    m.name(),
                    &c.ops[c.ops.len().saturating_sub(30)..]
                );
            }
        }
        assert!(over > 0, "some mutants grow past the cap");
    }
}
