//! The genome: the Wasm module itself. The body of its `act` function is decoded into a
//! list of [`Op`]s (numeric, local and structured control operations the engine
//! understands; anything else is kept as raw bytes), changed by the mutators, and
//! written back with wasm-encoder. Every other byte of the module is kept as it was,
//! except the locals of `act`, which the mutators may add to ([`Genome::add_local`]).
//! The stack and control typing of a body is in [`crate::typing`].

use runtime::Param;
use wasm_encoder::{CodeSection, Function, Instruction, ValType as EncTy};
use wasmparser::{Chunk, Operator, Parser, Payload, ValType, Validator, WasmFeatures};

/// The type of a `block`, `loop` or `if`: the values it takes and gives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BlockTy {
    /// `[] -> []`
    Empty,
    /// `[] -> [t]`
    Value(Ty),
    /// A function type of the module's type section, by index: `[params] -> [results]`.
    Func(u32),
}

/// A value type the engine tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    /// i32
    I32,
    /// i64
    I64,
    /// f64
    F64,
}

impl From<Param> for Ty {
    fn from(p: Param) -> Ty {
        match p {
            Param::I64 => Ty::I64,
            Param::F64 => Ty::F64,
        }
    }
}

macro_rules! num_ops {
    ($( $name:ident : [$($pop:ident),*] -> $push:ident ),* $(,)?) => {
        /// A numeric operation with a fixed stack signature.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum NumOp { $($name),* }

        impl NumOp {
            /// Every operation.
            pub const ALL: &'static [NumOp] = &[$(NumOp::$name),*];

            /// (operand types, result type).
            pub fn sig(self) -> (&'static [Ty], Ty) {
                match self { $(NumOp::$name => (&[$(Ty::$pop),*], Ty::$push)),* }
            }

            fn instruction(self) -> Instruction<'static> {
                match self { $(NumOp::$name => Instruction::$name),* }
            }

            fn from_operator(op: &Operator<'_>) -> Option<NumOp> {
                match op { $(Operator::$name => Some(NumOp::$name),)* _ => None }
            }
        }
    };
}

num_ops! {
    I64Add: [I64, I64] -> I64, I64Sub: [I64, I64] -> I64, I64Mul: [I64, I64] -> I64,
    I64DivS: [I64, I64] -> I64, I64RemS: [I64, I64] -> I64, I64And: [I64, I64] -> I64,
    I64Or: [I64, I64] -> I64, I64Xor: [I64, I64] -> I64, I64Shl: [I64, I64] -> I64,
    I64ShrS: [I64, I64] -> I64,
    I64Eqz: [I64] -> I32, I64Eq: [I64, I64] -> I32, I64Ne: [I64, I64] -> I32,
    I64LtS: [I64, I64] -> I32, I64GtS: [I64, I64] -> I32, I64LeS: [I64, I64] -> I32,
    I64GeS: [I64, I64] -> I32,
    F64Add: [F64, F64] -> F64, F64Sub: [F64, F64] -> F64, F64Mul: [F64, F64] -> F64,
    F64Div: [F64, F64] -> F64, F64Min: [F64, F64] -> F64, F64Max: [F64, F64] -> F64,
    F64Abs: [F64] -> F64, F64Neg: [F64] -> F64, F64Sqrt: [F64] -> F64,
    F64Floor: [F64] -> F64, F64Ceil: [F64] -> F64,
    F64Eq: [F64, F64] -> I32, F64Lt: [F64, F64] -> I32, F64Gt: [F64, F64] -> I32,
    F64Le: [F64, F64] -> I32, F64Ge: [F64, F64] -> I32,
    I32Add: [I32, I32] -> I32, I32Sub: [I32, I32] -> I32, I32And: [I32, I32] -> I32,
    I32Or: [I32, I32] -> I32, I32Xor: [I32, I32] -> I32, I32Eqz: [I32] -> I32,
    F64ConvertI64S: [I64] -> F64, I64TruncSatF64S: [F64] -> I64,
    I64ExtendI32U: [I32] -> I64,
}

