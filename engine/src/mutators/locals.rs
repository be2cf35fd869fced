use super::Mutator;
use crate::genome::{Genome, Op, Ty};
use crate::random::Fresh;
use crate::rng::Rng;
use crate::typing::Typing;

/// Works on locals: stores a new expression in a new local (of an i32, i64 or f64
/// type; at most `max_new` beyond the params) or in an existing one, inserts a
/// `local.tee` of a local of the type on top of the stack, or swaps two locals of one
/// type (`local.get x local.get y local.set x local.set y`).
pub struct Locals {
    /// The stored expressions.
    pub fresh: Fresh,
    /// At most this many locals beyond the params.
    pub max_new: usize,
}

impl Mutator for Locals {
    named!("locals");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let t = Typing::of(g);
        let mut out = g.clone();
        if rng.chance(0.3) {
            // a tee where a value of a local's type is on top
            let sites: Vec<(usize, u32)> = t
                .points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((i, p.as_ref()?.top()?)))
                .flat_map(|(i, ty)| {
                    g.local_types
                        .iter()
                        .enumerate()
                        .filter(move |(_, l)| **l == Some(ty))
                        .map(move |(k, _)| (i, k as u32))
                })
                .collect();
            let (at, k) = super::pick(&sites, rng)?;
            out.ops.insert(at, Op::LocalTee(k));
            return Some(out);
        }
        if rng.chance(0.2) {
            // a swap of two locals of one type (Euclid's step is a store and a swap)
            let (x, y) = super::pick(&pairs_of_one_type(&g.local_types), rng)?;
            let at = super::pick(&super::live_points(&t), rng)?;
            out.ops.splice(at..at, super::swap(x, y));
            return Some(out);
        }
        let at = super::pick(&super::live_points(&t), rng)?;
        let k = if g.extra_locals() < self.max_new && rng.chance(0.5) {
            let types: Vec<Ty> = g.params.iter().copied().chain([Ty::I64]).collect();
            let ty = super::pick(&types, rng)?;
            out.add_local(ty)
        } else {
            let known: Vec<u32> = (0..g.local_types.len() as u32)
                .filter(|&k| g.local_types[k as usize].is_some())
                .collect();
            super::pick(&known, rng)?
        };
        let ty = out.local_types.get(k as usize).copied().flatten()?;
        let mut seq = self.fresh.expr(ty, &out.local_types, rng);
        seq.push(Op::LocalSet(k));
        out.ops.splice(at..at, seq);
        Some(out)
    }
}

/// Pairs `(x, y)` of two locals of one type, `x < y`, by `x` then `y`.
fn pairs_of_one_type(local_types: &[Option<Ty>]) -> Vec<(u32, u32)> {
    let typed: Vec<(u32, Ty)> = local_types
        .iter()
        .enumerate()
        .filter_map(|(k, t)| Some((k as u32, (*t)?)))
        .collect();
    typed
        .iter()
        .flat_map(|&(x, tx)| {
            typed
                .iter()
                .filter(move |&&(y, ty)| y > x && ty == tx)
                .map(move |&(y, _)| (x, y))
        })
        .collect()
}
