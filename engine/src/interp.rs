//! A screening interpreter for straight-line genomes.
//!
//! Compiling a module with wasmtime costs ~0.35 ms; scoring it on twenty cases costs
//! ~30 µs. Most offspring of an evolution are *pure*: a module of only `act`, whose body
//! is straight-line code the engine decodes completely (constants, locals, `select`,
//! `drop`, `nop` and the numeric operations of [`NumOp`]), with no memory, table,
//! global, import, data, element or start. For those, this module computes exactly what
//! wasmtime computes (Wasm's semantics for every operation, traps included) without
//! compiling, and [`Plan::new`] refuses anything it could not answer exactly: a module
//! that is not pure, a body the stack typing does not follow, or one that might hit the
//! policy's fuel or stack limits. Everything it refuses goes to the sandbox as before;
//! every module is still validated against the policy first, and the best of each
//! generation is run in the sandbox when it is stored (`performance/`).
//!
//! The tests in `engine/tests/all/interp.rs` run random lineages both ways and compare
//! outcomes and result bits.

use crate::genome::{Genome, NumOp, Op, Ty};
use runtime::{Outcome, Policy, Value};

/// A genome ready to be interpreted.
pub struct Plan {
    ops: Vec<Op>,
    locals: Vec<Ty>,
    params: usize,
    result: Ty,
}

/// Buffers for the locals and the value stack, kept between calls.
#[derive(Default)]
pub struct Scratch {
    locals: Vec<u64>,
    stack: Vec<u64>,
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
        // The stack typing must follow the whole body and end with just the result.
        let stacks = g.stacks();
        match stacks.last() {
            Some(Some(s)) if s.as_slice() == [g.result] => {}
            _ => return None,
        }
        let height = stacks
            .iter()
            .map(|s| s.as_ref().map_or(0, Vec::len))
            .max()
            .unwrap_or(0);
        // Far from the limits: wasmtime charges about one unit of fuel per operation,
        // and a compiled body needs at most a slot per stack value and local.
        let l = &policy.limits;
        if (g.ops.len() as u64).saturating_mul(2) + 64 >= l.fuel_per_call {
            return None;
        }
        if ((height + locals.len()) as u64).saturating_mul(16) + 8192 >= l.stack_bytes {
            return None;
        }
        Some(Plan {
            ops: g.ops.clone(),
            params: g.params.len(),
            result: g.result,
            locals,
        })
    }

    /// Calls `act` with `args` (typed as the genome's parameters).
    pub fn call(&self, args: &[Value]) -> Answer {
        self.call_with(args, &mut Scratch::default())
    }

    /// [`Plan::call`] reusing the buffers of earlier calls.
    pub fn call_with(&self, args: &[Value], scratch: &mut Scratch) -> Answer {
        match self.run(args, scratch) {
            Ok(v) => Answer::Value(v),
            Err(o) => Answer::Trap(o),
        }
    }

    fn run(&self, args: &[Value], scratch: &mut Scratch) -> Result<Value, Outcome> {
        // Values as raw bits: i32 in the low 32, i64 as is, f64 as its bits.
        let locals = &mut scratch.locals;
        locals.clear();
        locals.resize(self.locals.len(), 0);
        for (i, a) in args.iter().take(self.params).enumerate() {
            locals[i] = a.bits();
        }
        let s = &mut scratch.stack;
        s.clear();
        // The typing was checked in `new`: pops cannot fail; `?` on them is defensive.
        let bad = Outcome::HostError;
        for op in &self.ops {
            match op {
                Op::I32Const(v) => s.push(u64::from(*v as u32)),
                Op::I64Const(v) => s.push(*v as u64),
                Op::F64Const(b) => s.push(*b),
                Op::LocalGet(i) => s.push(*locals.get(*i as usize).ok_or(bad)?),
                Op::LocalSet(i) => *locals.get_mut(*i as usize).ok_or(bad)? = s.pop().ok_or(bad)?,
                Op::LocalTee(i) => {
                    *locals.get_mut(*i as usize).ok_or(bad)? = *s.last().ok_or(bad)?
                }
                Op::Select => {
                    let c = s.pop().ok_or(bad)? as u32;
                    let b = s.pop().ok_or(bad)?;
                    let a = s.pop().ok_or(bad)?;
                    s.push(if c != 0 { a } else { b });
                }
                Op::Drop => {
                    s.pop().ok_or(bad)?;
                }
                Op::Nop => {}
                Op::Num(n) => {
                    let arity = n.sig().0.len();
                    let b = if arity == 2 { s.pop().ok_or(bad)? } else { 0 };
                    let a = s.pop().ok_or(bad)?;
                    s.push(num(*n, a, b)?);
                }
                Op::Raw(_) => return Err(bad),
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
        let call = |p: &Plan, a: i64, b: i64| p.call(&[Value::I64(a), Value::I64(b)]);
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
            d.call_with(&args(1, 0), &mut scratch),
            Answer::Trap(Outcome::DivisionByZero)
        );
        assert_eq!(
            d.call_with(&args(9, 3), &mut scratch),
            Answer::Value(Value::I64(3))
        );
        // fewer arguments than params: the missing locals are zero
        assert_eq!(
            d.call_with(&[Value::I64(5)], &mut scratch),
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
    fn bodies_near_the_policy_limits_are_left_to_the_sandbox() {
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
        let mut p = Policy::default_policy();
        p.limits.fuel_per_call = 1000;
        // 2 × ops + 64 must stay under the fuel: 467 ops fit, 468 do not
        assert!(Plan::new(&body(466), &p).is_some());
        assert!(Plan::new(&body(467), &p).is_none());
        let mut p = Policy::default_policy();
        p.limits.stack_bytes = 8192 + 16 * 2;
        // one local and one stack slot: (1 + 1) × 16 + 8192 is not under the cap
        assert!(Plan::new(&body(0), &p).is_none());
        p.limits.stack_bytes += 1;
        assert!(Plan::new(&body(0), &p).is_some());
    }
}
