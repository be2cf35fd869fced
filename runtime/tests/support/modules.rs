//! Module builders shared by the integration tests (`tests/all`) and the admission
//! bench (`benches/admission.rs`), which include this file by path.

use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, Module,
    TypeSection, ValType,
};

/// `funcs` functions declaring `locals` i64 locals each and doing nothing else, as the
/// binary encoder writes them (a few bytes per function); the first is exported as
/// `act` unless `act` is false.
pub fn locals_only(funcs: u32, locals: u32, act: bool) -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I64]);
    let mut fs = FunctionSection::new();
    let mut code = CodeSection::new();
    for _ in 0..funcs {
        fs.function(0);
        let mut f = Function::new([(locals, ValType::I64)]);
        f.instruction(&Instruction::LocalGet(0));
        f.instruction(&Instruction::End);
        code.function(&f);
    }
    let mut exports = ExportSection::new();
    if act {
        exports.export("act", ExportKind::Func, 0);
    }
    let mut m = Module::new();
    m.section(&types)
        .section(&fs)
        .section(&exports)
        .section(&code);
    m.finish()
}
