use super::Mutator;
use crate::genome::{BlockTy, Genome, NumOp, Op, Ty};
use crate::random::Fresh;
use crate::rng::Rng;
use crate::typing::Typing;

/// Wraps a net-zero piece of the body (possibly empty) in a loop, a conditional or a
/// block:
/// - a do-while loop `loop piece <cond> br_if 0 end`;
/// - a while loop `block loop <cond> br_if 1 piece br 0 end end` (the test first: a
///   piece that must not run on some inputs, such as Euclid's remainder step);
/// - a counted loop `<n> local.set c loop piece local.get c i64.const 1 i64.sub
///   local.tee c i64.const 0 i64.gt_s br_if 0 end` with a new i64 counter `c`
///   (PushGP's `exec_do*times`);
/// - a conditional `<cond> if piece end`;
/// - a block with an early exit `block <cond> br_if 0 piece end`;
/// - a recurrence over two locals `x`, `y` of one integer type: `block loop
///   local.get y <eqz> br_if 1 piece <f(x, y)> local.set x <swap x y> br 0 end end`,
///   that is `while y != 0 { piece; (x, y) = (y, f(x, y)) }`, with `f` an operation on
///   `x` and `y` half the time, else a random expression (PushGP's `exec_while` over a
///   rotation of the stack; Euclid's algorithm is `f = x % y`). A while loop with a
///   random test rarely ends after a useful number of rounds unless its body changes
///   what the test reads; this one does by construction.
///
/// Branches in the piece that leave it are deepened by the frames around it, so they
/// keep their targets.
pub struct Wrap(pub Fresh);

impl Mutator for Wrap {
    named!("wrap");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let t = Typing::of(g);
        let a = super::pick(&super::live_points(&t), rng)?;
        let b = super::pick(&super::segments_from(g, &t, a), rng)?;
        let ops = &g.ops[a..b];
        let piece = super::shift_branches(ops, 1)?;
        let mut out = g.clone();
        let depth = self.0.depth(rng);
        let cond = |out: &mut Genome, rng: &mut Rng| {
            self.0.expr_at(Ty::I32, depth.max(1), &out.local_types, rng)
        };
        let mut seq = Vec::new();
        match rng.below(100) {
            0..25 => {
                seq.push(Op::Loop(BlockTy::Empty));
                seq.extend(piece);
                seq.extend(cond(&mut out, rng));
                seq.extend([Op::BrIf(0), Op::End]);
            }
            25..45 => {
                seq.extend([Op::Block(BlockTy::Empty), Op::Loop(BlockTy::Empty)]);
                seq.extend(cond(&mut out, rng));
                seq.push(Op::BrIf(1));
                seq.extend(super::shift_branches(ops, 2)?);
                seq.extend([Op::Br(0), Op::End, Op::End]);
            }
            45..65 => {
                let count = self.0.expr_at(Ty::I64, depth, &out.local_types, rng);
                let c = out.add_local(Ty::I64);
                seq.extend(count);
                seq.extend([Op::LocalSet(c), Op::Loop(BlockTy::Empty)]);
                seq.extend(piece);
                seq.extend([
                    Op::LocalGet(c),
                    Op::I64Const(1),
                    Op::Num(NumOp::I64Sub),
                    Op::LocalTee(c),
                    Op::I64Const(0),
                    Op::Num(NumOp::I64GtS),
                    Op::BrIf(0),
                    Op::End,
                ]);
            }
            65..83 => {
                seq.extend(cond(&mut out, rng));
                seq.push(Op::If(BlockTy::Empty));
                seq.extend(piece);
                seq.push(Op::End);
            }
            83..97 => {
                seq.push(Op::Block(BlockTy::Empty));
                seq.extend(cond(&mut out, rng));
                seq.push(Op::BrIf(0));
                seq.extend(piece);
                seq.push(Op::End);
            }
            _ => {
                let pairs: Vec<(u32, u32, Ty)> = super::pairs_of_one_type(&out.local_types)
                    .into_iter()
                    .filter(|(_, _, t)| *t != Ty::F64)
                    .collect();
                let (x, y, ty) = super::pick(&pairs, rng)?;
                let (eqz, fs): (NumOp, &[NumOp]) = match ty {
                    Ty::I32 => (
                        NumOp::I32Eqz,
                        &[NumOp::I32Add, NumOp::I32Sub, NumOp::I32And, NumOp::I32Xor],
                    ),
                    _ => (
                        NumOp::I64Eqz,
                        &[
                            NumOp::I64Add,
                            NumOp::I64Sub,
                            NumOp::I64Mul,
                            NumOp::I64RemS,
                            NumOp::I64DivS,
                            NumOp::I64And,
                            NumOp::I64Xor,
                            NumOp::I64ShrS,
                        ],
                    ),
                };
                let f = if rng.chance(0.5) {
                    let op = super::pick(fs, rng)?;
                    vec![Op::LocalGet(x), Op::LocalGet(y), Op::Num(op)]
                } else {
                    self.0.expr_at(ty, depth.max(1), &out.local_types, rng)
                };
                seq.extend([
                    Op::Block(BlockTy::Empty),
                    Op::Loop(BlockTy::Empty),
                    Op::LocalGet(y),
                    Op::Num(eqz),
                    Op::BrIf(1),
                ]);
                seq.extend(super::shift_branches(ops, 2)?);
                seq.extend(f);
                seq.push(Op::LocalSet(x));
                seq.extend(super::swap(x, y));
                seq.extend([Op::Br(0), Op::End, Op::End]);
            }
        }
        out.ops.splice(a..b, seq);
        Some(out)
    }
}
