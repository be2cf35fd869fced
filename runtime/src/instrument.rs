//! Bounds guards compiled in before bulk operations, so that their outcome word is the
//! one the Wasm spec gives.
//!
//! wasmtime charges fuel for the length of `memory.fill`, `memory.copy`,
//! `memory.init`, `table.fill`, `table.copy` and `table.init` before it checks their
//! bounds, so an out-of-bounds operation with a length larger than the fuel left ends
//! `out_of_fuel` where the spec (and any other engine) traps out of bounds. Before
//! compiling, each such instruction is replaced by a call to a small guard function
//! appended to the module: the guard checks the bounds in 64-bit arithmetic and, when
//! they fail, traps with a genuine out-of-bounds access of the same kind (the same
//! operation on index 2^32 - 1 with length 2, which no 32-bit memory or table can
//! hold); otherwise it performs the operation, which wasmtime charges as before. So an
//! in-bounds operation still costs fuel in proportion to its length, and an
//! out-of-bounds one traps before anything is written, as the spec requires.
//!
//! `table.grow` gets a guard too: growth past the table's declared maximum (or the
//! 2^32-element range) answers `-1` before wasmtime is asked, because with the pooling
//! allocator the resource limiter cannot tell the declared maximum from the policy's
//! cap. Growth within the declared maximum is then judged by the limiter
//! (`table_limit` past `limits.table_elements`).
//!
//! A data or element segment that was dropped has length 0 at run time; the guard uses
//! its declared length, so such an operation is left to wasmtime's own check (the fuel
//! it is charged first is then at most the segment's length, bounded by the module
//! size). 64-bit memories and tables (memory64, off in the default policy) are not
//! guarded. The module's own functions keep their indices; the guards come after them.

use crate::error::ErrorKind;
use std::collections::BTreeMap;
use std::convert::Infallible;
use wasm_encoder::reencode::{Error as ReencodeError, Reencode, utils};
use wasm_encoder::{BlockType, Function, Instruction, RefType, ValType};
use wasmparser::{ElementItems, Operator, Parser, Payload, TypeRef};

/// One guard function: the operation and the indices it works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Guard {
    MemoryFill { mem: u32 },
    MemoryCopy { dst: u32, src: u32 },
    MemoryInit { data: u32, mem: u32 },
    TableFill { table: u32 },
    TableCopy { dst: u32, src: u32 },
    TableInit { elem: u32, table: u32 },
    TableGrow { table: u32 },
}

#[derive(Clone, Copy)]
struct TableInfo {
    element: wasmparser::RefType,
    table64: bool,
    /// The declared maximum, or the 2^32 - 1 elements a 32-bit table can hold.
    maximum: u64,
}

/// What the guards need to know about the module.
#[derive(Default)]
struct Shape {
    types: u32,
    funcs: u32,
    memory64: Vec<bool>,
    tables: Vec<TableInfo>,
    data_len: Vec<u64>,
    elem_len: Vec<u64>,
    /// The guards the code needs, each with its function index.
    guards: BTreeMap<Guard, u32>,
    /// The same guards in function index order: the order they are appended in.
    order: Vec<Guard>,
}

impl Shape {
    fn guard_for(&self, op: &Operator<'_>) -> Option<Guard> {
        let mem32 = |m: u32| self.memory64.get(m as usize) == Some(&false);
        let table32 = |t: u32| self.tables.get(t as usize).is_some_and(|t| !t.table64);
        match *op {
            Operator::MemoryFill { mem } if mem32(mem) => Some(Guard::MemoryFill { mem }),
            Operator::MemoryCopy { dst_mem, src_mem } if mem32(dst_mem) && mem32(src_mem) => {
                Some(Guard::MemoryCopy {
                    dst: dst_mem,
                    src: src_mem,
                })
            }
            Operator::MemoryInit { data_index, mem }
                if mem32(mem) && (data_index as usize) < self.data_len.len() =>
            {
                Some(Guard::MemoryInit {
                    data: data_index,
                    mem,
                })
            }
            Operator::TableFill { table } if table32(table) => Some(Guard::TableFill { table }),
            Operator::TableCopy {
                dst_table,
                src_table,
            } if table32(dst_table) && table32(src_table) => Some(Guard::TableCopy {
                dst: dst_table,
                src: src_table,
            }),
            Operator::TableInit { elem_index, table }
                if table32(table) && (elem_index as usize) < self.elem_len.len() =>
            {
                Some(Guard::TableInit {
                    elem: elem_index,
                    table,
                })
            }
            Operator::TableGrow { table } if table32(table) => Some(Guard::TableGrow { table }),
            _ => None,
        }
    }
}

