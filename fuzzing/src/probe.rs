//! A probe that makes a module's memory (or table) size visible after a run: `act` is
//! re-exported as a new function of the same type that calls the old `act`, drops its
//! result and returns `memory.size` (or `table.size`) instead. The sandbox reports only
//! what `act` returns, so this is how a test sees the size a module ended with.

use wasm_encoder::{ExportKind, ExportSection, Function, Instruction};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType};

/// What a probed module's `act` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The size of memory 0, in 64 KiB pages.
    MemoryPages,
    /// The size of table 0, in elements.
    TableElements,
}

fn read_u32_leb(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(5) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(v).ok().map(|v| (v, i + 1));
        }
    }
    None
}

fn push_u32_leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A vector section with one more entry appended.
fn append_entry(content: &[u8], entry: &[u8]) -> Option<Vec<u8>> {
    let (count, len) = read_u32_leb(content)?;
    let mut out = Vec::with_capacity(content.len() + entry.len() + 5);
    push_u32_leb(&mut out, count.checked_add(1)?);
    out.extend_from_slice(&content[len..]);
    out.extend_from_slice(entry);
    Some(out)
}

fn push_section(out: &mut Vec<u8>, id: u8, content: &[u8]) -> Option<()> {
    out.push(id);
    push_u32_leb(out, u32::try_from(content.len()).ok()?);
    out.extend_from_slice(content);
    Some(())
}

/// Adds the probe to a valid module with a function export `act` defined in it and a
/// memory (preferred, when `prefer_memory`) or table of its own. `None` when the module
/// has neither, imports one, or is not of that shape.
pub fn add(wasm: &[u8], prefer_memory: bool) -> Option<(Vec<u8>, Probe)> {
    let mut imported_funcs = 0u32;
    let mut imports_memory_or_table = false;
    let mut func_types: Vec<u32> = Vec::new();
    let mut memories = 0u32;
    let mut tables = 0u32;
    let mut act = None;
    let mut type_results: Vec<(usize, Option<ValType>)> = Vec::new();
    let mut sections: Vec<(u8, std::ops::Range<usize>)> = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.ok()?;
        match &payload {
            Payload::TypeSection(r) => {
                for ty in r.clone().into_iter_err_on_gc_types() {
                    let ft = ty.ok()?;
                    let result = match ft.results() {
                        [] => None,
                        [r] => Some(*r),
                        _ => return None,
                    };
                    type_results.push((ft.params().len(), result));
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.clone().into_imports() {
                    match imp.ok()?.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => imported_funcs += 1,
                        TypeRef::Memory(_) | TypeRef::Table(_) => imports_memory_or_table = true,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for t in r.clone() {
                    func_types.push(t.ok()?);
                }
            }
            Payload::MemorySection(r) => memories += r.count(),
            Payload::TableSection(r) => tables += r.count(),
            Payload::ExportSection(r) => {
                for e in r.clone() {
                    let e = e.ok()?;
                    if e.name == "act" && e.kind == ExternalKind::Func {
                        act = Some(e.index);
                    }
                }
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            sections.push((id, range));
        }
    }
    if imports_memory_or_table {
        return None;
    }
    let probe = match (memories > 0, tables > 0) {
        (true, true) if prefer_memory => Probe::MemoryPages,
        (true, true) => Probe::TableElements,
        (true, false) => Probe::MemoryPages,
        (false, true) => Probe::TableElements,
        (false, false) => return None,
    };
    let act = act?;
    let type_index = *func_types.get(act.checked_sub(imported_funcs)? as usize)?;
    let (params, result) = *type_results.get(type_index as usize)?;
    let result = result?;
    let new_index = imported_funcs.checked_add(u32::try_from(func_types.len()).ok()?)?;

    let mut body = Function::new([]);
    for i in 0..params {
        body.instruction(&Instruction::LocalGet(u32::try_from(i).ok()?));
    }
    body.instruction(&Instruction::Call(act));
    body.instruction(&Instruction::Drop);
    body.instruction(&match probe {
        Probe::MemoryPages => Instruction::MemorySize(0),
        Probe::TableElements => Instruction::TableSize(0),
    });
    match result {
        ValType::I32 => {}
        ValType::I64 => {
            body.instruction(&Instruction::I64ExtendI32U);
        }
        ValType::F64 => {
            body.instruction(&Instruction::F64ConvertI32U);
        }
        _ => return None,
    }
    body.instruction(&Instruction::End);
    let mut body_bytes = Vec::new();
    wasm_encoder::Encode::encode(&body, &mut body_bytes);
    let mut type_entry = Vec::new();
    push_u32_leb(&mut type_entry, type_index);

    let mut out = wasm.get(..8)?.to_vec();
    for (id, range) in sections {
        let content = wasm.get(range)?;
        match id {
            3 => push_section(&mut out, id, &append_entry(content, &type_entry)?)?,
            7 => {
                let reader =
                    wasmparser::ExportSectionReader::new(wasmparser::BinaryReader::new(content, 0))
                        .ok()?;
                let mut exports = ExportSection::new();
                for e in reader {
                    let e = e.ok()?;
                    let (kind, index) = match e.kind {
                        ExternalKind::Func | ExternalKind::FuncExact if e.name == "act" => {
                            (ExportKind::Func, new_index)
                        }
                        ExternalKind::Func | ExternalKind::FuncExact => (ExportKind::Func, e.index),
                        ExternalKind::Table => (ExportKind::Table, e.index),
                        ExternalKind::Memory => (ExportKind::Memory, e.index),
                        ExternalKind::Global => (ExportKind::Global, e.index),
                        ExternalKind::Tag => (ExportKind::Tag, e.index),
                    };
                    exports.export(e.name, kind, index);
                }
                let mut content = Vec::new();
                wasm_encoder::Encode::encode(&exports, &mut content);
                // `Encode` of a section writes its size first: strip it.
                let (_, n) = read_u32_leb(&content)?;
                push_section(&mut out, id, &content[n..])?;
            }
            10 => push_section(&mut out, id, &append_entry(content, &body_bytes)?)?,
            _ => push_section(&mut out, id, content)?,
        }
    }
    Some((out, probe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_returns_the_memory_size() {
        let wasm = wasm_encoder_module();
        let (probed, probe) = add(&wasm, true).expect("probe");
        assert_eq!(probe, Probe::MemoryPages);
        wasmparser::validate(&probed).expect("valid");
        let sandbox = runtime::Sandbox::new(runtime::Policy::default_policy()).expect("sandbox");
        let runtime::Admission::Admitted(agent) = sandbox.admit(&probed, false).expect("admit")
        else {
            panic!("rejected")
        };
        let report = sandbox
            .run(&agent, runtime::Input::Typed(vec![runtime::Value::I64(3)]))
            .expect("run");
        // 1 page initially, grown by 3
        assert_eq!(
            report.result,
            Some(runtime::RunResult::Value(runtime::Value::I64(4)))
        );
    }

    fn wasm_encoder_module() -> Vec<u8> {
        wat::parse_str(
            r#"(module (memory 1 8)
              (func (export "act") (param i64) (result i64)
                local.get 0 i32.wrap_i64 memory.grow i64.extend_i32_s))"#,
        )
        .expect("wat")
    }
}
