//! Random well-typed expressions and modules for a task signature.

use crate::genome::{Genome, NumOp, Op, Ty};
use crate::rng::Rng;
use crate::task::Task;
use runtime::Value;
use std::sync::Arc;

/// How a mutator draws a fresh expression: of a depth up to `max_depth`, its constants
/// partly from the task's.
#[derive(Clone, Debug)]
pub struct Fresh {
    /// Deepest expression drawn.
    pub max_depth: u32,
    /// The task's constants.
    pub consts: Arc<Constants>,
}

impl Fresh {
    /// A depth in `0..=max_depth`.
    pub fn depth(&self, rng: &mut Rng) -> u32 {
        rng.below(self.max_depth as usize + 1) as u32
    }

    /// A random expression of `ty` over `locals`, `depth` deep at most.
    pub fn expr_at(&self, ty: Ty, depth: u32, locals: &[Option<Ty>], rng: &mut Rng) -> Vec<Op> {
        let mut out = Vec::new();
        expr(ty, depth, locals, &self.consts, rng, &mut out);
        out
    }

    /// A random expression of `ty` over `locals`, of a random depth.
    pub fn expr(&self, ty: Ty, locals: &[Option<Ty>], rng: &mut Rng) -> Vec<Op> {
        let depth = self.depth(rng);
        self.expr_at(ty, depth, locals, rng)
    }
}

/// Constants a task suggests (GP's "ephemeral constants" drawn from the data): the
/// distinct values of its training cases' arguments and expected results, by type, at
/// most [`Constants::MAX`] of each. Held-out test cases are never looked at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constants {
    /// i64 values.
    pub i64s: Vec<i64>,
    /// Finite f64 values.
    pub f64s: Vec<f64>,
}

impl Constants {
    /// At most this many of each type.
    pub const MAX: usize = 64;

    /// The constants of a task's training cases.
    pub fn from_task(task: &Task) -> Constants {
        let mut c = Constants::default();
        for case in &task.cases {
            for v in case.args.iter().chain(std::iter::once(&case.expect)) {
                match *v {
                    Value::I64(x) => {
                        if c.i64s.len() < Self::MAX && !c.i64s.contains(&x) {
                            c.i64s.push(x);
                        }
                    }
                    Value::F64(bits) => {
                        let x = f64::from_bits(bits);
                        if x.is_finite() && c.f64s.len() < Self::MAX && !c.f64s.contains(&x) {
                            c.f64s.push(x);
                        }
                    }
                }
            }
        }
        c
    }

    /// One of the constants of type `ty`, if there are any.
    pub fn pick(&self, ty: Ty, rng: &mut Rng) -> Option<Op> {
        match ty {
            Ty::I64 if !self.i64s.is_empty() => {
                Some(Op::I64Const(self.i64s[rng.below(self.i64s.len())]))
            }
            Ty::F64 if !self.f64s.is_empty() => Some(Op::F64Const(
                self.f64s[rng.below(self.f64s.len())].to_bits(),
            )),
            _ => None,
        }
    }
}

/// A leaf of type `ty`: a local of that type (70% when there is one), else a constant:
/// one of the task's (15% when it has some) or a small one.
pub fn leaf(ty: Ty, locals: &[Option<Ty>], consts: &Constants, rng: &mut Rng) -> Op {
    let candidates: Vec<u32> = locals
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == Some(ty))
        .map(|(i, _)| i as u32)
        .collect();
    if !candidates.is_empty() && rng.chance(0.7) {
        return Op::LocalGet(candidates[rng.below(candidates.len())]);
    }
    if rng.chance(0.15)
        && let Some(op) = consts.pick(ty, rng)
    {
        return op;
    }
    match ty {
        Ty::I32 => Op::I32Const(rng.below(2) as i32),
        Ty::I64 => Op::I64Const(rng.below(11) as i64 - 5),
        Ty::F64 => Op::F64Const(((rng.below(9) as f64 - 4.0) / 2.0).to_bits()),
    }
}

fn has(locals: &[Option<Ty>], ty: Ty) -> bool {
    locals.contains(&Some(ty))
}