/// One operation of the `act` body.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `i32.const`
    I32Const(i32),
    /// `i64.const`
    I64Const(i64),
    /// `f64.const`, as bits.
    F64Const(u64),
    /// `local.get`
    LocalGet(u32),
    /// `local.set`
    LocalSet(u32),
    /// `local.tee`
    LocalTee(u32),
    /// A numeric operation.
    Num(NumOp),
    /// `select` (untyped)
    Select,
    /// `drop`
    Drop,
    /// `nop`
    Nop,
    /// `block`: a label at its `end`.
    Block(BlockTy),
    /// `loop`: a label at its start.
    Loop(BlockTy),
    /// `if` (pops an i32): a label at its `end`.
    If(BlockTy),
    /// `else` of the innermost `if`.
    Else,
    /// `end` of the innermost `block`, `loop` or `if` (the body's own final `end` is
    /// not an op).
    End,
    /// `br`, by relative depth.
    Br(u32),
    /// `br_if` (pops an i32), by relative depth.
    BrIf(u32),
    /// `return`
    Return,
    /// Anything else, as its bytes. The stack is not tracked past it.
    Raw(Vec<u8>),
}

impl Op {
    /// The constant `0`-like leaf of a type.
    pub fn konst(ty: Ty, v: f64) -> Op {
        match ty {
            Ty::I32 => Op::I32Const(v as i32),
            Ty::I64 => Op::I64Const(v as i64),
            Ty::F64 => Op::F64Const(v.to_bits()),
        }
    }
}

/// A module with a typed `act` (the form evolution uses), its `act` body decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Genome {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    bodies: Vec<Vec<u8>>,
    act_body: usize,
    act_locals: Vec<(u32, EncTy)>,
    /// Types of act's locals (params first); `None` for types the engine does not track.
    pub local_types: Vec<Option<Ty>>,
    /// The function types of the type section, by index (`None` for a type with
    /// anything the engine does not track): what `BlockTy::Func` blocks take and give.
    pub func_types: Vec<Option<(Vec<Ty>, Vec<Ty>)>>,
    /// Parameter types of `act`.
    pub params: Vec<Ty>,
    /// Result type of `act`.
    pub result: Ty,
    /// The body of `act`, without its final `end`.
    pub ops: Vec<Op>,
    /// No import, table, memory, global, start, element or data: instantiating the
    /// module can do nothing but make `act` callable.
    pure: bool,
}

fn ty_of(v: ValType) -> Option<Ty> {
    match v {
        ValType::I32 => Some(Ty::I32),
        ValType::I64 => Some(Ty::I64),
        ValType::F64 => Some(Ty::F64),
        _ => None,
    }
}

fn enc_ty(v: ValType) -> Option<EncTy> {
    Some(match v {
        ValType::I32 => EncTy::I32,
        ValType::I64 => EncTy::I64,
        ValType::F32 => EncTy::F32,
        ValType::F64 => EncTy::F64,
        ValType::V128 => EncTy::V128,
        ValType::Ref(_) => return None,
    })
}

fn enc_param(t: Ty) -> EncTy {
    match t {
        Ty::I32 => EncTy::I32,
        Ty::I64 => EncTy::I64,
        Ty::F64 => EncTy::F64,
    }
}

impl Genome {
    /// A fresh module `(func (export "act") (param …) (result …) ops…)`.
    pub fn new(params: &[Ty], result: Ty, ops: Vec<Op>) -> Genome {
        let mut module = wasm_encoder::Module::new();
        let mut types = wasm_encoder::TypeSection::new();
        types
            .ty()
            .function(params.iter().map(|t| enc_param(*t)), [enc_param(result)]);
        module.section(&types);
        let mut funcs = wasm_encoder::FunctionSection::new();
        funcs.function(0);
        module.section(&funcs);
        let mut exports = wasm_encoder::ExportSection::new();
        exports.export("act", wasm_encoder::ExportKind::Func, 0);
        module.section(&exports);
        Genome {
            prefix: module.finish(),
            suffix: Vec::new(),
            bodies: vec![Vec::new()],
            act_body: 0,
            act_locals: Vec::new(),
            local_types: params.iter().map(|t| Some(*t)).collect(),
            func_types: vec![Some((params.to_vec(), vec![result]))],
            params: params.to_vec(),
            result,
            ops,
            pure: true,
        }
    }

    /// What a block of type `bt` takes and gives, when the engine can type it.
    pub fn block_sig(&self, bt: &BlockTy) -> Option<(Vec<Ty>, Vec<Ty>)> {
        match bt {
            BlockTy::Empty => Some((Vec::new(), Vec::new())),
            BlockTy::Value(t) => Some((Vec::new(), vec![*t])),
            BlockTy::Func(i) => self.func_types.get(*i as usize)?.clone(),
        }
    }

