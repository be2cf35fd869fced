use super::Mutator;
use crate::genome::Genome;
use crate::random::Fresh;
use crate::rng::Rng;

/// Replaces one sub-expression with a fresh random expression of the same type.
pub struct Subtree(pub Fresh);

impl Mutator for Subtree {
    named!("subtree");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let exprs = super::expressions(g);
        let (a, b, ty) = super::pick(&exprs, rng)?;
        let fresh = self.0.expr(ty, &g.local_types, rng);
        let mut out = g.clone();
        out.ops.splice(a..=b, fresh);
        Some(out)
    }
}
