use super::Mutator;
use crate::genome::Genome;
use crate::random::{self, Constants};
use crate::rng::Rng;
use std::sync::Arc;

/// Deletes a stack-balanced sequence: a whole sub-expression of two or more operations
/// is replaced by a single leaf of its type. Modules only get smaller.
pub struct Delete {
    /// The task's constants.
    pub consts: Arc<Constants>,
}

impl Mutator for Delete {
    named!("delete");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let exprs: Vec<_> = super::expressions(g)
            .into_iter()
            .filter(|(a, b, _)| b > a)
            .collect();
        let (a, b, ty) = super::pick(&exprs, rng)?;
        let mut out = g.clone();
        out.ops
            .splice(a..=b, [random::leaf(ty, &g.local_types, &self.consts, rng)]);
        Some(out)
    }
}