/// Appends a random expression of type `ty` and at most `depth` levels to `out`.
pub fn expr(
    ty: Ty,
    depth: u32,
    locals: &[Option<Ty>],
    consts: &Constants,
    rng: &mut Rng,
    out: &mut Vec<Op>,
) {
    if depth == 0 || rng.chance(0.25) {
        out.push(leaf(ty, locals, consts, rng));
        return;
    }
    let d = depth - 1;
    match ty {
        Ty::I64 => {
            let r = rng.below(100);
            if r < 12 {
                // select(a, b, cond)
                expr(Ty::I64, d, locals, consts, rng, out);
                expr(Ty::I64, d, locals, consts, rng, out);
                expr(Ty::I32, d, locals, consts, rng, out);
                out.push(Op::Select);
            } else if r < 16 && has(locals, Ty::F64) {
                expr(Ty::F64, d, locals, consts, rng, out);
                out.push(Op::Num(NumOp::I64TruncSatF64S));
            } else {
                const OPS: [NumOp; 9] = [
                    NumOp::I64Add,
                    NumOp::I64Add,
                    NumOp::I64Sub,
                    NumOp::I64Mul,
                    NumOp::I64Mul,
                    NumOp::I64And,
                    NumOp::I64Or,
                    NumOp::I64Xor,
                    NumOp::I64RemS,
                ];
                binary(Ty::I64, &OPS, d, locals, consts, rng, out);
            }
        }
        Ty::F64 => {
            let r = rng.below(100);
            if r < 8 {
                const UN: [NumOp; 3] = [NumOp::F64Abs, NumOp::F64Neg, NumOp::F64Sqrt];
                expr(Ty::F64, d, locals, consts, rng, out);
                out.push(Op::Num(UN[rng.below(UN.len())]));
            } else if r < 12 && has(locals, Ty::I64) {
                expr(Ty::I64, d, locals, consts, rng, out);
                out.push(Op::Num(NumOp::F64ConvertI64S));
            } else {
                const OPS: [NumOp; 6] = [
                    NumOp::F64Add,
                    NumOp::F64Add,
                    NumOp::F64Sub,
                    NumOp::F64Mul,
                    NumOp::F64Mul,
                    NumOp::F64Div,
                ];
                binary(Ty::F64, &OPS, d, locals, consts, rng, out);
            }
        }
        Ty::I32 => {
            let src = if has(locals, Ty::F64) && (!has(locals, Ty::I64) || rng.chance(0.5)) {
                Ty::F64
            } else {
                Ty::I64
            };
            let ops: &[NumOp] = match src {
                Ty::F64 => &[NumOp::F64Lt, NumOp::F64Gt, NumOp::F64Le, NumOp::F64Ge],
                _ => &[
                    NumOp::I64LtS,
                    NumOp::I64GtS,
                    NumOp::I64LeS,
                    NumOp::I64GeS,
                    NumOp::I64Eq,
                ],
            };
            binary(src, ops, d, locals, consts, rng, out);
        }
    }
}

/// Two random expressions of type `operand` and one of `ops` over them.
fn binary(
    operand: Ty,
    ops: &[NumOp],
    depth: u32,
    locals: &[Option<Ty>],
    consts: &Constants,
    rng: &mut Rng,
    out: &mut Vec<Op>,
) {
    expr(operand, depth, locals, consts, rng, out);
    expr(operand, depth, locals, consts, rng, out);
    out.push(Op::Num(ops[rng.below(ops.len())]));
}

/// A random module `act: params -> result` with an expression of at most `depth`
/// levels.
pub fn module(params: &[Ty], result: Ty, depth: u32, consts: &Constants, rng: &mut Rng) -> Genome {
    let locals: Vec<Option<Ty>> = params.iter().map(|t| Some(*t)).collect();
    let mut ops = Vec::new();
    expr(result, depth, &locals, consts, rng, &mut ops);
    Genome::new(params, result, ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_come_from_the_training_cases_only() {
        let task = Task::parse(
            r#"{"name": "t", "params": ["i64", "f64"], "result": "f64", "error": "abs",
                "success_threshold": 0,
                "cases": [{"args": [1000, 2.5], "expect": "inf"},
                          {"args": [1000, -0.5], "expect": 7.25},
                          {"args": [-3, "nan"], "expect": 2.5}],
                "test_cases": [{"args": [77, 99.5], "expect": 11.0}]}"#,
            true,
        )
        .expect("task");
        let c = Constants::from_task(&task);
        assert_eq!(c.i64s, [1000, -3]);
        assert_eq!(c.f64s, [2.5, -0.5, 7.25]);
        let mut rng = Rng::new(1);
        for _ in 0..50 {
            match c.pick(Ty::I64, &mut rng) {
                Some(Op::I64Const(v)) => assert!(c.i64s.contains(&v)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(c.pick(Ty::I32, &mut rng), None);
        assert_eq!(Constants::default().pick(Ty::F64, &mut rng), None);
    }

    #[test]
    fn at_most_max_constants_of_a_type() {
        let cases: Vec<String> = (0..200)
            .map(|i| format!(r#"{{"args": [{i}], "expect": {}}}"#, i * 3))
            .collect();
        let task = Task::parse(
            &format!(
                r#"{{"name": "t", "params": ["i64"], "result": "i64", "error": "abs",
                    "success_threshold": 0, "cases": [{}]}}"#,
                cases.join(",")
            ),
            true,
        )
        .expect("task");
        assert_eq!(Constants::from_task(&task).i64s.len(), Constants::MAX);
    }
}