    /// Declares one more local of `act`, of type `ty`; its index.
    pub fn add_local(&mut self, ty: Ty) -> u32 {
        let enc = enc_param(ty);
        match self.act_locals.last_mut() {
            Some((n, t)) if *t == enc => *n += 1,
            _ => self.act_locals.push((1, enc)),
        }
        self.local_types.push(Some(ty));
        (self.local_types.len() - 1) as u32
    }

    /// The number of locals `act` declares beyond its params.
    pub fn extra_locals(&self) -> usize {
        self.local_types.len() - self.params.len()
    }

    /// Whether instantiating the module can do nothing but make `act` callable (no
    /// import, table, memory, global, start, element or data section).
    pub fn is_pure(&self) -> bool {
        self.pure
    }

    /// Decodes a module whose `act` has the typed form. `None` for anything else
    /// (malformed, bytes form, no code for `act`).
    pub fn decode(bytes: &[u8]) -> Option<Genome> {
        let types = Validator::new_with_features(WasmFeatures::all())
            .validate_all(bytes)
            .ok()?;
        let t = types.as_ref();
        let mut imported = 0u32;
        for (_, _, ty) in t.core_imports()? {
            if matches!(
                ty,
                wasmparser::types::EntityType::Func(_)
                    | wasmparser::types::EntityType::FuncExact(_)
            ) {
                imported += 1;
            }
        }
        let mut act_idx = None;
        for (name, ty) in t.core_exports()? {
            if name == "act"
                && let wasmparser::types::EntityType::Func(id) = ty
            {
                let ft = t[id].unwrap_func();
                let params: Option<Vec<Ty>> = ft
                    .params()
                    .iter()
                    .map(|v| match v {
                        ValType::I64 => Some(Ty::I64),
                        ValType::F64 => Some(Ty::F64),
                        _ => None,
                    })
                    .collect();
                let result = match ft.results() {
                    [ValType::I64] => Ty::I64,
                    [ValType::F64] => Ty::F64,
                    _ => return None,
                };
                act_idx = Some((params?, result));
            }
        }
        let (params, result) = act_idx?;
        let tracked = |v: &[ValType]| -> Option<Vec<Ty>> { v.iter().map(|v| ty_of(*v)).collect() };
        let mut func_types = Vec::new();
        for i in 0..t.core_type_count_in_module() {
            let sub = &t[t.core_type_at_in_module(i)];
            func_types.push(match &sub.composite_type.inner {
                wasmparser::CompositeInnerType::Func(ft) => {
                    tracked(ft.params()).zip(tracked(ft.results()))
                }
                _ => None,
            });
        }
        let act_func = find_act_index(bytes)?;
        let act_body = act_func.checked_sub(imported)? as usize;

        // Walk the sections, keeping exact byte offsets.
        let mut parser = Parser::new(0);
        let mut offset = 0usize;
        let mut prefix_end = None;
        let mut code_end = 0usize;
        let mut bodies = Vec::new();
        let mut act = None;
        let mut pure = true;
        loop {
            let (consumed, payload) = match parser.parse(&bytes[offset..], true).ok()? {
                Chunk::Parsed { consumed, payload } => (consumed, payload),
                Chunk::NeedMoreData(_) => return None,
            };
            let start = offset;
            offset += consumed;
            match payload {
                Payload::CodeSectionStart { range, .. } => {
                    prefix_end = Some(start);
                    code_end = range.end;
                }
                Payload::CodeSectionEntry(body) => {
                    let range = body.range();
                    if bodies.len() == act_body {
                        act = Some(decode_body(&body, &params)?);
                    }
                    bodies.push(bytes[range].to_vec());
                }
                Payload::End(_) => break,
                Payload::ImportSection(_)
                | Payload::TableSection(_)
                | Payload::MemorySection(_)
                | Payload::GlobalSection(_)
                | Payload::StartSection { .. }
                | Payload::ElementSection(_)
                | Payload::DataCountSection { .. }
                | Payload::DataSection(_)
                | Payload::TagSection(_) => pure = false,
                _ => {}
            }
        }
        let prefix_end = prefix_end?;
        let (act_locals, local_types, ops) = act?;
        Some(Genome {
            prefix: bytes[..prefix_end].to_vec(),
            suffix: bytes[code_end..].to_vec(),
            bodies,
            act_body,
            act_locals,
            local_types,
            func_types,
            params,
            result,
            ops,
            pure,
        })
    }

