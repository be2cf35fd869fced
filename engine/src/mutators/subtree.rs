use super::Mutator;
use crate::genome::Genome;
use crate::random::{self, Constants};
use crate::rng::Rng;
use std::sync::Arc;

/// Replaces one sub-expression with a fresh random expression of the same type.
pub struct Subtree {
    /// Depth of the new expression.
    pub max_depth: u32,
    /// The task's constants.
    pub consts: Arc<Constants>,
}

impl Mutator for Subtree {
    named!("subtree");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let exprs = super::expressions(g);
        let (a, b, ty) = super::pick(&exprs, rng)?;
        let mut fresh = Vec::new();
        let depth = rng.below(self.max_depth as usize + 1) as u32;
        random::expr(ty, depth, &g.local_types, &self.consts, rng, &mut fresh);
        let mut out = g.clone();
        out.ops.splice(a..=b, fresh);
        Some(out)
    }
}
