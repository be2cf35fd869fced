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
/// - a recurrence, which wraps a read of an i64 local `x` rather than the piece:
///   `local.get x` becomes `a = x; b = y; while b != 0 { (a, b) = (b, f(a, b)) }; a`
///   over two new locals, `y` another i64 local (PushGP's `exec_while` over a rotation
///   of the stack). `f` makes `|b|` smaller, so the loop ends unless a later mutation
///   changes that: half the time `a % b` (Euclid's algorithm: the read becomes
///   `gcd(x, y)` up to its sign, in a number of rounds logarithmic in `|y|`), a quarter
///   `b / 2` or `b / 10` (a walk over the binary or decimal digits of `y`; with nothing
///   in its body it leaves `y`'s leading digit in `a`, and a later `insert` can add one),
///   a quarter `e % b` with `e` a random expression (at most `|y|` rounds: on large
///   inputs the case's fuel ends it first, as for any loop). A while loop with
///   a random test rarely ends after a useful number of rounds unless its body changes
///   what the test reads; this one does by construction. It works on copies: run over
///   the locals themselves it destroyed values that the rest of the program still read
///   (smallest, four parameters: 11 of 60 runs generalised, 15 with no recurrence, 17
///   on copies; BENCHMARKS.md).
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
            _ => return recurrence(&self.0, out, depth, rng),
        }
        out.ops.splice(a..b, seq);
        Some(out)
    }
}

/// The recurrence case of [`Wrap`]: a read `local.get x` of an i64 local becomes
/// `a = x; b = y; while b != 0 { (a, b) = (b, f(a, b)) }; a` over two new locals, with
/// `y` another i64 local. The parameters keep their values. `out` is the genome,
/// unchanged so far.
fn recurrence(fresh: &Fresh, mut out: Genome, depth: u32, rng: &mut Rng) -> Option<Genome> {
    let is_i64 = |k: u32| out.local_types.get(k as usize) == Some(&Some(Ty::I64));
    let reads: Vec<(usize, u32)> = out
        .ops
        .iter()
        .enumerate()
        .filter_map(|(at, op)| match op {
            Op::LocalGet(x) if is_i64(*x) => Some((at, *x)),
            _ => None,
        })
        .collect();
    let (at, x) = super::pick(&reads, rng)?;
    let others: Vec<u32> = (0..out.local_types.len() as u32)
        .filter(|&y| y != x && is_i64(y))
        .collect();
    let y = super::pick(&others, rng)?;
    let a = out.add_local(Ty::I64);
    let b = out.add_local(Ty::I64);
    let rem = Op::Num(NumOp::I64RemS);
    // every f makes |b| smaller (b != 0 here), so the loop ends
    let f = match rng.below(4) {
        0 | 1 => vec![Op::LocalGet(a), Op::LocalGet(b), rem],
        2 => {
            let k = if rng.chance(0.5) { 2 } else { 10 };
            vec![Op::LocalGet(b), Op::I64Const(k), Op::Num(NumOp::I64DivS)]
        }
        _ => {
            let mut e = fresh.expr_at(Ty::I64, depth.max(1), &out.local_types, rng);
            e.extend([Op::LocalGet(b), rem]);
            e
        }
    };
    let mut seq = vec![
        Op::LocalGet(x),
        Op::LocalSet(a),
        Op::LocalGet(y),
        Op::LocalSet(b),
        Op::Block(BlockTy::Empty),
        Op::Loop(BlockTy::Empty),
        Op::LocalGet(b),
        Op::Num(NumOp::I64Eqz),
        Op::BrIf(1),
    ];
    seq.extend(f);
    seq.push(Op::LocalSet(a));
    seq.extend(super::swap(a, b));
    seq.extend([Op::Br(0), Op::End, Op::End, Op::LocalGet(a)]);
    out.ops.splice(at..at + 1, seq);
    Some(out)
}
