use super::Mutator;
use crate::genome::{Genome, Op, Ty};
use crate::random::Fresh;
use crate::rng::Rng;
use crate::typing::Typing;

/// Inserts a conditional exit `<cond> br_if d` at a known position, to a label whose
/// values are on top of the stack there (a conditional `return` when the label is the
/// function's).
pub struct Exit(pub Fresh);

impl Mutator for Exit {
    named!("exit");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let t = Typing::of(g);
        let mut sites = Vec::new();
        for (i, p) in t.points.iter().enumerate() {
            let Some(p) = p else { continue };
            for d in 0..p.labels.len() as u32 {
                if p.label(d).is_some_and(|l| p.ends_with(l)) {
                    sites.push((i, d));
                }
            }
        }
        let (at, d) = super::pick(&sites, rng)?;
        let depth = self.0.depth(rng).max(1);
        let mut seq = self.0.expr_at(Ty::I32, depth, &g.local_types, rng);
        seq.push(Op::BrIf(d));
        let mut out = g.clone();
        out.ops.splice(at..at, seq);
        Some(out)
    }
}
