//! A screening interpreter for genomes.
//!
//! Compiling a module with wasmtime costs ~0.35 ms; scoring it on twenty cases costs
//! ~30 µs. Most offspring of an evolution are *pure*: a module of only `act`, whose body
//! the engine decodes completely (constants, locals, `select`, `drop`, `nop`, the
//! numeric operations of [`NumOp`], and structured control: `block`, `loop`,
//! `if`/`else`, `br`, `br_if`, `return`), with no memory, table, global, import, data,
//! element or start. For those, this module computes exactly what wasmtime computes
//! (Wasm's semantics for every operation, traps included) without compiling, and
//! [`Plan::new`] refuses anything it could not answer exactly: a module that is not
//! pure, or a body the typing does not follow completely, or one whose value stack
//! might come near the policy's stack limit. Everything it refuses goes to the sandbox
//! as before; every module is still validated against the policy first, and the best of
//! each generation is run in the sandbox when it is stored (`performance/`).
//!
//! **Fuel** is counted as wasmtime 48 counts it, so a loop runs out of fuel on the same
//! case as in the sandbox: every operator costs 1 except `nop`, `drop`, `block`,
//! `loop`, `else`, `end` and `return` (0), and 1 is used before `act`'s first operator
//! (measured against the sandbox); the count is compared with the budget on entry to
//! `act` and each time control reaches a `loop` header (on entry and on every back
//! edge), and the call ends `out_of_fuel` when the fuel used so far is at least the
//! budget. Straight-line code is never stopped mid-way (wasmtime checks nowhere else).
//! A loop that comes back to its header in the very state it left it (same locals,
//! same stack) would go round the same way forever, the body being pure: the call
//! ends `out_of_fuel` at once, as it would when the budget ran out.
//!
//! The tests in `engine/tests/all/interp.rs` run random lineages with loops both ways
//! and compare outcomes and result bits, fuel budgets included.

use crate::genome::{Genome, NumOp, Op, Ty};
use crate::typing::{Typing, matching};
use runtime::{Outcome, Policy, Value};

/// Fuel wasmtime has used when `act` starts (and checks it first).
const ENTRY_FUEL: u64 = 1;

/// One instruction of a plan: an op with its jumps resolved.
#[derive(Clone, Copy, Debug)]
enum Ins {
    Const(u64),
    Get(u32),
    Set(u32),
    Tee(u32),
    Num(NumOp),
    /// `f64.mul` of two values Cranelift knows as negations (`fmul(fneg x, fneg y)`),
    /// which its optimizer rewrites to `fmul(x, y)`: the same number, but a NaN operand
    /// comes out with its sign flipped.
    MulNegNeg,
    Select,
    Drop,
    /// `nop`, `block`, `end`: nothing, no fuel.
    Skip,
    /// A `loop` header: the fuel check.
    Loop,
    /// `else` reached from the end of the then-branch: on to after the `end`.
    Jump(u32),
    /// `if`: on a zero condition, to the else-branch (or past the `end`).
    If(u32),
    /// `br`/`br_if` to `to`, keeping `arity` values above stack height `height`.
    Br {
        to: u32,
        height: u32,
        arity: u32,
    },
    BrIf {
        to: u32,
        height: u32,
        arity: u32,
    },
    Return,
}

/// A genome ready to be interpreted.
pub struct Plan {
    code: Vec<Ins>,
    locals: Vec<Ty>,
    params: usize,
    result: Ty,
}

/// Buffers for the locals and the value stack, kept between calls.
#[derive(Default)]
pub struct Scratch {
    locals: Vec<u64>,
    stack: Vec<u64>,
    /// The state at the last loop header reached: its index, locals and stack.
    seen: Option<usize>,
    seen_locals: Vec<u64>,
    seen_stack: Vec<u64>,
}

/// What one call gives: a value or a trap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    /// The result.
    Value(Value),
    /// The trap, as the sandbox names it.
    Trap(Outcome),
}

impl Plan {
    /// A plan for `g` under `policy`, or `None` when only the sandbox can say what it
    /// does.
    pub fn new(g: &Genome, policy: &Policy) -> Option<Plan> {
        // NaN bits follow x86-64's rules; elsewhere the sandbox answers for itself.
        if !cfg!(target_arch = "x86_64") {
            return None;
        }
        if !g.is_pure() || g.ops.iter().any(|o| matches!(o, Op::Raw(_))) {
            return None;
        }
        let locals: Option<Vec<Ty>> = g.local_types.iter().copied().collect();
        let locals = locals?;
        // The typing must follow the whole body and end with just the result.
        let typing = Typing::of(g);
        if !typing.complete {
            return None;
        }
        let height = typing
            .points
            .iter()
            .map(|p| p.as_ref().map_or(0, |p| p.stack.len()))
            .max()
            .unwrap_or(0);
        // Far from the stack limit: a compiled body needs at most a slot per stack
        // value and local.
        let l = &policy.limits;
        if ((height + locals.len()) as u64).saturating_mul(16) + 8192 >= l.stack_bytes {
            return None;
        }
        Some(Plan {
            code: compile(g, &typing)?,
            params: g.params.len(),
            result: g.result,
            locals,
        })
    }

