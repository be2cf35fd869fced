//! Static validation: findings and the safety score, without compiling anything.

use crate::policy::{Policy, Scope, WASM_PAGE};
use crate::text::{agent_id, escape};
use std::fmt;
use wasmparser::{FuncType, Parser, Payload, ValType, Validator, WasmFeatures, types::EntityType};

/// Modules larger than this are not parsed at all: `size_cap` alone rejects them.
const PARSE_CEILING: usize = 1 << 20;

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
    /// A memory's declared minimum is over `limits.memory_bytes`.
    MemoryCap,
    /// A table's declared minimum is over `limits.table_elements`.
    TableCap,
    /// A named pattern of the policy matched.
    Pattern(String),
}

impl FindingKind {
    /// Structural findings reject a module whatever their weight: the sandbox cannot
    /// run such a module as the policy says. Only pattern findings can be overridden
    /// by a person releasing the module from quarantine.
    pub fn is_structural(&self) -> bool {
        !matches!(self, FindingKind::Pattern(_))
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

/// The type an ABI v1 host function must have: (params, results), all i32.
pub fn abi_signature(name: &str) -> Option<(usize, usize)> {
    Some(match name {
        "input_len" => (0, 1),
        "read_input" => (2, 1),
        "write_output" => (2, 1),
        "log" => (2, 0),
        "send" => (4, 1),
        "recv" => (2, 1),
        _ => return None,
    })
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
        c.add(
            FindingKind::SizeCap,
            format!(
                "{size} bytes is over the cap of {} bytes",
                policy.limits.module_bytes
            ),
        );
    }
    if size <= PARSE_CEILING {
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
                let ok = abi_signature(name).is_some_and(|(p, r)| {
                    ft.params().len() == p
                        && ft.results().len() == r
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
                if name != "input_len" {
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
        if name == "act" {
            act = Some(ty);
        }
        if name == "memory" && matches!(ty, EntityType::Memory(_)) {
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
                    "memory {i} declares a minimum of {min} bytes, over the cap of {} bytes",
                    policy.limits.memory_bytes
                ),
            );
        }
    }
    for i in 0..t.table_count() {
        let tt = t.table_at(i);
        if tt.initial > policy.limits.table_elements {
            c.add(
                FindingKind::TableCap,
                format!(
                    "table {i} declares a minimum of {} elements, over the cap of {}",
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
    let mut text: Option<Option<String>> = None;
    for p in &policy.patterns {
        let hit = match p.scope {
            Scope::Names => names
                .iter()
                .find(|n| p.regex.is_match(n))
                .map(|n| format!("name \"{}\"", escape(n))),
            Scope::Text => {
                let text = text.get_or_insert_with(|| wasmprinter::print_bytes(bytes).ok());
                text.as_deref().and_then(|s| {
                    p.regex.find(s).map(|m| {
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
}

/// The module's text form (wasmprinter), escaped for display; `None` when it cannot
/// be printed.
pub fn text_form(bytes: &[u8]) -> Option<String> {
    if bytes.len() > PARSE_CEILING {
        return None;
    }
    wasmprinter::print_bytes(bytes)
        .ok()
        .map(|t| crate::text::escape_multiline(&t))
}