fn scan(bytes: &[u8]) -> wasmparser::Result<Shape> {
    let mut shape = Shape::default();
    let mut needed = Vec::new();
    let table_info = |ty: wasmparser::TableType| TableInfo {
        element: ty.element_type,
        table64: ty.table64,
        maximum: ty.maximum.unwrap_or(u64::from(u32::MAX)),
    };
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::TypeSection(r) => {
                for group in r {
                    shape.types += group?.types().len() as u32;
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    match import?.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => shape.funcs += 1,
                        TypeRef::Memory(m) => shape.memory64.push(m.memory64),
                        TypeRef::Table(t) => shape.tables.push(table_info(t)),
                        TypeRef::Global(_) | TypeRef::Tag(_) => {}
                    }
                }
            }
            Payload::FunctionSection(r) => shape.funcs += r.count(),
            Payload::MemorySection(r) => {
                for m in r {
                    shape.memory64.push(m?.memory64);
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    shape.tables.push(table_info(t?.ty));
                }
            }
            Payload::DataSection(r) => {
                for d in r {
                    shape.data_len.push(d?.data.len() as u64);
                }
            }
            Payload::ElementSection(r) => {
                for e in r {
                    let n = match e?.items {
                        ElementItems::Functions(f) => f.count(),
                        ElementItems::Expressions(_, x) => x.count(),
                    };
                    shape.elem_len.push(u64::from(n));
                }
            }
            _ => {}
        }
    }
    // The data section comes after the code: look at the code once the shape is known.
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::CodeSectionEntry(body) = payload? {
            for op in body.get_operators_reader()? {
                if let Some(g) = shape.guard_for(&op?) {
                    needed.push(g);
                }
            }
        }
    }
    for g in needed {
        if !shape.guards.contains_key(&g) {
            shape
                .guards
                .insert(g, shape.funcs + shape.order.len() as u32);
            shape.order.push(g);
        }
    }
    Ok(shape)
}

/// Rewrites the module with guards before its bulk operations; `None` when it has
/// none to guard (the bytes are then compiled as they are). `bytes` must be valid.
pub(crate) fn guard_bulk_operations(bytes: &[u8]) -> crate::Result<Option<Vec<u8>>> {
    let shape = scan(bytes).map_err(ErrorKind::Instrument)?;
    if shape.guards.is_empty() {
        return Ok(None);
    }
    let mut module = wasm_encoder::Module::new();
    let mut guarder = Guarder { shape };
    guarder
        .parse_core_module(&mut module, Parser::new(0), bytes)
        .map_err(ErrorKind::Guard)?;
    Ok(Some(module.finish()))
}

struct Guarder {
    shape: Shape,
}

impl Guarder {
    fn element_type(&mut self, table: u32) -> Result<RefType, ReencodeError<Infallible>> {
        let t = self.shape.tables[table as usize].element;
        self.ref_type(t)
    }

    /// The guard's signature: (params, results).
    #[allow(clippy::type_complexity)]
    fn signature(
        &mut self,
        g: Guard,
    ) -> Result<(Vec<ValType>, Vec<ValType>), ReencodeError<Infallible>> {
        use ValType::I32;
        Ok(match g {
            Guard::TableFill { table } => (
                vec![I32, ValType::Ref(self.element_type(table)?), I32],
                vec![],
            ),
            Guard::TableGrow { table } => (
                vec![ValType::Ref(self.element_type(table)?), I32],
                vec![I32],
            ),
            _ => (vec![I32, I32, I32], vec![]),
        })
    }

