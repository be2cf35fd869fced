//! The stack and control typing of a genome's `act` body.
//!
//! [`Typing::of`] walks the body as Wasm's validator does — an operand stack of
//! [`Ty`]s and a stack of control frames (`block`, `loop`, `if`/`else`) — and records,
//! before every op, the operand stack and the types each enclosing label takes
//! ([`Point`]). A position is `None` where the engine cannot say: in dead code (after
//! `br` or `return`, until the frame ends), and everywhere after an op it does not
//! track (a [`Op::Raw`], a block type it cannot type, or an ill-typed op). Mutators
//! only touch live, tracked positions; the interpreter only runs bodies whose whole
//! typing is known ([`Typing::complete`]).

use crate::genome::{BlockTy, Genome, Op, Ty};

/// What is known before one op.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The operand stack, bottom first (values of enclosing frames included).
    pub stack: Vec<Ty>,
    /// The height below which the innermost frame may not pop (its entry height).
    pub floor: usize,
    /// For each enclosing label, innermost last: the types a branch to it carries.
    /// `br d` targets `labels[labels.len() - 1 - d]`; `labels[0]` is the function's.
    pub labels: Vec<Vec<Ty>>,
}

impl Point {
    /// The control depth: frames open around this op, the function's not counted.
    pub fn depth(&self) -> usize {
        self.labels.len().saturating_sub(1)
    }

    /// The value on top of the stack, if it belongs to the innermost frame.
    pub fn top(&self) -> Option<Ty> {
        (self.stack.len() > self.floor).then(|| self.stack.last().copied())?
    }

    /// Whether the stack's top (within the innermost frame) is exactly `want`.
    pub fn ends_with(&self, want: &[Ty]) -> bool {
        self.stack.len() >= self.floor + want.len() && self.stack.ends_with(want)
    }

    /// The lowest the stack goes while `op` runs from this point (its operands popped,
    /// before its results are pushed); `None` when the typing cannot say.
    pub fn low(&self, g: &Genome, op: &Op) -> Option<usize> {
        let h = self.stack.len();
        let below = |n: usize| h.checked_sub(n);
        match op {
            Op::I32Const(_) | Op::I64Const(_) | Op::F64Const(_) | Op::LocalGet(_) | Op::Nop => {
                Some(h)
            }
            Op::LocalSet(_) | Op::LocalTee(_) | Op::Drop | Op::Return => below(1),
            Op::Num(n) => below(n.sig().0.len()),
            Op::Select => below(3),
            Op::Block(bt) | Op::Loop(bt) => below(g.block_sig(bt)?.0.len()),
            Op::If(bt) => below(1 + g.block_sig(bt)?.0.len()),
            Op::Else | Op::End => Some(self.floor),
            Op::Br(d) => below(self.label(*d)?.len()),
            Op::BrIf(d) => below(1 + self.label(*d)?.len()),
            Op::Raw(_) => None,
        }
    }

    /// The types a branch of relative depth `d` carries, if there is such a label.
    pub fn label(&self, d: u32) -> Option<&[Ty]> {
        let i = self.labels.len().checked_sub(1 + d as usize)?;
        Some(&self.labels[i])
    }
}

/// The typing of a whole body.
#[derive(Clone, Debug, PartialEq)]
pub struct Typing {
    /// One entry per op, and one after the last op (before the body's final `end`).
    pub points: Vec<Option<Point>>,
    /// Whether every op was followed (none lost) and the body ends well typed: with
    /// exactly the result on the stack, or in dead code, with no frame left open.
    pub complete: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Func,
    Block,
    Loop,
    If,
    Else,
}

#[derive(Clone, Debug)]
struct Frame {
    kind: Kind,
    params: Vec<Ty>,
    results: Vec<Ty>,
    /// Stack height when the frame was entered (its params popped).
    height: usize,
    /// The frame was opened in dead code: all of it is dead.
    born_dead: bool,
}

impl Frame {
    fn label(&self) -> &[Ty] {
        if self.kind == Kind::Loop {
            &self.params
        } else {
            &self.results
        }
    }
}

