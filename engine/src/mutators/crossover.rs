use crate::genome::{Genome, Op};
use crate::rng::Rng;
use crate::typing::{self, Typing};

/// Splices compatible code from `b` into `a`, as FINCH's crossover does for bytecode:
/// the piece taken from `b` must have the same stack effect as the piece of `a` it
/// replaces, be self-contained (every branch in it targets a frame it opens, or is a
/// `return`), and use only locals that `a` has with the same types.
///
/// Without `control` (straight-line evolution) the pieces are single-value expressions
/// of the same type. With it, half the time they are; otherwise a net-zero piece of
/// `a` (possibly empty: an insertion) is replaced by a non-empty net-zero piece of `b`
/// (statements: stores, loops, conditionals).
pub fn crossover(a: &Genome, b: &Genome, control: bool, rng: &mut Rng) -> Option<Genome> {
    let locals_fit = |ops: &[Op]| {
        ops.iter().all(|op| match op {
            Op::LocalGet(l) | Op::LocalTee(l) | Op::LocalSet(l) => {
                let theirs = b.local_types.get(*l as usize).copied().flatten();
                theirs.is_some() && a.local_types.get(*l as usize).copied().flatten() == theirs
            }
            Op::Block(bt) | Op::Loop(bt) | Op::If(bt) => {
                a.block_sig(bt).is_some() && a.block_sig(bt) == b.block_sig(bt)
            }
            _ => true,
        })
    };
    if !control || rng.chance(0.5) {
        let ea = super::expressions(a);
        let picked = super::pick(&ea, rng);
        if !control && picked.is_none() {
            return None;
        }
        if let Some((sa, ta, ty)) = picked {
            let donors: Vec<(usize, usize)> = super::expressions(b)
                .into_iter()
                .filter(|(s, t, dty)| {
                    *dty == ty
                        && typing::self_contained(&b.ops[*s..=*t])
                        && locals_fit(&b.ops[*s..=*t])
                })
                .map(|(s, t, _)| (s, t))
                .collect();
            let (sb, tb) = super::pick(&donors, rng)?;
            let mut out = a.clone();
            out.ops.splice(sa..=ta, b.ops[sb..=tb].iter().cloned());
            return Some(out);
        }
    }
    // statements: a net-zero piece of `b` in place of one of `a`
    let tb = Typing::of(b);
    let sb = super::pick(&super::live_points(&tb), rng)?;
    let ends: Vec<usize> = super::segments_from(b, &tb, sb)
        .into_iter()
        .filter(|&e| e > sb && typing::self_contained(&b.ops[sb..e]) && locals_fit(&b.ops[sb..e]))
        .collect();
    let eb = super::pick(&ends, rng)?;
    let ta = Typing::of(a);
    let sa = super::pick(&super::live_points(&ta), rng)?;
    let ea = super::pick(&super::segments_from(a, &ta, sa), rng)?;
    let mut out = a.clone();
    out.ops.splice(sa..ea, b.ops[sb..eb].iter().cloned());
    Some(out)
}
