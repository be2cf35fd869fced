use super::Mutator;
use crate::genome::{Genome, NumOp, Op, Ty};
use crate::rng::Rng;

/// Neutral variation: inserts code that leaves every value as it was (`x + 0` on an
/// i64, `x + -0.0` on an f64, `x | 0` on an i32, or a `nop`).
pub struct Neutral;

impl Mutator for Neutral {
    named!("neutral");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let points = super::typed_points(g);
        let (at, ty) = super::pick(&points, rng)?;
        let seq = if rng.chance(0.2) {
            vec![Op::Nop]
        } else {
            match ty {
                Ty::I64 => vec![Op::I64Const(0), Op::Num(NumOp::I64Add)],
                Ty::F64 => vec![Op::F64Const((-0.0f64).to_bits()), Op::Num(NumOp::F64Add)],
                Ty::I32 => vec![Op::I32Const(0), Op::Num(NumOp::I32Or)],
            }
        };
        let mut out = g.clone();
        out.ops.splice(at..at, seq);
        Some(out)
    }
}