struct Walker<'a> {
    g: &'a Genome,
    stack: Vec<Ty>,
    frames: Vec<Frame>,
    dead: bool,
}

impl Walker<'_> {
    fn point(&self) -> Point {
        Point {
            stack: self.stack.clone(),
            floor: self.frames.last().map_or(0, |f| f.height),
            labels: self.frames.iter().map(|f| f.label().to_vec()).collect(),
        }
    }

    fn pop(&mut self, want: Ty) -> Option<()> {
        let floor = self.frames.last()?.height;
        (self.stack.len() > floor).then_some(())?;
        (self.stack.pop()? == want).then_some(())
    }

    fn pop_all(&mut self, want: &[Ty]) -> Option<()> {
        for t in want.iter().rev() {
            self.pop(*t)?;
        }
        Some(())
    }

    /// The top of the stack (within the current frame) is exactly `want`'s suffix.
    fn top_is(&self, want: &[Ty]) -> Option<()> {
        let floor = self.frames.last()?.height;
        let avail = self.stack.len().checked_sub(floor)?;
        (avail >= want.len() && self.stack[self.stack.len() - want.len()..] == *want).then_some(())
    }

    fn open(&mut self, kind: Kind, bt: &BlockTy) -> Option<()> {
        let (params, results) = self.g.block_sig(bt)?;
        let born_dead = self.dead;
        if !born_dead {
            self.pop_all(&params)?;
        }
        let height = self.stack.len();
        self.frames.push(Frame {
            kind,
            params: params.clone(),
            results,
            height,
            born_dead,
        });
        if !born_dead {
            self.stack.extend(params);
        }
        Some(())
    }

    /// Closes the then-branch or a frame: the stack above the frame holds exactly its
    /// results (unless dead).
    fn close_check(&self) -> Option<()> {
        let f = self.frames.last()?;
        if !self.dead {
            (self.stack.len() == f.height + f.results.len()).then_some(())?;
            self.top_is(&f.results)?;
        }
        Some(())
    }

    fn kill(&mut self) -> Option<()> {
        let h = self.frames.last()?.height;
        self.stack.truncate(h);
        self.dead = true;
        Some(())
    }

    fn step(&mut self, op: &Op) -> Option<()> {
        match op {
            Op::Block(bt) => return self.open(Kind::Block, bt),
            Op::Loop(bt) => return self.open(Kind::Loop, bt),
            Op::If(bt) => {
                if !self.dead {
                    self.pop(Ty::I32)?;
                }
                return self.open(Kind::If, bt);
            }
            Op::Else => {
                (self.frames.last()?.kind == Kind::If).then_some(())?;
                self.close_check()?;
                let f = self.frames.last_mut()?;
                f.kind = Kind::Else;
                let (h, params, born_dead) = (f.height, f.params.clone(), f.born_dead);
                self.stack.truncate(h);
                self.dead = born_dead;
                if !born_dead {
                    self.stack.extend(params);
                }
                return Some(());
            }
            Op::End => {
                let f = self.frames.last()?;
                (f.kind != Kind::Func).then_some(())?;
                // an `if` without `else` passes its params through the missing branch
                (f.kind != Kind::If || f.params == f.results).then_some(())?;
                self.close_check()?;
                let f = self.frames.pop()?;
                self.stack.truncate(f.height);
                self.dead = f.born_dead;
                if !f.born_dead {
                    self.stack.extend(f.results);
                }
                return Some(());
            }
            _ => {}
        }
        if self.dead {
            // Dead code is validated by wasmparser; the engine does not type it, but
            // it must not hide an op it cannot follow.
            return (!matches!(op, Op::Raw(_))).then_some(());
        }
        match op {
            Op::Br(d) => {
                let label = self.point().label(*d)?.to_vec();
                self.top_is(&label)?;
                self.kill()?;
            }
            Op::BrIf(d) => {
                self.pop(Ty::I32)?;
                let label = self.point().label(*d)?.to_vec();
                self.top_is(&label)?;
            }
            Op::Return => {
                self.top_is(&[self.g.result])?;
                self.kill()?;
            }
            Op::I32Const(_) => self.stack.push(Ty::I32),
            Op::I64Const(_) => self.stack.push(Ty::I64),
            Op::F64Const(_) => self.stack.push(Ty::F64),
            Op::LocalGet(i) => self.stack.push((*self.g.local_types.get(*i as usize)?)?),
            Op::LocalSet(i) => {
                let t = (*self.g.local_types.get(*i as usize)?)?;
                self.pop(t)?;
            }
            Op::LocalTee(i) => {
                let t = (*self.g.local_types.get(*i as usize)?)?;
                self.top_is(&[t])?;
            }
            Op::Num(n) => {
                let (pops, push) = n.sig();
                self.pop_all(pops)?;
                self.stack.push(push);
            }
            Op::Select => {
                self.pop(Ty::I32)?;
                let floor = self.frames.last()?.height;
                (self.stack.len() >= floor + 2).then_some(())?;
                let b = self.stack.pop()?;
                (self.stack.pop()? == b).then_some(())?;
                self.stack.push(b);
            }
            Op::Drop => {
                let floor = self.frames.last()?.height;
                (self.stack.len() > floor).then_some(())?;
                self.stack.pop()?;
            }
            Op::Nop => {}
            Op::Raw(_) => return None,
            Op::Block(_) | Op::Loop(_) | Op::If(_) | Op::Else | Op::End => {}
        }
        Some(())
    }
}