    /// Calls `act` with `args` (typed as the genome's parameters) and `fuel` to spend.
    pub fn call(&self, args: &[Value], fuel: u64) -> Answer {
        self.call_with(args, fuel, &mut Scratch::default())
    }

    /// [`Plan::call`] reusing the buffers of earlier calls.
    pub fn call_with(&self, args: &[Value], fuel: u64, scratch: &mut Scratch) -> Answer {
        match self.run(args, fuel, scratch) {
            Ok(v) => Answer::Value(v),
            Err(o) => Answer::Trap(o),
        }
    }

    fn run(&self, args: &[Value], fuel: u64, scratch: &mut Scratch) -> Result<Value, Outcome> {
        // wasmtime has charged 1 by the time `act` checks its fuel on entry (measured:
        // `i64.const 1` uses 2, and a budget of 1 runs nothing).
        let mut used: u64 = ENTRY_FUEL;
        if used >= fuel {
            return Err(Outcome::OutOfFuel);
        }
        // Values as raw bits: i32 in the low 32, i64 as is, f64 as its bits.
        let locals = &mut scratch.locals;
        locals.clear();
        locals.resize(self.locals.len(), 0);
        for (i, a) in args.iter().take(self.params).enumerate() {
            locals[i] = a.bits();
        }
        let s = &mut scratch.stack;
        s.clear();
        scratch.seen = None;
        // The typing was checked in `new`: pops cannot fail; `?` on them is defensive.
        let bad = Outcome::HostError;
        let code = &self.code;
        let mut pc = 0usize;
        while let Some(ins) = code.get(pc) {
            pc += 1;
            match *ins {
                Ins::Const(v) => {
                    used += 1;
                    s.push(v)
                }
                Ins::Get(i) => {
                    used += 1;
                    s.push(*locals.get(i as usize).ok_or(bad)?)
                }
                Ins::Set(i) => {
                    used += 1;
                    *locals.get_mut(i as usize).ok_or(bad)? = s.pop().ok_or(bad)?
                }
                Ins::Tee(i) => {
                    used += 1;
                    *locals.get_mut(i as usize).ok_or(bad)? = *s.last().ok_or(bad)?
                }
                Ins::Select => {
                    used += 1;
                    let c = s.pop().ok_or(bad)? as u32;
                    let b = s.pop().ok_or(bad)?;
                    let a = s.pop().ok_or(bad)?;
                    s.push(if c != 0 { a } else { b });
                }
                Ins::Drop => {
                    s.pop().ok_or(bad)?;
                }
                Ins::Skip => {}
                Ins::MulNegNeg => {
                    used += 1;
                    let b = s.pop().ok_or(bad)?;
                    let a = s.pop().ok_or(bad)?;
                    let r = num(NumOp::F64Mul, a, b)?;
                    s.push(if f(a).is_nan() || f(b).is_nan() {
                        r ^ SIGN
                    } else {
                        r
                    });
                }
                Ins::Num(n) => {
                    used += 1;
                    let arity = n.sig().0.len();
                    let b = if arity == 2 { s.pop().ok_or(bad)? } else { 0 };
                    let a = s.pop().ok_or(bad)?;
                    s.push(num(n, a, b)?);
                }
                Ins::Loop => {
                    if used >= fuel {
                        return Err(Outcome::OutOfFuel);
                    }
                    // Back at the header just reached, in the very same state: the body
                    // is pure and deterministic, so it would go round the same way
                    // until the fuel runs out (any trap would have happened already).
                    let here = pc - 1;
                    if scratch.seen == Some(here)
                        && scratch.seen_locals == *locals
                        && scratch.seen_stack == *s
                    {
                        return Err(Outcome::OutOfFuel);
                    }
                    scratch.seen = Some(here);
                    scratch.seen_locals.clone_from(locals);
                    scratch.seen_stack.clone_from(s);
                }
                Ins::Jump(to) => pc = to as usize,
                Ins::If(to) => {
                    used += 1;
                    if s.pop().ok_or(bad)? as u32 == 0 {
                        pc = to as usize;
                    }
                }
                Ins::Br { to, height, arity } => {
                    used += 1;
                    unwind(s, height, arity).ok_or(bad)?;
                    pc = to as usize;
                }
                Ins::BrIf { to, height, arity } => {
                    used += 1;
                    if s.pop().ok_or(bad)? as u32 != 0 {
                        unwind(s, height, arity).ok_or(bad)?;
                        pc = to as usize;
                    }
                }
                Ins::Return => break,
            }
        }
        let top = s.pop().ok_or(bad)?;
        Ok(match self.result {
            Ty::I64 => Value::I64(top as i64),
            Ty::F64 => Value::F64(top),
            Ty::I32 => return Err(bad),
        })
    }
}