    /// Writes the module.
    pub fn encode(&self) -> Vec<u8> {
        let mut code = CodeSection::new();
        for (i, body) in self.bodies.iter().enumerate() {
            if i == self.act_body {
                let mut f = Function::new(self.act_locals.iter().copied());
                for op in &self.ops {
                    match op {
                        Op::I32Const(v) => f.instruction(&Instruction::I32Const(*v)),
                        Op::I64Const(v) => f.instruction(&Instruction::I64Const(*v)),
                        Op::F64Const(b) => {
                            f.instruction(&Instruction::F64Const(wasm_encoder::Ieee64::new(*b)))
                        }
                        Op::LocalGet(i) => f.instruction(&Instruction::LocalGet(*i)),
                        Op::LocalSet(i) => f.instruction(&Instruction::LocalSet(*i)),
                        Op::LocalTee(i) => f.instruction(&Instruction::LocalTee(*i)),
                        Op::Num(n) => f.instruction(&n.instruction()),
                        Op::Select => f.instruction(&Instruction::Select),
                        Op::Drop => f.instruction(&Instruction::Drop),
                        Op::Nop => f.instruction(&Instruction::Nop),
                        Op::Block(bt) => f.instruction(&Instruction::Block(enc_block(bt))),
                        Op::Loop(bt) => f.instruction(&Instruction::Loop(enc_block(bt))),
                        Op::If(bt) => f.instruction(&Instruction::If(enc_block(bt))),
                        Op::Else => f.instruction(&Instruction::Else),
                        Op::End => f.instruction(&Instruction::End),
                        Op::Br(d) => f.instruction(&Instruction::Br(*d)),
                        Op::BrIf(d) => f.instruction(&Instruction::BrIf(*d)),
                        Op::Return => f.instruction(&Instruction::Return),
                        Op::Raw(b) => f.raw(b.iter().copied()),
                    };
                }
                f.instruction(&Instruction::End);
                code.function(&f);
            } else {
                code.raw(body);
            }
        }
        let mut out = self.prefix.clone();
        out.push(wasm_encoder::SectionId::Code as u8);
        wasm_encoder::Encode::encode(&code, &mut out);
        out.extend_from_slice(&self.suffix);
        out
    }

    /// The stack before each op (`None` where the engine cannot follow it: dead code,
    /// or anything after an op it does not track), and after the last op as the final
    /// element. See [`crate::typing::Typing`] for the labels too.
    pub fn stacks(&self) -> Vec<Option<Vec<Ty>>> {
        crate::typing::Typing::of(self).stacks()
    }
}

fn enc_block(bt: &BlockTy) -> wasm_encoder::BlockType {
    match bt {
        BlockTy::Empty => wasm_encoder::BlockType::Empty,
        BlockTy::Value(t) => wasm_encoder::BlockType::Result(enc_param(*t)),
        BlockTy::Func(i) => wasm_encoder::BlockType::FunctionType(*i),
    }
}

fn dec_block(bt: wasmparser::BlockType) -> Option<BlockTy> {
    Some(match bt {
        wasmparser::BlockType::Empty => BlockTy::Empty,
        wasmparser::BlockType::Type(v) => BlockTy::Value(ty_of(v)?),
        wasmparser::BlockType::FuncType(i) => BlockTy::Func(i),
    })
}

type DecodedBody = (Vec<(u32, EncTy)>, Vec<Option<Ty>>, Vec<Op>);

