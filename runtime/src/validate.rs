//! Static validation: findings and the safety score, without compiling anything.

use crate::abi;
use crate::policy::{Limits, Policy, Scope, WASM_PAGE};
use crate::text::{agent_id, escape};
use std::fmt;
use wasmparser::{
    FuncType, Operator, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures,
    types::EntityType,
};

/// The kind of a static finding. `Display` gives the stable word of DESIGN.md.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// Not a valid Wasm module.
    Malformed,
    /// Larger than `limits.module_bytes`.
    SizeCap,
    /// Uses a Wasm feature the policy denies.
    FeatureDenied,
    /// Imports something the policy does not allow.
    ImportDenied,
    /// No `act` function export (or no `memory` where the host functions need one).
    ExportMissing,
    /// `act` or an allowed import has the wrong type.
    SignatureInvalid,
    /// A memory's declared minimum is over `limits.memory_bytes`, or the module
    /// defines more memories than `limits.memories`.
    MemoryCap,
    /// A table's declared minimum is over `limits.table_elements`, or the module
    /// defines more tables than `limits.tables`.
    TableCap,
    /// The module's shape is over a limit that bounds validation and compile cost
    /// (`limits.functions`, `limits.locals`, `limits.nesting_depth`, ...).
    CostCap,
    /// The text form is longer than `limits.text_bytes`: the text patterns saw only
    /// its beginning.
    TextCap,
    /// A named pattern of the policy matched.
    Pattern(String),
}

impl FindingKind {
    /// Structural findings reject a module whatever their weight: the sandbox cannot
    /// run such a module as the policy says. Only pattern and `text_cap` findings can
    /// be overridden by a person releasing the module from quarantine.
    pub fn is_structural(&self) -> bool {
        !matches!(self, FindingKind::Pattern(_) | FindingKind::TextCap)
    }

    /// Parses a finding word (`malformed`, `pattern:name`, ...).
    pub fn from_word(word: &str) -> Option<FindingKind> {
        Some(match word {
            "malformed" => FindingKind::Malformed,
            "size_cap" => FindingKind::SizeCap,
            "feature_denied" => FindingKind::FeatureDenied,
            "import_denied" => FindingKind::ImportDenied,
            "export_missing" => FindingKind::ExportMissing,
            "signature_invalid" => FindingKind::SignatureInvalid,
            "memory_cap" => FindingKind::MemoryCap,
            "table_cap" => FindingKind::TableCap,
            "cost_cap" => FindingKind::CostCap,
            "text_cap" => FindingKind::TextCap,
            other => FindingKind::Pattern(other.strip_prefix("pattern:")?.to_string()),
        })
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindingKind::Malformed => f.write_str("malformed"),
            FindingKind::SizeCap => f.write_str("size_cap"),
            FindingKind::FeatureDenied => f.write_str("feature_denied"),
            FindingKind::ImportDenied => f.write_str("import_denied"),
            FindingKind::ExportMissing => f.write_str("export_missing"),
            FindingKind::SignatureInvalid => f.write_str("signature_invalid"),
            FindingKind::MemoryCap => f.write_str("memory_cap"),
            FindingKind::TableCap => f.write_str("table_cap"),
            FindingKind::CostCap => f.write_str("cost_cap"),
            FindingKind::TextCap => f.write_str("text_cap"),
            FindingKind::Pattern(name) => write!(f, "pattern:{name}"),
        }
    }
}

/// One finding: its kind, a detail (escaped, safe to print) and its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The kind.
    pub kind: FindingKind,
    /// What was found; text from the module is escaped.
    pub detail: String,
    /// Its weight in the safety score.
    pub weight: f64,
}

/// A value type of the typed form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `i64`
    I64,
    /// `f64`
    F64,
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Param::I64 => "i64",
            Param::F64 => "f64",
        })
    }
}

/// The form of an agent's `act` export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActForm {
    /// `act: [] -> [i32]`, input and output through host functions.
    Bytes,
    /// `act: [p0 … pn] -> [r]` with i64/f64 values.
    Typed {
        /// Parameter types (at most 8).
        params: Vec<Param>,
        /// Result type.
        result: Param,
    },
}

/// The static verdict on a module.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// `sha256:<hex>` of the bytes.
    pub agent_id: String,
    /// Module size in bytes.
    pub size_bytes: usize,
    /// Findings, in the order found.
    pub findings: Vec<Finding>,
    /// 1 − Σ weights, floored at 0.
    pub safety_score: f64,
    /// Whether the module may run: no structural finding and a score at or over the
    /// policy minimum.
    pub admitted: bool,
    /// The form of `act`, when it has a valid one.
    pub form: Option<ActForm>,
}