/// Keeps the top `arity` values and drops what lies between them and `height`.
fn unwind(s: &mut Vec<u64>, height: u32, arity: u32) -> Option<()> {
    let (height, arity) = (height as usize, arity as usize);
    let from = s.len().checked_sub(arity)?;
    if from < height {
        return None;
    }
    if from > height {
        s.copy_within(from.., height);
        s.truncate(height + arity);
    }
    Some(())
}

/// The plan's instructions for a body whose typing is complete.
fn compile(g: &Genome, typing: &Typing) -> Option<Vec<Ins>> {
    let ops = &g.ops;
    let n = ops.len();
    let pairs = matching(ops)?;
    let neg_neg = negated_products(g)?;
    // Open frames: (index of the opener, is a loop, stack height at entry, label arity).
    let mut frames: Vec<(usize, bool, usize, usize)> = Vec::new();
    let mut code = Vec::with_capacity(n);
    let u = |x: usize| u32::try_from(x).ok();
    for (i, op) in ops.iter().enumerate() {
        let here = typing.points[i].as_ref();
        let target = |d: u32, frames: &[(usize, bool, usize, usize)]| -> Option<(u32, u32, u32)> {
            let k = frames.len().checked_sub(1 + d as usize);
            match k {
                // the function's label: a return
                None if d as usize == frames.len() => Some((u(n)?, 0, 1)),
                None => None,
                Some(k) => {
                    let (start, is_loop, height, arity) = frames[k];
                    let (_, end) = pairs[start]?;
                    let to = if is_loop { start } else { end + 1 };
                    Some((u(to)?, u(height)?, u(arity)?))
                }
            }
        };
        let ins = match op {
            Op::I32Const(v) => Ins::Const(u64::from(*v as u32)),
            Op::I64Const(v) => Ins::Const(*v as u64),
            Op::F64Const(b) => Ins::Const(*b),
            Op::LocalGet(l) => Ins::Get(*l),
            Op::LocalSet(l) => Ins::Set(*l),
            Op::LocalTee(l) => Ins::Tee(*l),
            Op::Num(NumOp::F64Mul) if neg_neg.get(i) == Some(&true) => Ins::MulNegNeg,
            Op::Num(x) => Ins::Num(*x),
            Op::Select => Ins::Select,
            Op::Drop => Ins::Drop,
            Op::Nop => Ins::Skip,
            Op::Block(bt) | Op::Loop(bt) | Op::If(bt) => {
                let (params, results) = g.block_sig(bt)?;
                let is_loop = matches!(op, Op::Loop(_));
                // in dead code the height does not matter: nothing there runs
                let below = usize::from(matches!(op, Op::If(_)));
                let height = here.map_or(0, |p| p.stack.len().saturating_sub(params.len() + below));
                let arity = if is_loop { params.len() } else { results.len() };
                frames.push((i, is_loop, height, arity));
                match op {
                    Op::Loop(_) => Ins::Loop,
                    Op::If(_) => {
                        let (els, end) = pairs[i]?;
                        Ins::If(u(els.map_or(end + 1, |e| e + 1))?)
                    }
                    _ => Ins::Skip,
                }
            }
            Op::Else => {
                let &(start, ..) = frames.last()?;
                let (_, end) = pairs[start]?;
                Ins::Jump(u(end + 1)?)
            }
            Op::End => {
                frames.pop()?;
                Ins::Skip
            }
            Op::Br(d) => {
                let (to, height, arity) = target(*d, &frames)?;
                Ins::Br { to, height, arity }
            }
            Op::BrIf(d) => {
                let (to, height, arity) = target(*d, &frames)?;
                Ins::BrIf { to, height, arity }
            }
            Op::Return => Ins::Return,
            Op::Raw(_) => return None,
        };
        code.push(ins);
    }
    Some(code)
}

fn f(x: u64) -> f64 {
    f64::from_bits(x)
}

fn fb(x: f64) -> u64 {
    x.to_bits()
}

fn bool_(b: bool) -> u64 {
    u64::from(b)
}

const QUIET: u64 = 0x0008_0000_0000_0000;
const SIGN: u64 = 0x8000_0000_0000_0000;

