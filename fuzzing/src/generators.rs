//! Random modules inside a policy: wasm-smith configured from the policy's features and
//! caps, its interface fixed to an ABI v1 `act` (`Config::exports`), the ABI host
//! functions offered as imports (`Config::available_imports`).

use arbitrary::{Result, Unstructured};
use runtime::{ActForm, Param, Policy};
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection,
    Instruction, MemorySection, MemoryType, Module, TypeSection, ValType,
};

/// What a generated module must look like.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Whether `act` may have the bytes form (else it is always typed).
    pub bytes_form: bool,
    /// Whether the module may import the ABI v1 host functions.
    pub imports: bool,
    /// Whether every memory and table must declare a maximum within the policy's cap,
    /// so that the policy never forbids a growth the module may legally ask for.
    pub maxima_within_caps: bool,
    /// `Some(n)`: wasm-smith's `ensure_termination` with `n` units of fuel, so the
    /// module stops by itself (with `unreachable`) after at most `n` loop iterations
    /// and calls.
    pub terminate: Option<u32>,
    /// Whether float results are canonicalised after every float operation, so NaN
    /// bits are deterministic and can be compared across engines.
    pub canonicalize_nans: bool,
    /// Most defined functions.
    pub max_funcs: usize,
    /// Most instructions per function body.
    pub max_instructions: usize,
    /// Most tables (the pooling allocator's per-module limit is a validation rule).
    pub max_tables: usize,
}

impl Shape {
    /// Modules for the sandbox: either form, host imports, maxima anywhere up to twice
    /// the caps (so growth past the cap happens), left to the sandbox's own fuel.
    pub fn sandbox() -> Shape {
        Shape {
            bytes_form: true,
            imports: true,
            maxima_within_caps: false,
            terminate: None,
            canonicalize_nans: false,
            max_funcs: 12,
            max_instructions: 120,
            max_tables: 6,
        }
    }

    /// Modules two engines can both run and must agree on: the typed form, no imports,
    /// maxima within the caps, bounded by `ensure_termination`, NaNs canonicalised.
    pub fn differential() -> Shape {
        Shape {
            bytes_form: false,
            imports: false,
            maxima_within_caps: true,
            terminate: Some(2_000),
            canonicalize_nans: true,
            max_funcs: 10,
            max_instructions: 100,
            max_tables: 2,
        }
    }
}

/// A generated module and the form of `act` it was given.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The module.
    pub wasm: Vec<u8>,
    /// The interface it was generated for.
    pub form: ActForm,
    /// Whether it exports a `memory` (the bytes form's host calls need one).
    pub exports_memory: bool,
}

fn val(p: Param) -> ValType {
    match p {
        Param::I64 => ValType::I64,
        Param::F64 => ValType::F64,
    }
}

/// Picks an `act` interface: the bytes form (with an exported memory) or a typed form
/// of up to 8 i64/f64 parameters.
pub fn interface(u: &mut Unstructured<'_>, shape: &Shape) -> Result<(ActForm, Option<(u64, u64)>)> {
    if shape.bytes_form && u.ratio(1, 2)? {
        let min = u.int_in_range(0..=2u64)?;
        let max = u.int_in_range(min..=32u64)?;
        return Ok((ActForm::Bytes, Some((min, max))));
    }
    let n = u.int_in_range(0..=8usize)?;
    let mut params = Vec::with_capacity(n);
    for _ in 0..n {
        params.push(if u.arbitrary()? {
            Param::I64
        } else {
            Param::F64
        });
    }
    let result = if u.arbitrary()? {
        Param::I64
    } else {
        Param::F64
    };
    Ok((ActForm::Typed { params, result }, None))
}

/// The example module wasm-smith copies the exports from.
fn exports_module(form: &ActForm, memory: Option<(u64, u64)>) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    match form {
        ActForm::Bytes => {
            types.ty().function([], [ValType::I32]);
        }
        ActForm::Typed { params, result } => {
            types
                .ty()
                .function(params.iter().map(|p| val(*p)), [val(*result)]);
        }
    }
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    if let Some((min, max)) = memory {
        let mut mems = MemorySection::new();
        mems.memory(MemoryType {
            minimum: min,
            maximum: Some(max),
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        m.section(&mems);
    }
    let mut exports = ExportSection::new();
    exports.export("act", ExportKind::Func, 0);
    if memory.is_some() {
        exports.export("memory", ExportKind::Memory, 0);
    }
    m.section(&exports);
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instruction(&Instruction::Unreachable);
    f.instruction(&Instruction::End);
    code.function(&f);
    m.section(&code);
    m.finish()
}

/// A module importing the ABI v1 host functions with their types: all of them when the
/// module exports a memory, else only `input_len` (the others take pointers, which
/// need an exported memory).
fn imports_module(with_memory: bool) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    let mut imports = ImportSection::new();
    let functions = runtime::abi::HOST_FUNCTIONS
        .iter()
        .filter(|f| with_memory || !f.takes_pointers());
    for (i, f) in functions.enumerate() {
        types
            .ty()
            .function(vec![ValType::I32; f.params], vec![ValType::I32; f.results]);
        imports.import(runtime::abi::MODULE, f.name, EntityType::Function(i as u32));
    }
    m.section(&types);
    m.section(&imports);
    m.finish()
}