impl Verdict {
    /// True when a structural finding rules the module out whatever a person decides.
    pub fn has_structural_finding(&self) -> bool {
        self.findings.iter().any(|f| f.kind.is_structural())
    }
}

/// Computes `1 − Σ weights`, floored at 0 and rounded to 1e-9 so that sums such as
/// `1 − 0.04 − 0.01` compare as the decimal numbers they are.
pub fn safety_score(weights: impl IntoIterator<Item = f64>) -> f64 {
    let sum: f64 = weights.into_iter().sum();
    let score = (1.0 - sum).max(0.0);
    (score * 1e9).round() / 1e9
}

fn fmt_func(ft: &FuncType) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("[{}] -> [{}]", list(ft.params()), list(ft.results()))
}

fn act_form(ft: &FuncType) -> Option<ActForm> {
    if ft.params().is_empty() && ft.results() == [ValType::I32] {
        return Some(ActForm::Bytes);
    }
    let conv = |t: &ValType| match t {
        ValType::I64 => Some(Param::I64),
        ValType::F64 => Some(Param::F64),
        _ => None,
    };
    if ft.params().len() > 8 || ft.results().len() != 1 {
        return None;
    }
    let params = ft.params().iter().map(conv).collect::<Option<Vec<_>>>()?;
    let result = conv(&ft.results()[0])?;
    Some(ActForm::Typed { params, result })
}

struct Collector<'p> {
    policy: &'p Policy,
    findings: Vec<Finding>,
}

impl Collector<'_> {
    fn add(&mut self, kind: FindingKind, detail: String) {
        let w = &self.policy.weights;
        let weight = match &kind {
            FindingKind::Malformed => w.malformed,
            FindingKind::SizeCap => w.size_cap,
            FindingKind::FeatureDenied => w.feature_denied,
            FindingKind::ImportDenied => w.import_denied,
            FindingKind::ExportMissing => w.export_missing,
            FindingKind::SignatureInvalid => w.signature_invalid,
            FindingKind::MemoryCap => w.memory_cap,
            FindingKind::TableCap => w.table_cap,
            FindingKind::CostCap => w.cost_cap,
            FindingKind::TextCap => w.text_cap,
            FindingKind::Pattern(name) => self
                .policy
                .patterns
                .iter()
                .find(|p| &p.name == name)
                .map_or(0.0, |p| p.weight),
        };
        self.findings.push(Finding {
            kind,
            detail,
            weight,
        });
    }
}

/// Validates a module against a policy. Never panics, whatever the bytes.
pub fn validate(policy: &Policy, bytes: &[u8]) -> Verdict {
    let mut c = Collector {
        policy,
        findings: Vec::new(),
    };
    let size = bytes.len();
    let mut form = None;
    if size as u64 > policy.limits.module_bytes {
        // Nothing past the size cap is parsed: its cost is the attacker's choice.
        c.add(
            FindingKind::SizeCap,
            format!(
                "{size} bytes is over `limits.module_bytes` = {}",
                policy.limits.module_bytes
            ),
        );
    } else if shape(&mut c, bytes) {
        form = analyse(&mut c, bytes);
    }
    let findings = c.findings;
    let safety_score = safety_score(findings.iter().map(|f| f.weight));
    let admitted =
        !findings.iter().any(|f| f.kind.is_structural()) && safety_score >= policy.min_safety_score;
    Verdict {
        agent_id: agent_id(bytes),
        size_bytes: size,
        findings,
        safety_score,
        admitted,
        form,
    }
}

/// What the cheap pass over the sections counts.
#[derive(Default)]
struct Shape {
    functions: u64,
    locals: u64,
    types: u64,
}