/// What Cranelift's optimizer can know of a value, as far as its one float rewrite that
/// changes result bits is concerned: `fmul(fneg x, fneg y)` → `fmul(x, y)` (the same
/// number; a NaN operand's sign comes out flipped). Negating a constant folds to a
/// constant (no `fneg` left), and `fneg(fneg x)` is `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tag {
    /// Neither a constant nor a negation.
    Plain,
    /// An `f64` constant (folded: constant operands with a number as the result).
    Const(u64),
    /// A constant or not (the optimizer may fold it), never a negation.
    MaybeConst,
    /// `fneg` of a value that is neither a constant nor a negation.
    Neg,
    /// Maybe a negation, maybe not, depending on what the optimizer merged or folded.
    Unknown,
}

/// A value of the abstract state: its tag, and an id standing for Cranelift's SSA
/// value (one per instruction that makes a value; a local read gives the value set).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Val {
    tag: Tag,
    id: u32,
}

/// Abstract state: the stack and the locals; `None` in unreachable code.
type Tags = Option<(Vec<Val>, Vec<Val>)>;

/// For each op of `g`, whether it is an `f64.mul` Cranelift rewrites (both operands
/// negations); `None` when that cannot be told (values merged at control flow that may
/// or may not be negations): such a body is left to the sandbox.
///
/// Follows Cranelift's SSA: a value reaches a merge point (a loop header, the `end` of
/// a block or `if` with more than one way in) unchanged only when every way brings the
/// same value, so a tag other than `Plain` becomes `Unknown` there.
fn negated_products(g: &Genome) -> Option<Vec<bool>> {
    struct Frame {
        /// The locals set inside: the others come out of every way as they went in.
        assigned: Vec<bool>,
        is_loop: bool,
        height: usize,
        results: usize,
        /// An `if`'s state for its else-branch, until `else` takes it.
        else_state: Tags,
        /// States at branches to the end, and the end's own way in.
        incoming: Vec<(Vec<Val>, Vec<Val>)>,
    }
    let may_be_neg = |t: Tag| matches!(t, Tag::Neg | Tag::Unknown);
    let merge = |a: Tag, b: Tag| match (a, b) {
        (Tag::Plain, Tag::Plain) => Tag::Plain,
        _ if may_be_neg(a) || may_be_neg(b) => Tag::Unknown,
        _ => Tag::MaybeConst,
    };
    let ids = std::cell::Cell::new(0u32);
    let fresh = |tag: Tag| {
        ids.set(ids.get() + 1);
        Val { tag, id: ids.get() }
    };
    // One value every way is that value (Cranelift drops such a phi); else a phi.
    let join = |a: Val, b: Val| {
        if a.id == b.id {
            a
        } else {
            fresh(merge(a.tag, b.tag))
        }
    };
    // A loop header: the value may come back along the loop as another one.
    let at_loop = |v: Val| fresh(merge(v.tag, Tag::Plain));
    let mut out = vec![false; g.ops.len()];
    // The locals set between op `i` (an opener) and its `end`.
    let assigned_in = |i: usize| -> Vec<bool> {
        let mut set = vec![false; g.local_types.len()];
        let mut depth = 0usize;
        for op in &g.ops[i..] {
            match op {
                Op::Block(_) | Op::Loop(_) | Op::If(_) => depth += 1,
                Op::End => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Op::LocalSet(l) | Op::LocalTee(l) => {
                    if let Some(x) = set.get_mut(*l as usize) {
                        *x = true;
                    }
                }
                _ => {}
            }
        }
        set
    };
    let mut locals: Vec<Val> = Vec::new();
    for (i, t) in g.local_types.iter().enumerate() {
        locals.push(fresh(match (i < g.params.len(), (*t)?) {
            (false, Ty::F64) => Tag::Const(0),
            _ => Tag::Plain,
        }));
    }
    let mut st: Tags = Some((Vec::new(), locals));
    let mut frames: Vec<Frame> = Vec::new();
    // The state carried by a branch to `frames[k]`'s label, or nothing for a loop or the
    // function.
    let branch = |frames: &mut Vec<Frame>, d: u32, state: &(Vec<Val>, Vec<Val>)| -> Option<()> {
        let Some(k) = frames.len().checked_sub(1 + d as usize) else {
            return Some(());
        };
        let f = &mut frames[k];
        if f.is_loop {
            return Some(());
        }
        let (stack, locals) = state;
        let mut carried = stack.get(..f.height)?.to_vec();
        carried.extend_from_slice(stack.get(stack.len().checked_sub(f.results)?..)?);
        f.incoming.push((carried, locals.clone()));
        Some(())
    };
    for (i, op) in g.ops.iter().enumerate() {
        match op {
            Op::Block(bt) | Op::Loop(bt) | Op::If(bt) => {
                let (params, results) = g.block_sig(bt)?;
                if let (Op::If(_), Some((stack, _))) = (op, st.as_mut()) {
                    stack.pop()?;
                }
                let height = st
                    .as_ref()
                    .map_or(0, |(s, _)| s.len().saturating_sub(params.len()));
                let is_loop = matches!(op, Op::Loop(_));
                let assigned = assigned_in(i);
                if let (true, Some((stack, locals))) = (is_loop, st.as_mut()) {
                    // a local the loop sets may come back as another value (a phi)
                    for (t, _) in locals.iter_mut().zip(&assigned).filter(|(_, a)| **a) {
                        *t = at_loop(*t);
                    }
                    for t in stack.get_mut(height..)? {
                        *t = at_loop(*t);
                    }
                }
                frames.push(Frame {
                    assigned,
                    is_loop,
                    height,
                    results: results.len(),
                    else_state: if matches!(op, Op::If(_)) {
                        st.clone()
                    } else {
                        None
                    },
                    incoming: Vec::new(),
                });
            }
            Op::Else => {
                let f = frames.last_mut()?;
                if let Some(s) = st.take() {
                    f.incoming.push(s);
                }
                st = f.else_state.take();
            }
            Op::End => {
                let mut f = frames.pop()?;
                if let Some(s) = st.take() {
                    f.incoming.push(s);
                }
                // an `if` without `else`: its entry state goes on to the end
                if let Some(s) = f.else_state.take() {
                    f.incoming.push(s);
                }
                let (assigned, height) = (f.assigned, f.height);
                let mut ways = f.incoming.into_iter();
                st = ways.next().map(|first| {
                    ways.fold(first, |(mut s, mut l), (s2, l2)| {
                        // the values below the block are the same every way
                        for (a, b) in s.iter_mut().zip(s2).skip(height) {
                            *a = join(*a, b);
                        }
                        // a local the block does not set is the same value every way
                        for ((a, b), _) in
                            l.iter_mut().zip(l2).zip(&assigned).filter(|(_, set)| **set)
                        {
                            *a = join(*a, b);
                        }
                        (s, l)
                    })
                });
            }
            Op::Br(d) => {
                if let Some(s) = st.take() {
                    branch(&mut frames, *d, &s)?;
                }
            }
            Op::BrIf(d) => {
                if let Some(s) = st.as_mut() {
                    s.0.pop()?;
                    let copy = s.clone();
                    branch(&mut frames, *d, &copy)?;
                }
            }
            Op::Return => st = None,
            Op::Raw(_) => return None,
            _ => {}
        }
        let Some((stack, locals)) = st.as_mut() else {
            continue;
        };
        match op {
            // integers: what matters is only that a conversion of one may fold
            Op::I32Const(_) | Op::I64Const(_) => stack.push(fresh(Tag::Plain)),
            Op::F64Const(b) => stack.push(fresh(Tag::Const(*b))),
            Op::LocalGet(l) => stack.push(*locals.get(*l as usize)?),
            Op::LocalSet(l) => *locals.get_mut(*l as usize)? = stack.pop()?,
            Op::LocalTee(l) => *locals.get_mut(*l as usize)? = *stack.last()?,
            Op::Drop => {
                stack.pop()?;
            }
            Op::Select => {
                stack.pop()?;
                let (b, a) = (stack.pop()?, stack.pop()?);
                // A constant condition folds the select to one of its operands.
                stack.push(fresh(merge(a.tag, b.tag)));
            }
            Op::Num(n) => {
                let arity = n.sig().0.len();
                let b = if arity == 2 {
                    stack.pop()?.tag
                } else {
                    Tag::Plain
                };
                let a = stack.pop()?.tag;
                let t = match n {
                    NumOp::F64Neg => match a {
                        Tag::Const(c) => Tag::Const(c ^ SIGN),
                        Tag::Neg => Tag::Plain,
                        Tag::Plain => Tag::Neg,
                        Tag::MaybeConst | Tag::Unknown => Tag::Unknown,
                    },
                    NumOp::F64Mul if a == Tag::Neg && b == Tag::Neg => {
                        out[i] = true;
                        Tag::Plain
                    }
                    // one may be a negation: only the sandbox can say
                    NumOp::F64Mul if may_be_neg(a) && may_be_neg(b) => return None,
                    // an integer may be folded to a constant (`x - x`, `x * 0`, …)
                    NumOp::F64ConvertI64S => Tag::MaybeConst,
                    _ if n.sig().1 != Ty::F64 => Tag::Plain,
                    // constant operands fold to a constant, unless the result is NaN
                    // (`fabs` always folds); no arithmetic makes a negation
                    _ => match (a, b, arity) {
                        (Tag::Const(x), _, 1) | (Tag::Const(x), Tag::Const(_), 2) => {
                            let y = if let Tag::Const(y) = b { y } else { 0 };
                            let r = num(*n, x, y).ok()?;
                            if f(r).is_nan() && *n != NumOp::F64Abs {
                                Tag::Plain
                            } else {
                                Tag::Const(r)
                            }
                        }
                        (Tag::MaybeConst | Tag::Unknown, _, 1) => Tag::MaybeConst,
                        (
                            Tag::MaybeConst | Tag::Unknown | Tag::Const(_),
                            Tag::MaybeConst | Tag::Unknown | Tag::Const(_),
                            2,
                        ) => Tag::MaybeConst,
                        _ => Tag::Plain,
                    },
                };
                stack.push(fresh(t));
            }
            _ => {}
        }
    }
    Some(out)
}

