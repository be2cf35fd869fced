use super::Mutator;
use crate::genome::{Genome, NumOp, Op};
use crate::random::Fresh;
use crate::rng::Rng;

/// Inserts a stack-balanced sequence where a value of type T is on top: a random
/// expression of T and a binary T,T→T operation, or a unary T→T operation.
pub struct Insert(pub Fresh);

impl Mutator for Insert {
    named!("insert");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let points = super::typed_points(g);
        let (at, ty) = super::pick(&points, rng)?;
        let binary: Vec<NumOp> = NumOp::ALL
            .iter()
            .copied()
            .filter(|n| n.sig() == (&[ty, ty][..], ty) && *n != NumOp::I64DivS)
            .collect();
        let unary: Vec<NumOp> = NumOp::ALL
            .iter()
            .copied()
            .filter(|n| n.sig() == (&[ty][..], ty))
            .collect();
        let mut seq = Vec::new();
        if !unary.is_empty() && rng.chance(0.25) {
            seq.push(Op::Num(super::pick(&unary, rng)?));
        } else {
            seq = self.0.expr(ty, &g.local_types, rng);
            seq.push(Op::Num(super::pick(&binary, rng)?));
        }
        let mut out = g.clone();
        out.ops.splice(at..at, seq);
        Some(out)
    }
}
