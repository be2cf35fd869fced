use super::Mutator;
use crate::genome::{Genome, Op};
use crate::rng::Rng;
use crate::typing::Typing;

/// Points one `br` or `br_if` at another enclosing label that takes the same values.
pub struct Retarget;

impl Mutator for Retarget {
    named!("retarget");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let t = Typing::of(g);
        let mut sites = Vec::new();
        for (i, op) in g.ops.iter().enumerate() {
            let (Op::Br(d) | Op::BrIf(d)) = op else {
                continue;
            };
            let Some(p) = &t.points[i] else { continue };
            let want = p.label(*d)?;
            for other in 0..p.labels.len() as u32 {
                if other != *d && p.label(other) == Some(want) {
                    sites.push((i, other));
                }
            }
        }
        let (i, d) = super::pick(&sites, rng)?;
        let mut out = g.clone();
        out.ops[i] = match g.ops[i] {
            Op::Br(_) => Op::Br(d),
            _ => Op::BrIf(d),
        };
        Some(out)
    }
}