/// An arithmetic operation with the NaN the sandbox's code gives on x86-64: a NaN
/// operand comes out quieted, the first one when both are NaN; a NaN made from numbers
/// (`inf - inf`) is the processor's default NaN, which the operation itself gives.
fn arith(a: u64, b: u64, op: fn(f64, f64) -> f64) -> u64 {
    if f(a).is_nan() {
        a | QUIET
    } else if f(b).is_nan() {
        b | QUIET
    } else {
        fb(op(f(a), f(b)))
    }
}

/// Wasm's `f64.min` / `f64.max`: -0 below +0; with a NaN operand, the NaN as the
/// sandbox's code gives it on x86-64 (the second operand when both are NaN).
fn fminmax(a: u64, b: u64, max: bool) -> u64 {
    if f(b).is_nan() {
        return b | QUIET;
    }
    if f(a).is_nan() {
        return a | QUIET;
    }
    let (x, y) = (f(a), f(b));
    if x == y {
        // equal, possibly zeros of two signs
        return if max { a & b } else { a | b };
    }
    if (x < y) != max { a } else { b }
}

/// One numeric operation on raw bits, with Wasm's semantics.
fn num(n: NumOp, a: u64, b: u64) -> Result<u64, Outcome> {
    let (x, y) = (a as i64, b as i64);
    let (p, q) = (a as u32, b as u32);
    Ok(match n {
        NumOp::I64Add => x.wrapping_add(y) as u64,
        NumOp::I64Sub => x.wrapping_sub(y) as u64,
        NumOp::I64Mul => x.wrapping_mul(y) as u64,
        NumOp::I64DivS => {
            if y == 0 {
                return Err(Outcome::DivisionByZero);
            }
            if x == i64::MIN && y == -1 {
                return Err(Outcome::IntegerOverflow);
            }
            (x / y) as u64
        }
        NumOp::I64RemS => {
            if y == 0 {
                return Err(Outcome::DivisionByZero);
            }
            x.wrapping_rem(y) as u64
        }
        NumOp::I64And => a & b,
        NumOp::I64Or => a | b,
        NumOp::I64Xor => a ^ b,
        NumOp::I64Shl => x.wrapping_shl(b as u32) as u64,
        NumOp::I64ShrS => x.wrapping_shr(b as u32) as u64,
        NumOp::I64Eqz => bool_(x == 0),
        NumOp::I64Eq => bool_(x == y),
        NumOp::I64Ne => bool_(x != y),
        NumOp::I64LtS => bool_(x < y),
        NumOp::I64GtS => bool_(x > y),
        NumOp::I64LeS => bool_(x <= y),
        NumOp::I64GeS => bool_(x >= y),
        NumOp::F64Add => arith(a, b, |x, y| x + y),
        NumOp::F64Sub => arith(a, b, |x, y| x - y),
        NumOp::F64Mul => arith(a, b, |x, y| x * y),
        NumOp::F64Div => arith(a, b, |x, y| x / y),
        NumOp::F64Min => fminmax(a, b, false),
        NumOp::F64Max => fminmax(a, b, true),
        NumOp::F64Abs => a & !(1 << 63),
        NumOp::F64Neg => a ^ (1 << 63),
        NumOp::F64Sqrt if f(a).is_nan() => a | QUIET,
        NumOp::F64Sqrt => fb(f(a).sqrt()),
        NumOp::F64Floor if f(a).is_nan() => a | QUIET,
        NumOp::F64Floor => fb(f(a).floor()),
        NumOp::F64Ceil if f(a).is_nan() => a | QUIET,
        NumOp::F64Ceil => fb(f(a).ceil()),
        NumOp::F64Eq => bool_(f(a) == f(b)),
        NumOp::F64Lt => bool_(f(a) < f(b)),
        NumOp::F64Gt => bool_(f(a) > f(b)),
        NumOp::F64Le => bool_(f(a) <= f(b)),
        NumOp::F64Ge => bool_(f(a) >= f(b)),
        NumOp::I32Add => u64::from(p.wrapping_add(q)),
        NumOp::I32Sub => u64::from(p.wrapping_sub(q)),
        NumOp::I32And => u64::from(p & q),
        NumOp::I32Or => u64::from(p | q),
        NumOp::I32Xor => u64::from(p ^ q),
        NumOp::I32Eqz => bool_(p == 0),
        NumOp::F64ConvertI64S => fb(x as f64),
        // Rust's `as` saturates and sends NaN to 0: Wasm's trunc_sat.
        NumOp::I64TruncSatF64S => f(a) as i64 as u64,
        NumOp::I64ExtendI32U => u64::from(p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genome::BlockTy;

    const FUEL: u64 = 10_000_000;

    fn plan(params: &[Ty], result: Ty, ops: Vec<Op>) -> Option<Plan> {
        Plan::new(&Genome::new(params, result, ops), &Policy::default_policy())
    }

    fn div(op: NumOp) -> Plan {
        plan(
            &[Ty::I64, Ty::I64],
            Ty::I64,
            vec![Op::LocalGet(0), Op::LocalGet(1), Op::Num(op)],
        )
        .expect("plan")
    }

    #[test]
    fn integer_traps_are_the_sandbox_words() {
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let d = div(NumOp::I64DivS);
        let call = |p: &Plan, a: i64, b: i64| p.call(&[Value::I64(a), Value::I64(b)], FUEL);
        assert_eq!(call(&d, 7, 0), Answer::Trap(Outcome::DivisionByZero));
        assert_eq!(
            call(&d, i64::MIN, -1),
            Answer::Trap(Outcome::IntegerOverflow)
        );
        assert_eq!(call(&d, -7, 2), Answer::Value(Value::I64(-3)));
        let r = div(NumOp::I64RemS);
        assert_eq!(call(&r, 7, 0), Answer::Trap(Outcome::DivisionByZero));
        // MIN rem -1 is 0 in Wasm, not an overflow
        assert_eq!(call(&r, i64::MIN, -1), Answer::Value(Value::I64(0)));
        assert_eq!(call(&r, -7, 2), Answer::Value(Value::I64(-1)));
        // wrapping arithmetic and shifts modulo 64
        let m = div(NumOp::I64Mul);
        assert_eq!(call(&m, i64::MAX, 2), Answer::Value(Value::I64(-2)));
        let s = div(NumOp::I64Shl);
        assert_eq!(call(&s, 1, 65), Answer::Value(Value::I64(2)));
    }

    #[test]
    fn a_trap_leaves_the_scratch_usable() {
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let d = div(NumOp::I64DivS);
        let mut scratch = Scratch::default();
        let args = |a, b| [Value::I64(a), Value::I64(b)];
        assert_eq!(
            d.call_with(&args(1, 0), FUEL, &mut scratch),
            Answer::Trap(Outcome::DivisionByZero)
        );
        assert_eq!(
            d.call_with(&args(9, 3), FUEL, &mut scratch),
            Answer::Value(Value::I64(3))
        );
        // fewer arguments than params: the missing locals are zero
        assert_eq!(
            d.call_with(&[Value::I64(5)], FUEL, &mut scratch),
            Answer::Trap(Outcome::DivisionByZero)
        );
    }

    #[test]
    fn bodies_the_typing_cannot_follow_are_left_to_the_sandbox() {
        // an empty body leaves an empty stack, not the result
        assert!(plan(&[Ty::I64], Ty::I64, vec![]).is_none());
        // two values left
        assert!(plan(&[Ty::I64], Ty::I64, vec![Op::LocalGet(0), Op::LocalGet(0)]).is_none());
        // a pop from an empty stack
        assert!(plan(&[Ty::I64], Ty::I64, vec![Op::Num(NumOp::I64Add)]).is_none());
        // the wrong result type
        assert!(plan(&[Ty::I64], Ty::F64, vec![Op::LocalGet(0)]).is_none());
        // a local that does not exist
        assert!(plan(&[Ty::I64], Ty::I64, vec![Op::LocalGet(1)]).is_none());
        // raw bytes the engine does not decode
        assert!(
            plan(
                &[Ty::I64],
                Ty::I64,
                vec![Op::LocalGet(0), Op::Raw(vec![0x01])]
            )
            .is_none()
        );
        // a module with a memory is not pure
        let bytes = wat::parse_str(
            r#"(module (memory 1) (func (export "act") (param i64) (result i64) local.get 0))"#,
        )
        .expect("wat");
        let g = Genome::decode(&bytes).expect("decode");
        assert!(!g.is_pure());
        assert!(Plan::new(&g, &Policy::default_policy()).is_none());
    }

    #[test]
    fn bodies_near_the_stack_limit_are_left_to_the_sandbox() {
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let body = |n: usize| {
            let mut ops = vec![Op::LocalGet(0)];
            for _ in 0..n {
                ops.push(Op::Nop);
            }
            Genome::new(&[Ty::I64], Ty::I64, ops)
        };
        // long straight-line bodies are interpreted whatever the fuel: wasmtime only
        // checks it on entry and at loop headers
        let mut p = Policy::default_policy();
        p.limits.fuel_per_call = 10;
        assert!(Plan::new(&body(5000), &p).is_some());
        let mut p = Policy::default_policy();
        p.limits.stack_bytes = 8192 + 16 * 2;
        // one local and one stack slot: (1 + 1) × 16 + 8192 is not under the cap
        assert!(Plan::new(&body(0), &p).is_none());
        p.limits.stack_bytes += 1;
        assert!(Plan::new(&body(0), &p).is_some());
    }

    /// `n` times around a loop adding 3 to local 1, then local 1.
    fn counting_loop() -> Plan {
        let g = crate::genome::counting_loop(Op::I64Const(3));
        Plan::new(&g, &Policy::default_policy()).expect("plan")
    }

    #[test]
    fn loops_run_and_run_out_of_fuel_where_wasmtime_does() {
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let p = counting_loop();
        assert_eq!(
            p.call(&[Value::I64(4)], FUEL),
            Answer::Value(Value::I64(12))
        );
        // each round costs 12 (every op but `loop` costs 1, a `br_if` not taken too);
        // with 1 used on entry the header sees 1, 13, 25, …: with n rounds the last
        // check is at 1 + 12 n, after which the exit and `local.get` run unchecked
        for n in 0..5i64 {
            let last_check = 1 + 12 * n as u64;
            assert_eq!(
                p.call(&[Value::I64(n)], last_check + 1),
                Answer::Value(Value::I64(3 * n)),
                "n = {n}"
            );
            assert_eq!(
                p.call(&[Value::I64(n)], last_check),
                Answer::Trap(Outcome::OutOfFuel),
                "n = {n}"
            );
        }
        // no fuel, or just the entry's: nothing runs
        assert_eq!(
            p.call(&[Value::I64(0)], 0),
            Answer::Trap(Outcome::OutOfFuel)
        );
        assert_eq!(
            p.call(&[Value::I64(0)], 1),
            Answer::Trap(Outcome::OutOfFuel)
        );
        // an endless loop ends out of fuel
        assert_eq!(
            p.call(&[Value::I64(-1)], 5000),
            Answer::Trap(Outcome::OutOfFuel)
        );
    }

    #[test]
    fn a_loop_that_repeats_its_state_runs_out_of_fuel_at_once() {
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        use Op::*;
        // `loop local.get 0 i64.eqz i32.eqz br_if 0 end`: endless unless the param is 0
        let g = Genome::new(
            &[Ty::I64],
            Ty::I64,
            vec![
                Loop(BlockTy::Empty),
                LocalGet(0),
                Num(NumOp::I64Eqz),
                Num(NumOp::I32Eqz),
                BrIf(0),
                End,
                LocalGet(0),
            ],
        );
        let p = Plan::new(&g, &Policy::default_policy()).expect("plan");
        assert_eq!(p.call(&[Value::I64(0)], FUEL), Answer::Value(Value::I64(0)));
        assert_eq!(
            p.call(&[Value::I64(5)], u64::MAX),
            Answer::Trap(Outcome::OutOfFuel)
        );
    }

    #[test]
    fn branches_keep_their_values_and_if_takes_its_branch() {
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        use Op::*;
        // block (result i64): 7 and something under it, br_if 0 on the param, else 9
        let ops = vec![
            I64Const(100),
            Block(BlockTy::Value(Ty::I64)),
            I64Const(1),
            I64Const(7),
            LocalGet(0),
            Num(NumOp::I64Eqz),
            Num(NumOp::I32Eqz),
            BrIf(0),
            Drop,
            Drop,
            I64Const(9),
            End,
            Num(NumOp::I64Add),
            LocalGet(0),
            Num(NumOp::I64Eqz),
            If(BlockTy::Value(Ty::I64)),
            I64Const(1000),
            Else,
            I64Const(2000),
            End,
            Num(NumOp::I64Add),
        ];
        let g = Genome::new(&[Ty::I64], Ty::I64, ops);
        wasmparser::validate(&g.encode()).expect("valid");
        let p = Plan::new(&g, &Policy::default_policy()).expect("plan");
        assert_eq!(
            p.call(&[Value::I64(5)], FUEL),
            Answer::Value(Value::I64(2107))
        );
        assert_eq!(
            p.call(&[Value::I64(0)], FUEL),
            Answer::Value(Value::I64(1109))
        );
        // `return` from inside a block
        let g = Genome::new(
            &[Ty::I64],
            Ty::I64,
            vec![Block(BlockTy::Empty), LocalGet(0), Return, End, I64Const(4)],
        );
        let p = Plan::new(&g, &Policy::default_policy()).expect("plan");
        assert_eq!(p.call(&[Value::I64(5)], FUEL), Answer::Value(Value::I64(5)));
    }
}
