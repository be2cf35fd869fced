use crate::genome::{Genome, Op};
use crate::rng::Rng;

/// Splices type-compatible code: a sub-expression of `a` is replaced by a
/// sub-expression of `b` of the same type whose locals exist in `a` with the same types.
pub fn crossover(a: &Genome, b: &Genome, rng: &mut Rng) -> Option<Genome> {
    let ea = super::expressions(a);
    let (sa, ta, ty) = super::pick(&ea, rng)?;
    let donors: Vec<(usize, usize)> = super::expressions(b)
        .into_iter()
        .filter(|(s, t, dty)| {
            *dty == ty
                && b.ops[*s..=*t].iter().all(|op| match op {
                    Op::LocalGet(l) | Op::LocalTee(l) => {
                        a.local_types.get(*l as usize).copied().flatten()
                            == b.local_types.get(*l as usize).copied().flatten()
                    }
                    _ => true,
                })
        })
        .map(|(s, t, _)| (s, t))
        .collect();
    let (sb, tb) = super::pick(&donors, rng)?;
    let mut out = a.clone();
    out.ops.splice(sa..=ta, b.ops[sb..=tb].iter().cloned());
    Some(out)
}