/// wasm-smith's configuration for `policy` and `shape`.
pub fn config(
    policy: &Policy,
    shape: &Shape,
    form: &ActForm,
    memory: Option<(u64, u64)>,
) -> wasm_smith::Config {
    let f = &policy.features;
    let l = &policy.limits;
    let page = 65536u64;
    let mut c = wasm_smith::Config {
        exports: Some(exports_module(form, memory)),
        available_imports: shape.imports.then(|| imports_module(memory.is_some())),
        allow_start_export: true,
        allow_floats: f.floats,
        bulk_memory_enabled: f.bulk_memory,
        reference_types_enabled: f.reference_types,
        multi_value_enabled: f.multi_value,
        saturating_float_to_int_enabled: f.saturating_float_to_int,
        sign_extension_ops_enabled: f.sign_extension,
        simd_enabled: f.simd,
        relaxed_simd_enabled: f.relaxed_simd,
        threads_enabled: f.threads,
        memory64_enabled: f.memory64,
        tail_call_enabled: f.tail_call,
        exceptions_enabled: f.exceptions,
        extended_const_enabled: f.extended_const,
        gc_enabled: f.gc,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        shared_everything_threads_enabled: false,
        custom_descriptors_enabled: false,
        canonicalize_nans: shape.canonicalize_nans,
        // The exported memory of the bytes form is one more, outside this count.
        max_memories: usize::from(memory.is_none()) * if f.multi_memory { 4 } else { 1 },
        max_tables: shape.max_tables,
        max_funcs: shape.max_funcs,
        max_instructions: shape.max_instructions,
        max_imports: if shape.imports { 6 } else { 0 },
        max_globals: 10,
        max_types: 20,
        max_data_segments: 4,
        max_element_segments: 4,
        max_elements: 20,
        max_type_size: 100,
        max_tags: 0,
        ..wasm_smith::Config::default()
    };
    if shape.maxima_within_caps {
        c.memory_max_size_required = true;
        c.table_max_size_required = true;
        c.max_memory32_bytes = l.memory_bytes.max(page);
        c.max_table_elements = l.table_elements;
    } else {
        // Up to twice the caps: modules that declare too much (rejected) and modules
        // that grow past the cap (memory_limit, table_limit) both happen.
        c.max_memory32_bytes = (2 * l.memory_bytes).max(page);
        c.max_table_elements = 2 * l.table_elements;
    }
    c
}

/// A random module inside `policy`, shaped by `shape`.
pub fn module(policy: &Policy, shape: &Shape, u: &mut Unstructured<'_>) -> Result<Generated> {
    let (form, memory) = interface(u, shape)?;
    let config = config(policy, shape, &form, memory);
    let mut m = wasm_smith::Module::new(config, u)?;
    if let Some(fuel) = shape.terminate {
        m.ensure_termination(fuel)
            .map_err(|_| arbitrary::Error::IncorrectFormat)?;
    }
    let wasm = m.to_bytes();
    // wasm-smith has no switch for externref alone, and the policy's reference types are
    // funcref only (externref needs a GC runtime): make every externref a funcref.
    let wasm = if policy.features.reference_types {
        extern_to_func(&wasm).ok_or(arbitrary::Error::IncorrectFormat)?
    } else {
        wasm
    };
    Ok(Generated {
        wasm,
        form,
        exports_memory: memory.is_some(),
    })
}

struct ExternToFunc;

impl Reencode for ExternToFunc {
    type Error = std::convert::Infallible;

    fn abstract_heap_type(
        &mut self,
        value: wasmparser::AbstractHeapType,
    ) -> Result<wasm_encoder::AbstractHeapType, reencode::Error<Self::Error>> {
        Ok(match value {
            wasmparser::AbstractHeapType::Extern => wasm_encoder::AbstractHeapType::Func,
            other => reencode::utils::abstract_heap_type(self, other),
        })
    }
}

/// The module with every `externref` turned into a `funcref`; `None` if the result does
/// not validate.
pub fn extern_to_func(wasm: &[u8]) -> Option<Vec<u8>> {
    let mut m = Module::new();
    ExternToFunc
        .parse_core_module(&mut m, wasmparser::Parser::new(0), wasm)
        .ok()?;
    let out = m.finish();
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&out)
        .ok()?;
    Some(out)
}