/// The cheap pass before wasmparser's full validation: counts what drives validation
/// and compile cost, section by section, without building anything. Adds a `cost_cap`
/// finding for each limit exceeded and returns false when one was (the module is then
/// not analysed further). A module it cannot parse is left to full validation, which
/// says why it is malformed.
fn shape(c: &mut Collector<'_>, bytes: &[u8]) -> bool {
    let l = &c.policy.limits;
    // The first excess of each limit, in the order found.
    let mut over: Vec<(&'static str, String)> = Vec::new();
    fn check(
        over: &mut Vec<(&'static str, String)>,
        what: impl FnOnce() -> String,
        field: &'static str,
        n: u64,
        cap: u64,
    ) {
        if n > cap && !over.iter().any(|(f, _)| *f == field) {
            over.push((
                field,
                format!("{} is over `limits.{field}` = {cap}", what()),
            ));
        }
    }
    let mut s = Shape::default();
    // Parameter counts by type index, then the type index of each defined function.
    let mut params: Vec<u64> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut imported_funcs: u64 = 0;
    let mut body_index: usize = 0;
    'sections: for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::TypeSection(r) => {
                for group in r {
                    let Ok(group) = group else { break 'sections };
                    for sub in group.into_types() {
                        s.types += 1;
                        if s.types > l.types {
                            break;
                        }
                        let n = match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => f.params().len() as u64,
                            _ => 0,
                        };
                        params.push(n);
                    }
                }
                check(
                    &mut over,
                    || format!("{} types", s.types),
                    "types",
                    s.types,
                    l.types,
                );
            }
            Payload::ImportSection(r) => {
                let mut imports: u64 = 0;
                for imp in r.into_imports() {
                    let Ok(imp) = imp else { break 'sections };
                    imports += 1;
                    if imports > l.imports {
                        break;
                    }
                    if matches!(imp.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                        imported_funcs += 1;
                    }
                }
                check(
                    &mut over,
                    || format!("{imports} or more imports"),
                    "imports",
                    imports,
                    l.imports,
                );
            }
            Payload::FunctionSection(r) => {
                s.functions = u64::from(r.count());
                check(
                    &mut over,
                    || format!("{} functions", s.functions),
                    "functions",
                    s.functions,
                    l.functions,
                );
                if s.functions > l.functions {
                    break;
                }
                for ty in r {
                    let Ok(ty) = ty else { break 'sections };
                    func_types.push(ty);
                }
            }
            // Sections whose count alone is limited.
            Payload::GlobalSection(r) => {
                let n = u64::from(r.count());
                check(
                    &mut over,
                    || format!("{n} globals"),
                    "globals",
                    n,
                    l.globals,
                );
            }
            Payload::DataSection(r) => {
                let n = u64::from(r.count());
                let what = || format!("{n} data segments");
                check(&mut over, what, "data_segments", n, l.data_segments);
            }
            Payload::ElementSection(r) => {
                let n = u64::from(r.count());
                let what = || format!("{n} element segments");
                check(&mut over, what, "element_segments", n, l.element_segments);
            }
            Payload::CodeSectionEntry(body) => {
                let i = body_index;
                body_index += 1;
                let index = imported_funcs + i as u64;
                let mut n = func_types
                    .get(i)
                    .and_then(|t| params.get(*t as usize))
                    .copied()
                    .unwrap_or(0);
                let Ok(locals) = body.get_locals_reader() else {
                    break;
                };
                for group in locals {
                    let Ok((count, _)) = group else {
                        break 'sections;
                    };
                    n = n.saturating_add(u64::from(count));
                }
                s.locals = s.locals.saturating_add(n);
                check(
                    &mut over,
                    || format!("function {index} with {n} locals"),
                    "locals_per_function",
                    n,
                    l.locals_per_function,
                );
                let Ok(ops) = body.get_operators_reader() else {
                    break;
                };
                let (mut depth, mut deepest, mut widest) = (0u64, 0u64, 0u64);
                for op in ops {
                    let Ok(op) = op else { break 'sections };
                    match op {
                        Operator::Block { .. }
                        | Operator::Loop { .. }
                        | Operator::If { .. }
                        | Operator::TryTable { .. }
                        | Operator::Try { .. } => {
                            depth += 1;
                            deepest = deepest.max(depth);
                        }
                        Operator::End => depth = depth.saturating_sub(1),
                        Operator::BrTable { targets } => {
                            widest = widest.max(u64::from(targets.len()));
                        }
                        _ => {}
                    }
                }
                check(
                    &mut over,
                    || format!("function {index} nesting {deepest} deep"),
                    "nesting_depth",
                    deepest,
                    l.nesting_depth,
                );
                check(
                    &mut over,
                    || format!("function {index} with a br_table of {widest} targets"),
                    "br_table_targets",
                    widest,
                    l.br_table_targets,
                );
            }
            _ => {}
        }
    }
    check(
        &mut over,
        || format!("{} locals in all functions", s.locals),
        "locals",
        s.locals,
        l.locals,
    );
    let ok = over.is_empty();
    for (_, detail) in over {
        c.add(FindingKind::CostCap, detail);
    }
    ok
}

fn analyse(c: &mut Collector<'_>, bytes: &[u8]) -> Option<ActForm> {
    let policy = c.policy;
    if !Parser::is_core_wasm(bytes) {
        let what = if Parser::is_component(bytes) {
            "a component, not a core module"
        } else if bytes.len() < 8 {
            "too short for a Wasm header"
        } else if !bytes.starts_with(b"\0asm") {
            "no Wasm magic number"
        } else {
            "unsupported Wasm version"
        };
        c.add(FindingKind::Malformed, what.to_string());
        return None;
    }
    let allowed = policy.features.wasm_features();
    let types = match Validator::new_with_features(allowed).validate_all(bytes) {
        Ok(t) => t,
        Err(denied) => {
            match Validator::new_with_features(WasmFeatures::all()).validate_all(bytes) {
                Ok(t) => {
                    c.add(FindingKind::FeatureDenied, escape(&format!("{denied}")));
                    t
                }
                Err(e) => {
                    c.add(FindingKind::Malformed, escape(&format!("{e}")));
                    return None;
                }
            }
        }
    };
    let t = types.as_ref();
    let mut names: Vec<String> = Vec::new();
    let mut needs_memory = false;

    for (module, name, ty) in t.core_imports().into_iter().flatten() {
        let full = format!("{module}.{name}");
        names.push(full.clone());
        let allowed = policy.imports.contains(&full);
        match ty {
            EntityType::Func(id) | EntityType::FuncExact(id) if allowed => {
                let ft = t[id].unwrap_func();
                let host = if module == abi::MODULE {
                    abi::host_function(name)
                } else {
                    None
                };
                let ok = host.is_some_and(|f| {
                    ft.params().len() == f.params
                        && ft.results().len() == f.results
                        && ft
                            .params()
                            .iter()
                            .chain(ft.results())
                            .all(|v| *v == ValType::I32)
                });
                if !ok {
                    c.add(
                        FindingKind::SignatureInvalid,
                        escape(&format!(
                            "import {full} has type {} which is not the ABI v1 type",
                            fmt_func(ft)
                        )),
                    );
                }
                if host.is_none_or(|f| f.takes_pointers()) {
                    needs_memory = true;
                }
            }
            _ => {
                let what = match ty {
                    EntityType::Func(_) | EntityType::FuncExact(_) => "function",
                    EntityType::Table(_) => "table",
                    EntityType::Memory(_) => "memory",
                    EntityType::Global(_) => "global",
                    EntityType::Tag(_) => "tag",
                };
                c.add(
                    FindingKind::ImportDenied,
                    escape(&format!(
                        "import of {what} {full} is not allowed by the policy"
                    )),
                );
            }
        }
    }

    let mut act = None;
    let mut has_memory_export = false;
    for (name, ty) in t.core_exports().into_iter().flatten() {
        names.push(name.to_string());
        if name == abi::ACT {
            act = Some(ty);
        }
        if name == abi::MEMORY && matches!(ty, EntityType::Memory(_)) {
            has_memory_export = true;
        }
    }
    let mut form = None;
    match act {
        None => c.add(
            FindingKind::ExportMissing,
            "no function export named `act`".to_string(),
        ),
        Some(EntityType::Func(id)) | Some(EntityType::FuncExact(id)) => {
            let ft = t[id].unwrap_func();
            form = act_form(ft);
            if form.is_none() {
                c.add(
                    FindingKind::SignatureInvalid,
                    format!(
                        "act has type {}; ABI v1 wants [] -> [i32] or up to 8 i64/f64 params -> one i64/f64",
                        fmt_func(ft)
                    ),
                );
            }
        }
        Some(_) => c.add(
            FindingKind::SignatureInvalid,
            "the export `act` is not a function".to_string(),
        ),
    }
    if needs_memory && !has_memory_export {
        c.add(
            FindingKind::ExportMissing,
            "the module imports host functions that take pointers but exports no `memory`"
                .to_string(),
        );
    }

    for i in 0..t.memory_count() {
        let m = t.memory_at(i);
        let page = m.page_size_log2.map_or(WASM_PAGE, |l| 1u64 << l.min(63));
        let min = m.initial.saturating_mul(page);
        if min > policy.limits.memory_bytes {
            c.add(
                FindingKind::MemoryCap,
                format!(
                    "memory {i} declares a minimum of {min} bytes, over `limits.memory_bytes` = {}",
                    policy.limits.memory_bytes
                ),
            );
        }
    }
    // Without multi-memory (reference types), a second memory (table) is already
    // `feature_denied`; the count limits are the pooling allocator's per instance.
    let l = &policy.limits;
    let memories = u64::from(t.memory_count());
    if memories > l.memories && (policy.features.multi_memory || memories == 1) {
        c.add(
            FindingKind::MemoryCap,
            format!(
                "{memories} memories is over `limits.memories` = {}",
                l.memories
            ),
        );
    }
    let tables = u64::from(t.table_count());
    if tables > l.tables && (policy.features.reference_types || tables == 1) {
        c.add(
            FindingKind::TableCap,
            format!("{tables} tables is over `limits.tables` = {}", l.tables),
        );
    }
    for i in 0..t.table_count() {
        let tt = t.table_at(i);
        if tt.initial > policy.limits.table_elements {
            c.add(
                FindingKind::TableCap,
                format!(
                    "table {i} declares a minimum of {} elements, over `limits.table_elements` = {}",
                    tt.initial, policy.limits.table_elements
                ),
            );
        }
    }

    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::CustomSection(s)) => names.push(s.name().to_string()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    scan_patterns(c, &names, bytes);
    form
}

fn scan_patterns(c: &mut Collector<'_>, names: &[String], bytes: &[u8]) {
    let policy = c.policy;
    let mut text: Option<Option<Printed>> = None;
    for p in &policy.patterns {
        let hit = match p.scope {
            Scope::Names => names
                .iter()
                .find(|n| p.regex.is_match(n))
                .map(|n| format!("name \"{}\"", escape(n))),
            Scope::Text => {
                let budget = policy.limits.text_bytes;
                let text = text.get_or_insert_with(|| print_bounded(bytes, budget));
                text.as_ref().and_then(|t| {
                    p.regex.find(&t.text).map(|m| {
                        let snippet: String = m.as_str().chars().take(120).collect();
                        format!("text \"{}\"", escape(snippet.trim()))
                    })
                })
            }
        };
        if let Some(detail) = hit {
            c.add(
                FindingKind::Pattern(p.name.clone()),
                format!("matched {detail}"),
            );
        }
    }
    if let Some(Some(t)) = &text
        && t.truncated
    {
        c.add(
            FindingKind::TextCap,
            format!(
                "the text form is longer than `limits.text_bytes` = {}: the text patterns saw only its first {} bytes",
                policy.limits.text_bytes,
                t.text.len()
            ),
        );
    }
}

/// A module's text form, at most a budget long.
struct Printed {
    text: String,
    /// True when the text form went on past the budget.
    truncated: bool,
}

/// A `wasmprinter` sink that keeps at most `cap` bytes and then fails the print, so
/// the printer stops at once instead of producing text nobody reads.
struct Bounded {
    text: String,
    cap: usize,
    truncated: bool,
}

impl wasmprinter::Print for Bounded {
    fn write_str(&mut self, s: &str) -> std::io::Result<()> {
        let room = self.cap - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        self.truncated = true;
        Err(std::io::Error::other("text form over budget"))
    }
}

/// Prints the text form (wasmprinter) with a budget of `budget` bytes. `None` when the
/// module cannot be printed.
fn print_bounded(bytes: &[u8], budget: u64) -> Option<Printed> {
    let cap = usize::try_from(budget).unwrap_or(usize::MAX);
    let mut sink = Bounded {
        text: String::new(),
        cap,
        truncated: false,
    };
    let printed = wasmprinter::Config::new().print(bytes, &mut sink);
    match printed {
        Ok(()) => {}
        Err(_) if sink.truncated => {}
        Err(_) => return None,
    }
    Some(Printed {
        text: sink.text,
        truncated: sink.truncated,
    })
}

/// The module's text form (wasmprinter), escaped for display, at most
/// `limits.text_bytes` long: a longer one is cut and ends with the line
/// `;; text form cut at N bytes (limits.text_bytes)`. `None` when the module is over
/// `limits.module_bytes` or cannot be printed.
pub fn text_form(policy: &Policy, bytes: &[u8]) -> Option<String> {
    let l: &Limits = &policy.limits;
    if bytes.len() as u64 > l.module_bytes {
        return None;
    }
    let printed = print_bounded(bytes, l.text_bytes)?;
    let mut text = crate::text::escape_multiline(&printed.text);
    // Escaping lengthens text with control characters: cut again after it.
    let cap = usize::try_from(l.text_bytes).unwrap_or(usize::MAX);
    let cut = printed.truncated || text.len() > cap;
    if text.len() > cap {
        let mut end = cap;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    if cut {
        text.push_str(&format!(
            "\n;; text form cut at {} bytes (limits.text_bytes)\n",
            l.text_bytes
        ));
    }
    Some(text)
}
