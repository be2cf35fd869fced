use super::Mutator;
use crate::genome::{Genome, Op};
use crate::random::Constants;
use crate::rng::Rng;
use std::sync::Arc;

/// Changes one constant: small steps, a Gaussian nudge, doubling, halving or negating,
/// one of the task's constants, or a fresh small value.
pub struct ConstPerturb {
    /// The task's constants.
    pub consts: Arc<Constants>,
}

impl Mutator for ConstPerturb {
    named!("const_perturb");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let consts: Vec<usize> = (0..g.ops.len())
            .filter(|&i| {
                matches!(
                    g.ops[i],
                    Op::I32Const(_) | Op::I64Const(_) | Op::F64Const(_)
                )
            })
            .collect();
        let i = super::pick(&consts, rng)?;
        let mut out = g.clone();
        // One time in six: one of the task's constants of the same type.
        let ty = match g.ops[i] {
            Op::I64Const(_) => Some(crate::genome::Ty::I64),
            Op::F64Const(_) => Some(crate::genome::Ty::F64),
            _ => None,
        };
        if let Some(ty) = ty
            && rng.below(6) == 0
            && let Some(op) = self.consts.pick(ty, rng)
        {
            out.ops[i] = op;
            return Some(out);
        }
        out.ops[i] = match g.ops[i] {
            Op::I32Const(v) => Op::I32Const(v ^ 1),
            Op::I64Const(v) => Op::I64Const(match rng.below(6) {
                0 => v.wrapping_add(1),
                1 => v.wrapping_sub(1),
                2 => v.wrapping_add(rng.below(21) as i64 - 10),
                3 => v.wrapping_mul(2),
                4 => {
                    if rng.chance(0.5) {
                        v / 2
                    } else {
                        v.wrapping_neg()
                    }
                }
                _ => rng.below(11) as i64 - 5,
            }),
            Op::F64Const(b) => {
                let v = f64::from_bits(b);
                let v = if v.is_finite() { v } else { 0.0 };
                Op::F64Const(
                    match rng.below(4) {
                        0 => v + rng.normal() * (v.abs() * 0.1).max(0.1),
                        1 => v.round() + rng.below(3) as f64 - 1.0,
                        2 => match rng.below(3) {
                            0 => v * 2.0,
                            1 => v / 2.0,
                            _ => -v,
                        },
                        _ => (rng.below(9) as f64 - 4.0) / 2.0,
                    }
                    .to_bits(),
                )
            }
            _ => return None,
        };
        Some(out)
    }
}
