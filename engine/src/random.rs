//! Random well-typed expressions and modules for a task signature.

use crate::genome::{Genome, NumOp, Op, Ty};
use crate::rng::Rng;

/// A leaf of type `ty`: a local of that type (70% when there is one) or a small constant.
pub fn leaf(ty: Ty, locals: &[Option<Ty>], rng: &mut Rng) -> Op {
    let candidates: Vec<u32> = locals
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == Some(ty))
        .map(|(i, _)| i as u32)
        .collect();
    if !candidates.is_empty() && rng.chance(0.7) {
        return Op::LocalGet(candidates[rng.below(candidates.len())]);
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
pub fn expr(ty: Ty, depth: u32, locals: &[Option<Ty>], rng: &mut Rng, out: &mut Vec<Op>) {
    if depth == 0 || rng.chance(0.25) {
        out.push(leaf(ty, locals, rng));
        return;
    }
    let d = depth - 1;
    match ty {
        Ty::I64 => {
            let r = rng.below(100);
            if r < 12 {
                // select(a, b, cond)
                expr(Ty::I64, d, locals, rng, out);
                expr(Ty::I64, d, locals, rng, out);
                expr(Ty::I32, d, locals, rng, out);
                out.push(Op::Select);
            } else if r < 16 && has(locals, Ty::F64) {
                expr(Ty::F64, d, locals, rng, out);
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
                expr(Ty::I64, d, locals, rng, out);
                expr(Ty::I64, d, locals, rng, out);
                out.push(Op::Num(OPS[rng.below(OPS.len())]));
            }
        }
        Ty::F64 => {
            let r = rng.below(100);
            if r < 8 {
                const UN: [NumOp; 3] = [NumOp::F64Abs, NumOp::F64Neg, NumOp::F64Sqrt];
                expr(Ty::F64, d, locals, rng, out);
                out.push(Op::Num(UN[rng.below(UN.len())]));
            } else if r < 12 && has(locals, Ty::I64) {
                expr(Ty::I64, d, locals, rng, out);
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
                expr(Ty::F64, d, locals, rng, out);
                expr(Ty::F64, d, locals, rng, out);
                out.push(Op::Num(OPS[rng.below(OPS.len())]));
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
            expr(src, d, locals, rng, out);
            expr(src, d, locals, rng, out);
            out.push(Op::Num(ops[rng.below(ops.len())]));
        }
    }
}

/// A random module `act: params -> result` with an expression of at most `depth`
/// levels.
pub fn module(params: &[Ty], result: Ty, depth: u32, rng: &mut Rng) -> Genome {
    let locals: Vec<Option<Ty>> = params.iter().map(|t| Some(*t)).collect();
    let mut ops = Vec::new();
    expr(result, depth, &locals, rng, &mut ops);
    Genome::new(params, result, ops)
}