    /// What the guard checks each operand range against: `[start, start + len)` of
    /// the first operand (the destination) and, for copies and inits, of the second
    /// (the source). `len` is the last operand.
    fn bounds(&self, g: Guard) -> [Option<Bound>; 2] {
        match g {
            Guard::MemoryFill { mem } => [Some(Bound::Memory(mem)), None],
            Guard::MemoryCopy { dst, src } => [Some(Bound::Memory(dst)), Some(Bound::Memory(src))],
            Guard::MemoryInit { data, mem } => [
                Some(Bound::Memory(mem)),
                Some(Bound::Segment(self.shape.data_len[data as usize])),
            ],
            Guard::TableFill { table } => [Some(Bound::Table(table)), None],
            Guard::TableCopy { dst, src } => [Some(Bound::Table(dst)), Some(Bound::Table(src))],
            Guard::TableInit { elem, table } => [
                Some(Bound::Table(table)),
                Some(Bound::Segment(self.shape.elem_len[elem as usize])),
            ],
            Guard::TableGrow { .. } => [None, None],
        }
    }

    /// The guard's body. Parameters: the operation's operands, in order.
    fn body(&self, g: Guard) -> Function {
        let mut f = Function::new([]);
        let mut s = f.instructions();
        if let Guard::TableGrow { table } = g {
            let max = self.shape.tables[table as usize].maximum;
            s.table_size(table).i64_extend_i32_u();
            s.local_get(1).i64_extend_i32_u().i64_add();
            s.i64_const(max as i64).i64_gt_u().if_(BlockType::Empty);
            s.i32_const(-1).return_().end();
            s.local_get(0).local_get(1).table_grow(table);
            s.end();
            return f;
        }
        // Out of bounds when `u64(start) + u64(len)` is past a bound, for either range.
        for (operand, bound) in self.bounds(g).into_iter().enumerate() {
            let Some(bound) = bound else { continue };
            s.local_get(operand as u32)
                .i64_extend_i32_u()
                .local_get(2)
                .i64_extend_i32_u()
                .i64_add();
            match bound {
                Bound::Memory(m) => s.memory_size(m).i64_extend_i32_u().i64_const(16).i64_shl(),
                Bound::Table(t) => s.table_size(t).i64_extend_i32_u(),
                Bound::Segment(len) => s.i64_const(len as i64),
            };
            s.i64_gt_u();
            if operand > 0 {
                s.i32_or();
            }
        }
        // Then trap with the same operation at 2^32 - 1 (a fill keeps its value).
        s.if_(BlockType::Empty).i32_const(-1);
        if matches!(g, Guard::MemoryFill { .. } | Guard::TableFill { .. }) {
            s.local_get(1);
        } else {
            s.i32_const(0);
        }
        s.i32_const(2);
        operation(&mut s, g);
        s.end();
        s.local_get(0).local_get(1).local_get(2);
        operation(&mut s, g);
        s.end();
        f
    }
}

/// What a guarded range must stay within.
#[derive(Clone, Copy)]
enum Bound {
    /// The memory's size in bytes.
    Memory(u32),
    /// The table's size in elements.
    Table(u32),
    /// A segment's declared length.
    Segment(u64),
}

/// The guarded bulk operation itself (not `table.grow`, whose guard answers itself).
fn operation(s: &mut wasm_encoder::InstructionSink<'_>, g: Guard) {
    match g {
        Guard::MemoryFill { mem } => s.memory_fill(mem),
        Guard::MemoryCopy { dst, src } => s.memory_copy(dst, src),
        Guard::MemoryInit { data, mem } => s.memory_init(mem, data),
        Guard::TableFill { table } => s.table_fill(table),
        Guard::TableCopy { dst, src } => s.table_copy(dst, src),
        Guard::TableInit { elem, table } => s.table_init(table, elem),
        Guard::TableGrow { table } => s.table_grow(table),
    };
}

impl Reencode for Guarder {
    type Error = Infallible;

    fn instruction<'a>(
        &mut self,
        op: Operator<'a>,
    ) -> Result<Instruction<'a>, ReencodeError<Self::Error>> {
        if let Some(g) = self.shape.guard_for(&op)
            && let Some(&func) = self.shape.guards.get(&g)
        {
            return Ok(Instruction::Call(func));
        }
        utils::instruction(self, op)
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        utils::parse_type_section(self, types, section)?;
        let guards = self.shape.order.clone();
        for g in guards {
            let (params, results) = self.signature(g)?;
            types.ty().function(params, results);
        }
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        utils::parse_function_section(self, functions, section)?;
        for k in 0..self.shape.guards.len() as u32 {
            functions.function(self.shape.types + k);
        }
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        utils::parse_code_section(self, code, section)?;
        let guards = self.shape.order.clone();
        for g in guards {
            code.function(&self.body(g));
        }
        Ok(())
    }
}
