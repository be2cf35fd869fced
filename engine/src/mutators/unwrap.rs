use super::Mutator;
use crate::genome::{Genome, Op};
use crate::rng::Rng;
use crate::typing::{Typing, matching};

/// Removes one `block`, `loop` or `if`, keeping its contents: a block's or loop's body,
/// or one branch of an `if` (its condition dropped). Only a frame no branch targets is
/// removed; branches that leave it get one level shallower.
pub struct Unwrap;

impl Mutator for Unwrap {
    named!("unwrap");

    fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<Genome> {
        let t = Typing::of(g);
        if !t.complete {
            return None;
        }
        let pairs = matching(&g.ops)?;
        let openers: Vec<usize> = (0..g.ops.len())
            .filter(|&i| pairs[i].is_some() && t.points[i].is_some())
            .collect();
        let i = super::pick(&openers, rng)?;
        let (els, end) = pairs[i]?;
        let (body, dropped): (&[Op], bool) = match (&g.ops[i], els) {
            (Op::If(_), Some(e)) if rng.chance(0.5) => (&g.ops[e + 1..end], true),
            (Op::If(_), Some(e)) => (&g.ops[i + 1..e], true),
            (Op::If(_), None) => (&g.ops[i + 1..end], true),
            _ => (&g.ops[i + 1..end], false),
        };
        // a branch to the frame itself (depth equal to its nesting inside the body)
        // has nowhere to go once the frame is gone
        let body = super::shift_branches(body, -1)?;
        let mut seq = Vec::with_capacity(body.len() + 1);
        if dropped {
            seq.push(Op::Drop);
        }
        seq.extend(body);
        let mut out = g.clone();
        out.ops.splice(i..=end, seq);
        Some(out)
    }
}
