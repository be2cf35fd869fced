use super::Mutator;
use crate::genome::{Genome, NumOp, Op};
use crate::rng::Rng;

/// Swaps one operation for another of the same type class (same operand and result
/// types), or one local for another of the same type.
pub struct OpcodeSwap;

impl Mutator for OpcodeSwap {
    named!("opcode_swap");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let sites: Vec<usize> = (0..g.ops.len())
            .filter(|&i| matches!(g.ops[i], Op::Num(_) | Op::LocalGet(_)))
            .collect();
        let i = super::pick(&sites, rng)?;
        let mut out = g.clone();
        match g.ops[i] {
            Op::Num(n) => {
                let sig = n.sig();
                let same: Vec<NumOp> = NumOp::ALL
                    .iter()
                    .copied()
                    .filter(|m| *m != n && m.sig() == sig)
                    .collect();
                out.ops[i] = Op::Num(super::pick(&same, rng)?);
            }
            Op::LocalGet(l) => {
                let ty = *g.local_types.get(l as usize)?;
                let same: Vec<u32> = (0..g.local_types.len() as u32)
                    .filter(|&k| k != l && g.local_types[k as usize] == ty)
                    .collect();
                out.ops[i] = Op::LocalGet(super::pick(&same, rng)?);
            }
            _ => return None,
        }
        Some(out)
    }
}