impl Typing {
    /// The typing of `g`'s body.
    pub fn of(g: &Genome) -> Typing {
        let mut w = Walker {
            g,
            stack: Vec::new(),
            frames: vec![Frame {
                kind: Kind::Func,
                params: Vec::new(),
                results: vec![g.result],
                height: 0,
                born_dead: false,
            }],
            dead: false,
        };
        let mut points = Vec::with_capacity(g.ops.len() + 1);
        let mut lost = false;
        for op in &g.ops {
            if lost {
                points.push(None);
                continue;
            }
            points.push((!w.dead).then(|| w.point()));
            if w.step(op).is_none() {
                lost = true;
            }
        }
        let complete = !lost
            && w.frames.len() == 1
            && (w.dead || (w.stack.len() == 1 && w.stack[0] == g.result));
        points.push((!lost && !w.dead).then(|| w.point()));
        Typing { points, complete }
    }

    /// The operand stack before each op and after the last (`None` where unknown).
    pub fn stacks(&self) -> Vec<Option<Vec<Ty>>> {
        self.points
            .iter()
            .map(|p| p.as_ref().map(|p| p.stack.clone()))
            .collect()
    }
}

/// Whether `ops` is a self-contained piece of structured code: every frame it opens
/// it closes, it never closes or re-enters (`else`) a frame it did not open, and every
/// branch in it targets a frame it opened (`return` is allowed: its target is the
/// function's, the same wherever the piece goes).
pub fn self_contained(ops: &[Op]) -> bool {
    balanced(ops) && {
        let mut depth = 0u32;
        ops.iter().all(|op| match op {
            Op::Block(_) | Op::Loop(_) | Op::If(_) => {
                depth += 1;
                true
            }
            Op::End => {
                depth -= 1;
                true
            }
            Op::Br(d) | Op::BrIf(d) => *d < depth,
            _ => true,
        })
    }
}