fn decode_body(body: &wasmparser::FunctionBody<'_>, params: &[Ty]) -> Option<DecodedBody> {
    let mut act_locals = Vec::new();
    let mut local_types: Vec<Option<Ty>> = params.iter().map(|t| Some(*t)).collect();
    for l in body.get_locals_reader().ok()? {
        let (n, ty) = l.ok()?;
        act_locals.push((n, enc_ty(ty)?));
        if local_types.len() + n as usize > 100_000 {
            return None;
        }
        local_types.extend(std::iter::repeat_n(ty_of(ty), n as usize));
    }
    let mut reader = body.get_operators_reader().ok()?;
    let data = reader.get_binary_reader();
    let base = data.original_position();
    let all = {
        let r = body.get_binary_reader();
        let start = r.original_position();
        let mut r2 = r;
        let len = r2.bytes_remaining();
        let bytes = r2.read_bytes(len).ok()?;
        (start, bytes)
    };
    let mut items = Vec::new();
    while !reader.eof() {
        let (op, off) = reader.read_with_offset().ok()?;
        items.push((op, off));
    }
    let end_pos = base + (all.1.len() - (base - all.0));
    let mut ops = Vec::with_capacity(items.len());
    let n = items.len();
    for (i, (op, off)) in items.iter().enumerate() {
        if i + 1 == n {
            // the body's final `end`
            if !matches!(op, Operator::End) {
                return None;
            }
            break;
        }
        let next = items.get(i + 1).map_or(end_pos, |(_, o)| *o);
        let decoded = match op {
            Operator::I32Const { value } => Op::I32Const(*value),
            Operator::I64Const { value } => Op::I64Const(*value),
            Operator::F64Const { value } => Op::F64Const(value.bits()),
            Operator::LocalGet { local_index } => Op::LocalGet(*local_index),
            Operator::LocalSet { local_index } => Op::LocalSet(*local_index),
            Operator::LocalTee { local_index } => Op::LocalTee(*local_index),
            Operator::Select => Op::Select,
            Operator::Drop => Op::Drop,
            Operator::Nop => Op::Nop,
            Operator::Block { blockty } if dec_block(*blockty).is_some() => {
                Op::Block(dec_block(*blockty)?)
            }
            Operator::Loop { blockty } if dec_block(*blockty).is_some() => {
                Op::Loop(dec_block(*blockty)?)
            }
            Operator::If { blockty } if dec_block(*blockty).is_some() => {
                Op::If(dec_block(*blockty)?)
            }
            // A block of a value type the engine does not track stays raw bytes (the
            // typing stops there).
            Operator::Else => Op::Else,
            Operator::End => Op::End,
            Operator::Br { relative_depth } => Op::Br(*relative_depth),
            Operator::BrIf { relative_depth } => Op::BrIf(*relative_depth),
            Operator::Return => Op::Return,
            other => match NumOp::from_operator(other) {
                Some(n) => Op::Num(n),
                None => Op::Raw(all.1[off - all.0..next - all.0].to_vec()),
            },
        };
        ops.push(decoded);
    }
    Some((act_locals, local_types, ops))
}

/// The function index of the export `act`.
fn find_act_index(bytes: &[u8]) -> Option<u32> {
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::ExportSection(r) = payload.ok()? {
            for e in r {
                let e = e.ok()?;
                if e.name == "act" && e.kind == wasmparser::ExternalKind::Func {
                    return Some(e.index);
                }
            }
        }
    }
    None
}

/// A counting loop for tests: while local 0 is not zero, add `step` to local 1 and
/// count local 0 down; then local 1.
#[cfg(test)]
pub(crate) fn counting_loop(step: Op) -> Genome {
    use Op::*;
    let ops = vec![
        Block(BlockTy::Empty),
        Loop(BlockTy::Empty),
        LocalGet(0),
        Num(NumOp::I64Eqz),
        BrIf(1),
        LocalGet(1),
        step,
        Num(NumOp::I64Add),
        LocalSet(1),
        LocalGet(0),
        I64Const(1),
        Num(NumOp::I64Sub),
        LocalSet(0),
        Br(0),
        End,
        End,
        LocalGet(1),
    ];
    let mut g = Genome::new(&[Ty::I64], Ty::I64, ops);
    g.add_local(Ty::I64);
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_the_module() {
        // another function before `act`, a block, a memory and data around the code
        let wat = r#"(module
            (memory 1)
            (func $helper (param i64) (result i64) (i64.rotl (local.get 0) (i64.const 3)))
            (func (export "act") (param i64 f64) (result i64)
              (local i32)
              (block (result i64)
                (i64.add (call $helper (local.get 0)) (i64.trunc_sat_f64_s (local.get 1)))))
            (data (i32.const 0) "hi"))"#;
        let bytes = wat::parse_str(wat).unwrap();
        let g = Genome::decode(&bytes).unwrap();
        assert_eq!(g.params, [Ty::I64, Ty::F64]);
        assert_eq!(g.result, Ty::I64);
        assert_eq!(g.local_types.len(), 3);
        let again = g.encode();
        wasmparser::validate(&again).unwrap();
        assert_eq!(Genome::decode(&again).unwrap().ops, g.ops);
        // a fresh genome validates too
        let g = Genome::new(
            &[Ty::F64],
            Ty::F64,
            vec![
                Op::LocalGet(0),
                Op::F64Const(2f64.to_bits()),
                Op::Num(NumOp::F64Mul),
            ],
        );
        let b = g.encode();
        wasmparser::validate(&b).unwrap();
        assert_eq!(Genome::decode(&b).unwrap().ops, g.ops);
        assert_eq!(g.stacks().last().unwrap().as_deref(), Some(&[Ty::F64][..]));
    }
}