/// Whether `ops` closes every frame it opens and nothing else (branches to outer
/// frames allowed: in place, they keep their targets).
pub fn balanced(ops: &[Op]) -> bool {
    let mut depth = 0i64;
    for op in ops {
        match op {
            Op::Block(_) | Op::Loop(_) | Op::If(_) => depth += 1,
            Op::Else if depth == 0 => return false,
            Op::End => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// Where a frame's `else` (if any) and `end` are, by op index.
pub type Closing = (Option<usize>, usize);

/// For each `block`/`loop`/`if` at index `i`, the index of its `else` (if any) and of
/// its `end`; `None` for other ops, and `None` in all when the body is not balanced.
pub fn matching(ops: &[Op]) -> Option<Vec<Option<Closing>>> {
    let mut out = vec![None; ops.len()];
    let mut open: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Block(_) | Op::Loop(_) | Op::If(_) => open.push((i, None)),
            Op::Else => open.last_mut()?.1 = Some(i),
            Op::End => {
                let (start, els) = open.pop()?;
                out[start] = Some((els, i));
            }
            _ => {}
        }
    }
    open.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing(params: &[Ty], result: Ty, ops: Vec<Op>) -> Typing {
        Typing::of(&Genome::new(params, result, ops))
    }

    #[test]
    fn a_counting_loop_is_followed_through() {
        // local 1 sums local 0 as it counts down: the result is 1 + … + n
        let g = crate::genome::counting_loop(Op::LocalGet(0));
        let t = Typing::of(&g);
        assert!(t.complete, "{t:?}");
        wasmparser::validate(&g.encode()).expect("valid");
        // inside the loop: two labels besides the function's, both empty
        let p = t.points[2].as_ref().expect("live");
        assert_eq!(p.depth(), 2);
        assert_eq!(p.label(0), Some(&[][..]));
        assert_eq!(p.label(2), Some(&[Ty::I64][..]));
        assert_eq!(p.label(3), None);
        // after `br 0` the rest of the loop is dead
        assert!(t.points[14].is_none());
        assert_eq!(t.points[15].as_ref().map(|p| p.depth()), Some(1));
        assert_eq!(
            t.points.last().cloned().flatten().map(|p| p.stack),
            Some(vec![Ty::I64])
        );
    }

    #[test]
    fn ill_typed_control_is_lost() {
        use Op::*;
        // `if` without `else` cannot make a value
        let t = typing(
            &[Ty::I64],
            Ty::I64,
            vec![I32Const(1), If(BlockTy::Value(Ty::I64)), LocalGet(0), End],
        );
        assert!(!t.complete);
        // a branch past the function's label
        let t = typing(&[Ty::I64], Ty::I64, vec![LocalGet(0), Br(1)]);
        assert!(!t.complete);
        // a branch carrying the wrong type
        let t = typing(
            &[Ty::I64],
            Ty::I64,
            vec![Block(BlockTy::Value(Ty::I64)), F64Const(0), Br(0), End],
        );
        assert!(!t.complete);
        // an unclosed frame, an `end` too many
        assert!(
            !typing(
                &[Ty::I64],
                Ty::I64,
                vec![Block(BlockTy::Empty), LocalGet(0)]
            )
            .complete
        );
        assert!(!typing(&[Ty::I64], Ty::I64, vec![LocalGet(0), End]).complete);
        // a body ending in dead code after `return` is complete
        let t = typing(&[Ty::I64], Ty::I64, vec![LocalGet(0), Return, Drop]);
        assert!(t.complete);
        assert_eq!(t.points[2], None);
        // popping below a block's floor is ill-typed even if the outer stack has it
        let t = typing(
            &[Ty::I64],
            Ty::I64,
            vec![LocalGet(0), Block(BlockTy::Empty), Drop, End],
        );
        assert!(!t.complete);
    }

    #[test]
    fn pieces_of_code() {
        use Op::*;
        let e = BlockTy::Empty;
        assert!(self_contained(&[
            Block(e.clone()),
            Loop(e.clone()),
            Br(1),
            End,
            End
        ]));
        assert!(!self_contained(&[Block(e.clone()), Br(1), End]));
        assert!(balanced(&[Block(e.clone()), Br(1), End]));
        assert!(!balanced(&[Else]));
        assert!(!balanced(&[End, Block(e.clone())]));
        assert!(self_contained(&[LocalGet(0), Return]));
        let m = matching(&[If(e.clone()), Nop, Else, Nop, End]).expect("balanced");
        assert_eq!(m[0], Some((Some(2), 4)));
        assert!(matching(&[If(e), Nop]).is_none());
    }
}
