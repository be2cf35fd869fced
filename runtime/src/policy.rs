//! The policy: every limit the sandbox enforces, read from a TOML file.
//!
//! A policy may leave out any setting, which then takes its value from
//! `policies/default.toml` (embedded here as [`DEFAULT_POLICY_TOML`]). Unknown fields,
//! wrong types and impossible values are refused with a message naming the field.

use crate::abi::ABI_V1_IMPORTS;
use crate::error::{ErrorKind, Result};
use crate::outcome::Outcome;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::path::Path;
use wasmparser::WasmFeatures;

/// The text of `policies/default.toml`.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../policies/default.toml");

/// Size of a Wasm page.
pub const WASM_PAGE: u64 = 65536;

/// A policy: limits, allowed imports, features, weights and patterns.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Modules scoring below this are rejected and quarantined. Default 0.95.
    pub min_safety_score: f64,
    /// Resource limits.
    pub limits: Limits,
    /// Allowed imports, as `module.name`.
    pub imports: Vec<String>,
    /// Allowed Wasm features.
    pub features: Features,
    /// Weight of each static finding kind.
    pub weights: Weights,
    /// Weight added by a run that hits each limit.
    pub trap_weights: TrapWeights,
    /// Which limit hits may quarantine a module.
    pub quarantine: QuarantineRules,
    /// What an evolution asks of a proposer, and how much of its answer it reads.
    pub proposer: ProposerLimits,
    /// Named regex patterns.
    pub patterns: Vec<Pattern>,
}

/// Resource limits (`[limits]`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest module admitted, in bytes. Default 6656.
    pub module_bytes: u64,
    /// Linear memory cap in bytes, a multiple of 65536. Default 1 MiB.
    pub memory_bytes: u64,
    /// Table cap in elements. Default 1024.
    pub table_elements: u64,
    /// Fuel for one call. Default 10,000,000.
    pub fuel_per_call: u64,
    /// Wall-clock deadline of one call, in milliseconds. Default 100.
    pub wall_clock_ms: u64,
    /// Wasm stack cap in bytes. Default 256 KiB.
    pub stack_bytes: u64,
    /// Output cap in bytes. Default 64 KiB.
    pub output_bytes: u64,
    /// Log lines kept per call. Default 100.
    pub log_lines: u64,
    /// Longest log line kept, in bytes. Default 1024.
    pub log_line_bytes: u64,
    /// Fuel charged for every host call. Default 10.
    pub host_call_fuel: u64,
    /// Fuel charged per byte copied by a host function. Default 1.
    pub host_fuel_per_byte: u64,
    /// Messages a member's mailbox holds in a group run. Default 64.
    pub mailbox_messages: u64,
    /// Largest message in a group run, in bytes. Default 4096.
    pub message_bytes: u64,
    /// Rounds a group run may take. Default 1000.
    pub max_rounds: u64,
    /// Largest input a run accepts, in bytes (the bytes form's input, a request body's
    /// input): checked against the file size or stream length before it is read.
    /// Default 1 MiB.
    pub input_bytes: u64,
    /// Budget of a module's text form, in bytes: the text patterns are matched against
    /// at most this much text, and a text form shown to a person is cut here. A module
    /// whose text form is longer gets the `text_cap` finding. Default 256 KiB.
    pub text_bytes: u64,
    /// Tables a module may define (also the pooling allocator's tables per instance).
    /// Default 4.
    pub tables: u64,
    /// Memories a module may define (also the pooling allocator's memories per
    /// instance). Default 1.
    pub memories: u64,
    /// Functions a module may define. Default 200.
    pub functions: u64,
    /// Locals of one function, its parameters included. Default 500.
    pub locals_per_function: u64,
    /// Locals of all functions of a module together, parameters included. Default 2000.
    pub locals: u64,
    /// Deepest nesting of `block`, `loop` and `if` in a function body. Default 32.
    pub nesting_depth: u64,
    /// Targets of one `br_table`. Default 1024.
    pub br_table_targets: u64,
    /// Globals a module may define. Default 200.
    pub globals: u64,
    /// Function types a module may declare. Default 200.
    pub types: u64,
    /// Data segments a module may declare. Default 100.
    pub data_segments: u64,
    /// Element segments a module may declare. Default 100.
    pub element_segments: u64,
    /// Imports a module may declare, each counted (the same import twice counts twice).
    /// Default 16.
    pub imports: u64,
}

impl Limits {
    /// The largest core instance (wasmtime's `Instance` and its `VMContext`) a module
    /// within these limits can need, in bytes: the pooling allocator's
    /// `max_core_instance_size`. wasmtime lays out at most 32 bytes per function, 16 per
    /// global, table and memory definition, 24 per import and 12 per data segment
    /// after about 1 KiB of fixed fields; this gives each counted entity 64 bytes on top
    /// of 64 KiB, so every module that validates fits.
    pub fn core_instance_bytes(&self) -> u64 {
        let entities = self
            .functions
            .saturating_add(self.globals)
            .saturating_add(self.tables)
            .saturating_add(self.memories)
            .saturating_add(self.data_segments)
            .saturating_add(self.element_segments)
            .saturating_add(self.imports);
        entities.saturating_mul(64).saturating_add(64 << 10)
    }
}

/// Allowed Wasm features (`[features]`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Features {
    pub mutable_global: bool,
    pub sign_extension: bool,
    pub saturating_float_to_int: bool,
    pub multi_value: bool,
    pub bulk_memory: bool,
    pub reference_types: bool,
    pub floats: bool,
    pub simd: bool,
    pub relaxed_simd: bool,
    pub threads: bool,
    pub multi_memory: bool,
    pub memory64: bool,
    pub tail_call: bool,
    pub exceptions: bool,
    pub extended_const: bool,
    pub function_references: bool,
    pub gc: bool,
}

impl Features {
    /// The wasmparser feature set these flags allow.
    pub fn wasm_features(&self) -> WasmFeatures {
        // No GC_TYPES: `externref` and GC types need a garbage collector, which this
        // sandbox does not carry; `funcref` tables work with reference_types.
        let mut f = WasmFeatures::empty();
        let flags = [
            (self.mutable_global, WasmFeatures::MUTABLE_GLOBAL),
            (self.sign_extension, WasmFeatures::SIGN_EXTENSION),
            (
                self.saturating_float_to_int,
                WasmFeatures::SATURATING_FLOAT_TO_INT,
            ),
            (self.multi_value, WasmFeatures::MULTI_VALUE),
            (self.bulk_memory, WasmFeatures::BULK_MEMORY),
            (self.reference_types, WasmFeatures::REFERENCE_TYPES),
            (self.floats, WasmFeatures::FLOATS),
            (self.simd, WasmFeatures::SIMD),
            (self.relaxed_simd, WasmFeatures::RELAXED_SIMD),
            (self.threads, WasmFeatures::THREADS),
            (self.multi_memory, WasmFeatures::MULTI_MEMORY),
            (self.memory64, WasmFeatures::MEMORY64),
            (self.tail_call, WasmFeatures::TAIL_CALL),
            (self.exceptions, WasmFeatures::EXCEPTIONS),
            (self.extended_const, WasmFeatures::EXTENDED_CONST),
            (self.function_references, WasmFeatures::FUNCTION_REFERENCES),
            (self.gc, WasmFeatures::GC),
        ];
        for (on, flag) in flags {
            if on {
                f |= flag;
            }
        }
        f
    }
}

/// Weight of each static finding kind (`[weights]`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Weights {
    pub malformed: f64,
    pub size_cap: f64,
    pub feature_denied: f64,
    pub import_denied: f64,
    pub export_missing: f64,
    pub signature_invalid: f64,
    pub memory_cap: f64,
    pub table_cap: f64,
    pub cost_cap: f64,
    pub text_cap: f64,
}

/// Weight added when a run hits a limit (`[trap_weights]`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct TrapWeights {
    pub out_of_fuel: f64,
    pub deadline: f64,
    pub memory_limit: f64,
    pub table_limit: f64,
    pub stack_overflow: f64,
    pub output_limit: f64,
}

impl TrapWeights {
    /// The weight for a run outcome; 0 for outcomes that are not limits.
    pub fn for_outcome(&self, outcome: Outcome) -> f64 {
        match outcome {
            Outcome::OutOfFuel => self.out_of_fuel,
            Outcome::Deadline => self.deadline,
            Outcome::MemoryLimit => self.memory_limit,
            Outcome::TableLimit => self.table_limit,
            Outcome::StackOverflow => self.stack_overflow,
            Outcome::OutputLimit => self.output_limit,
            _ => 0.0,
        }
    }
}

/// Which limit hits may quarantine a module (`[quarantine]`): a hit that may not still
/// ends the run with its outcome word, and its trap weight still lowers the score
/// reported, but the module is not held.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRules {
    /// `out_of_fuel` may quarantine. Default true.
    pub out_of_fuel: bool,
    /// `deadline` may quarantine. Default true.
    pub deadline: bool,
    /// `memory_limit` may quarantine. Default true.
    pub memory_limit: bool,
    /// `table_limit` may quarantine. Default true.
    pub table_limit: bool,
    /// `stack_overflow` may quarantine. Default true.
    pub stack_overflow: bool,
    /// `output_limit` may quarantine. Default true.
    pub output_limit: bool,
    /// An `output_limit` hit of a run whose input was at least `limits.output_bytes`
    /// may quarantine too: an agent that transforms its input cannot keep a large one
    /// under the cap, so by default (false) that hit is the caller's doing, an outcome.
    pub output_limit_from_large_input: bool,
    /// How much of the input of a run that trapped a quarantine record keeps (bytes
    /// form; the whole length is recorded too). Default 1024.
    pub keep_input_bytes: u64,
    /// How much of the logs of such a run the record keeps, in bytes of log text (the
    /// lines past it are counted). Default 4096.
    pub keep_log_bytes: u64,
}

impl QuarantineRules {
    /// Whether a run that ended `outcome` after reading `input_bytes` of input may
    /// quarantine its module, under an output cap of `output_cap` bytes.
    pub fn may_quarantine(&self, outcome: Outcome, input_bytes: u64, output_cap: u64) -> bool {
        match outcome {
            Outcome::OutOfFuel => self.out_of_fuel,
            Outcome::Deadline => self.deadline,
            Outcome::MemoryLimit => self.memory_limit,
            Outcome::TableLimit => self.table_limit,
            Outcome::StackOverflow => self.stack_overflow,
            Outcome::OutputLimit => {
                self.output_limit
                    && (input_bytes < output_cap || self.output_limit_from_large_input)
            }
            _ => false,
        }
    }
}

/// Limits on a proposer (`[proposer]`): an outside program or model that offers an
/// evolution candidate modules, each of them then admitted like any module.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProposerLimits {
    /// How long one request may take, in milliseconds; past it the program is killed
    /// (or the HTTP request given up) and the request counts as failed. Default 30000.
    pub timeout_ms: u64,
    /// The most bytes of an answer read; a longer answer is refused. Default 1 MiB.
    pub output_bytes: u64,
    /// The most candidates taken from one answer (the rest are counted, not read).
    /// Default 16.
    pub candidates: u64,
    /// Training cases shown in a request (never a held-out one). Default 20.
    pub sample_cases: u64,
    /// Elite members shown in a request, with their text forms. Default 4.
    pub elite: u64,
    /// The most bytes of one elite member's text form in a request. Default 8192.
    pub elite_text_bytes: u64,
}

/// Where a pattern looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Import (`module.name`), export and custom-section names.
    Names,
    /// The module's text form.
    Text,
}

/// A named regex pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// Its name; the finding is `pattern:<name>`.
    pub name: String,
    /// Where it looks.
    pub scope: Scope,
    /// The compiled regex.
    pub regex: Regex,
    /// The weight of a match.
    pub weight: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    min_safety_score: Option<f64>,
    limits: Option<toml::Table>,
    imports: Option<RawImports>,
    features: Option<toml::Table>,
    weights: Option<toml::Table>,
    trap_weights: Option<toml::Table>,
    quarantine: Option<toml::Table>,
    proposer: Option<toml::Table>,
    patterns: Option<Vec<RawPattern>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImports {
    allow: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    name: String,
    scope: Scope,
    regex: String,
    weight: f64,
}

fn policy_err(msg: impl Into<String>) -> crate::Error {
    ErrorKind::Policy(msg.into()).into()
}

/// Merges `over` into `base` (one level), then deserializes the section.
fn section<T: for<'de> Deserialize<'de>>(
    name: &str,
    base: Option<toml::Table>,
    over: Option<toml::Table>,
) -> Result<T> {
    let mut merged = base.unwrap_or_default();
    let over = over.unwrap_or_default();
    for (k, v) in over {
        if !merged.contains_key(&k) {
            return Err(policy_err(format!("unknown field `{name}.{k}`")));
        }
        merged.insert(k, v);
    }
    match T::deserialize(merged.clone()) {
        Ok(v) => Ok(v),
        Err(e) => {
            // Name the field: find the key whose value does not fit.
            for (k, v) in &merged {
                let mut probe = toml::Table::new();
                probe.insert(k.clone(), v.clone());
                if let Err(inner) = T::deserialize(probe) {
                    let m = inner.message();
                    if !m.starts_with("missing field") {
                        return Err(policy_err(format!("`{name}.{k}`: {m}")));
                    }
                }
            }
            Err(policy_err(format!("[{name}]: {}", e.message())))
        }
    }
}

impl Policy {
    /// The default policy (`policies/default.toml`).
    pub fn default_policy() -> Policy {
        // The embedded default is checked by a unit test, so this cannot fail.
        match Policy::from_toml_with_base(DEFAULT_POLICY_TOML, None) {
            Ok(p) => p,
            Err(e) => panic!("embedded default policy is invalid: {e}"),
        }
    }

    /// Reads a policy file.
    pub fn from_file(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|error| ErrorKind::PolicyIo {
            path: path.display().to_string(),
            error,
        })?;
        Policy::from_toml(&text)
    }

    /// Parses a policy; settings left out take their default value.
    pub fn from_toml(text: &str) -> Result<Policy> {
        let base: RawPolicy =
            toml::from_str(DEFAULT_POLICY_TOML).map_err(|error| ErrorKind::PolicyToml { error })?;
        Policy::from_toml_with_base(text, Some(base))
    }

    fn from_toml_with_base(text: &str, base: Option<RawPolicy>) -> Result<Policy> {
        let raw: RawPolicy =
            toml::from_str(text).map_err(|error| ErrorKind::PolicyToml { error })?;
        let (base, b_quarantine, b_proposer) = match base {
            Some(mut b) => {
                let q = b.quarantine.take();
                let p = b.proposer.take();
                (Some(b), q, p)
            }
            None => (None, None, None),
        };
        let (b_min, b_limits, b_imports, b_features, b_weights, b_trap, b_patterns) = match base {
            Some(b) => (
                b.min_safety_score,
                b.limits,
                b.imports,
                b.features,
                b.weights,
                b.trap_weights,
                b.patterns,
            ),
            None => (None, None, None, None, None, None, None),
        };
        let min_safety_score = raw
            .min_safety_score
            .or(b_min)
            .ok_or_else(|| policy_err("missing field `min_safety_score`"))?;
        let limits: Limits = section(
            "limits",
            b_limits.clone().or(raw.limits.clone()),
            raw.limits,
        )?;
        let features: Features = section(
            "features",
            b_features.clone().or(raw.features.clone()),
            raw.features,
        )?;
        let weights: Weights = section(
            "weights",
            b_weights.clone().or(raw.weights.clone()),
            raw.weights,
        )?;
        let trap_weights: TrapWeights = section(
            "trap_weights",
            b_trap.clone().or(raw.trap_weights.clone()),
            raw.trap_weights,
        )?;
        let quarantine: QuarantineRules = section(
            "quarantine",
            b_quarantine.clone().or(raw.quarantine.clone()),
            raw.quarantine,
        )?;
        let proposer: ProposerLimits = section(
            "proposer",
            b_proposer.clone().or(raw.proposer.clone()),
            raw.proposer,
        )?;
        let imports = raw
            .imports
            .or(b_imports)
            .map(|i| i.allow)
            .ok_or_else(|| policy_err("missing field `imports.allow`"))?;
        let raw_patterns = raw.patterns.or(b_patterns).unwrap_or_default();
        let mut patterns = Vec::with_capacity(raw_patterns.len());
        for p in raw_patterns {
            let regex = regex::RegexBuilder::new(&p.regex)
                .size_limit(1 << 20)
                .dfa_size_limit(1 << 22)
                .build()
                .map_err(|error| ErrorKind::PolicyRegex {
                    pattern: p.name.clone(),
                    error,
                })?;
            patterns.push(Pattern {
                name: p.name,
                scope: p.scope,
                regex,
                weight: p.weight,
            });
        }
        let policy = Policy {
            min_safety_score,
            limits,
            imports,
            features,
            weights,
            trap_weights,
            quarantine,
            proposer,
            patterns,
        };
        policy.check()?;
        Ok(policy)
    }

    /// The policy as a TOML policy file, every setting written out: reading it back
    /// gives the same policy (an evolution stores it, and resumes under it).
    pub fn to_toml(&self) -> std::result::Result<String, toml::ser::Error> {
        #[derive(Serialize)]
        struct Imports<'a> {
            allow: &'a [String],
        }
        #[derive(Serialize)]
        struct PatternOut<'a> {
            name: &'a str,
            scope: Scope,
            regex: &'a str,
            weight: f64,
        }
        #[derive(Serialize)]
        struct Out<'a> {
            min_safety_score: f64,
            limits: &'a Limits,
            imports: Imports<'a>,
            features: &'a Features,
            weights: &'a Weights,
            trap_weights: &'a TrapWeights,
            quarantine: &'a QuarantineRules,
            proposer: &'a ProposerLimits,
            patterns: Vec<PatternOut<'a>>,
        }
        let out = Out {
            min_safety_score: self.min_safety_score,
            limits: &self.limits,
            imports: Imports {
                allow: &self.imports,
            },
            features: &self.features,
            weights: &self.weights,
            trap_weights: &self.trap_weights,
            quarantine: &self.quarantine,
            proposer: &self.proposer,
            patterns: self
                .patterns
                .iter()
                .map(|p| PatternOut {
                    name: &p.name,
                    scope: p.scope,
                    regex: p.regex.as_str(),
                    weight: p.weight,
                })
                .collect(),
        };
        toml::to_string(&out)
    }

    /// Refuses impossible values, naming the field.
    fn check(&self) -> Result<()> {
        fn range(field: &str, v: u64, lo: u64, hi: u64) -> Result<()> {
            if v < lo || v > hi {
                return Err(policy_err(format!(
                    "`{field}` = {v} is impossible: it must be between {lo} and {hi}"
                )));
            }
            Ok(())
        }
        fn weight(field: &str, w: f64) -> Result<()> {
            if !(w.is_finite() && (0.0..=1.0).contains(&w)) {
                return Err(policy_err(format!(
                    "`{field}` = {w} is impossible: a weight is between 0 and 1"
                )));
            }
            Ok(())
        }
        weight("min_safety_score", self.min_safety_score)?;
        let l = &self.limits;
        range("limits.module_bytes", l.module_bytes, 8, 64 << 20)?;
        range("limits.memory_bytes", l.memory_bytes, 0, 4 << 30)?;
        if !l.memory_bytes.is_multiple_of(WASM_PAGE) {
            return Err(policy_err(format!(
                "`limits.memory_bytes` = {} is impossible: it must be a multiple of the 65536-byte Wasm page",
                l.memory_bytes
            )));
        }
        range("limits.table_elements", l.table_elements, 0, 10_000_000)?;
        range("limits.fuel_per_call", l.fuel_per_call, 1, u64::MAX / 2)?;
        range("limits.wall_clock_ms", l.wall_clock_ms, 1, 24 * 3600 * 1000)?;
        // Agents run on host threads sized from this (`Sandbox::thread_stack_bytes`:
        // the Wasm stack plus a host margin); above 16 MiB the host does not promise it.
        range("limits.stack_bytes", l.stack_bytes, 16 << 10, 16 << 20)?;
        range("limits.output_bytes", l.output_bytes, 0, 256 << 20)?;
        range("limits.input_bytes", l.input_bytes, 0, 1 << 30)?;
        range("limits.text_bytes", l.text_bytes, 4096, 64 << 20)?;
        range("limits.tables", l.tables, 0, 100)?;
        range("limits.memories", l.memories, 0, 100)?;
        range("limits.functions", l.functions, 1, 1_000_000)?;
        // wasmparser refuses more than 50,000 locals in a function whatever the policy.
        range(
            "limits.locals_per_function",
            l.locals_per_function,
            0,
            50_000,
        )?;
        range("limits.locals", l.locals, 0, 50_000_000)?;
        range("limits.nesting_depth", l.nesting_depth, 1, 100_000)?;
        range("limits.br_table_targets", l.br_table_targets, 0, 1_000_000)?;
        range("limits.globals", l.globals, 0, 1_000_000)?;
        range("limits.types", l.types, 1, 1_000_000)?;
        range("limits.data_segments", l.data_segments, 0, 100_000)?;
        range("limits.element_segments", l.element_segments, 0, 100_000)?;
        range("limits.imports", l.imports, 0, 100_000)?;
        if l.memories > 1 && !self.features.multi_memory {
            return Err(policy_err(format!(
                "`limits.memories` = {} needs `features.multi_memory` = true",
                l.memories
            )));
        }
        let p = &self.proposer;
        range("proposer.timeout_ms", p.timeout_ms, 1, 24 * 3600 * 1000)?;
        range("proposer.output_bytes", p.output_bytes, 1, 256 << 20)?;
        range("proposer.candidates", p.candidates, 0, 100_000)?;
        range("proposer.sample_cases", p.sample_cases, 0, 100_000)?;
        range("proposer.elite", p.elite, 0, 10_000)?;
        range("proposer.elite_text_bytes", p.elite_text_bytes, 0, 16 << 20)?;
        range("limits.log_lines", l.log_lines, 0, 1_000_000)?;
        range("limits.log_line_bytes", l.log_line_bytes, 1, 1 << 20)?;
        range("limits.host_call_fuel", l.host_call_fuel, 0, 1 << 32)?;
        range(
            "limits.host_fuel_per_byte",
            l.host_fuel_per_byte,
            0,
            1 << 20,
        )?;
        for (i, imp) in self.imports.iter().enumerate() {
            if !ABI_V1_IMPORTS.contains(&imp.as_str()) {
                return Err(policy_err(format!(
                    "`imports.allow[{i}]` = {imp:?} is impossible: the host provides only {}",
                    ABI_V1_IMPORTS.join(", ")
                )));
            }
        }
        let f = &self.features;
        let unsupported = [
            ("threads", f.threads),
            ("exceptions", f.exceptions),
            ("gc", f.gc),
            ("function_references", f.function_references),
        ];
        for (name, on) in unsupported {
            if on {
                return Err(policy_err(format!(
                    "`features.{name}` = true is impossible: this build of the sandbox cannot run it"
                )));
            }
        }
        if f.relaxed_simd && !f.simd {
            return Err(policy_err(
                "`features.relaxed_simd` = true needs `features.simd` = true",
            ));
        }
        let (w, t) = (&self.weights, &self.trap_weights);
        for (field, v) in [
            ("weights.malformed", w.malformed),
            ("weights.size_cap", w.size_cap),
            ("weights.feature_denied", w.feature_denied),
            ("weights.import_denied", w.import_denied),
            ("weights.export_missing", w.export_missing),
            ("weights.signature_invalid", w.signature_invalid),
            ("weights.memory_cap", w.memory_cap),
            ("weights.table_cap", w.table_cap),
            ("weights.cost_cap", w.cost_cap),
            ("weights.text_cap", w.text_cap),
            ("trap_weights.out_of_fuel", t.out_of_fuel),
            ("trap_weights.deadline", t.deadline),
            ("trap_weights.memory_limit", t.memory_limit),
            ("trap_weights.table_limit", t.table_limit),
            ("trap_weights.stack_overflow", t.stack_overflow),
            ("trap_weights.output_limit", t.output_limit),
        ] {
            weight(field, v)?;
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.patterns {
            let ok = !p.name.is_empty()
                && p.name.len() <= 64
                && p.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(policy_err(format!(
                    "`patterns.name` = {:?} is impossible: use 1 to 64 of a-z, 0-9 and _",
                    p.name
                )));
            }
            if !names.insert(p.name.as_str()) {
                return Err(policy_err(format!(
                    "`patterns.name` = {:?} appears twice",
                    p.name
                )));
            }
            weight(&format!("patterns `{}`.weight", p.name), p.weight)?;
        }
        Ok(())
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::default_policy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Policy::from_toml(text) {
            Ok(_) => panic!("policy accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn default_policy_has_design_defaults() {
        let p = Policy::default_policy();
        assert_eq!(p.limits.module_bytes, 6656);
        assert_eq!(p.limits.memory_bytes, 16 * 65536);
        assert_eq!(p.limits.table_elements, 1024);
        assert_eq!(p.limits.fuel_per_call, 10_000_000);
        assert_eq!(p.limits.wall_clock_ms, 100);
        assert_eq!(p.limits.stack_bytes, 256 * 1024);
        assert_eq!(p.limits.output_bytes, 64 * 1024);
        assert_eq!(p.limits.input_bytes, 1 << 20);
        assert_eq!(p.limits.log_lines, 100);
        assert_eq!(p.limits.log_line_bytes, 1024);
        assert_eq!(p.limits.text_bytes, 256 << 10);
        assert_eq!((p.limits.tables, p.limits.memories), (4, 1));
        assert_eq!(p.limits.functions, 200);
        assert_eq!(p.limits.locals_per_function, 500);
        assert_eq!(p.limits.locals, 2000);
        assert_eq!(p.limits.nesting_depth, 32);
        assert_eq!(p.limits.br_table_targets, 1024);
        assert_eq!(p.limits.globals, 200);
        assert_eq!(p.limits.types, 200);
        assert_eq!(
            (p.limits.data_segments, p.limits.element_segments),
            (100, 100)
        );
        assert_eq!(p.limits.imports, 16);
        assert_eq!(p.min_safety_score, 0.95);
        assert_eq!(p.imports.len(), 6);
        assert!(!p.features.simd && !p.features.threads && p.features.bulk_memory);
        assert!(p.patterns.len() >= 4);
    }

    #[test]
    fn partial_policy_takes_defaults() {
        let p = Policy::from_toml("[limits]\nfuel_per_call = 1000\n").unwrap();
        assert_eq!(p.limits.fuel_per_call, 1000);
        assert_eq!(p.limits.module_bytes, 6656);
        assert_eq!(p.patterns.len(), Policy::default_policy().patterns.len());
    }

    #[test]
    fn unknown_field_is_named() {
        assert!(err("[limits]\nfuel = 5\n").contains("limits.fuel"));
        assert!(err("bogus = 1\n").contains("bogus"));
        assert!(err("[features]\nsimd2 = true\n").contains("features.simd2"));
        assert!(err("[sandbox]\nx = 1\n").contains("sandbox"));
    }

    #[test]
    fn wrong_type_is_named() {
        let e = err("[limits]\nfuel_per_call = \"lots\"\n");
        assert!(e.contains("fuel_per_call"), "{e}");
        let e = err("min_safety_score = \"high\"\n");
        assert!(e.contains("min_safety_score"), "{e}");
        let e = err("[limits]\nmodule_bytes = -1\n");
        assert!(e.contains("module_bytes"), "{e}");
    }

    #[test]
    fn impossible_values_are_named() {
        assert!(err("[limits]\nmemory_bytes = 1000\n").contains("limits.memory_bytes"));
        assert!(err("[limits]\nfuel_per_call = 0\n").contains("limits.fuel_per_call"));
        assert!(err("[limits]\nstack_bytes = 1073741824\n").contains("limits.stack_bytes"));
        assert!(err("[limits]\ninput_bytes = 2147483648\n").contains("limits.input_bytes"));
        assert!(
            err("[limits]\nlocals_per_function = 50001\n").contains("limits.locals_per_function")
        );
        assert!(err("[limits]\ntext_bytes = 10\n").contains("limits.text_bytes"));
        assert!(err("[limits]\nmemories = 2\n").contains("features.multi_memory"));
        assert!(err("min_safety_score = 1.5\n").contains("min_safety_score"));
        assert!(err("[weights]\nmalformed = -0.5\n").contains("weights.malformed"));
        assert!(err("[imports]\nallow = [\"env.abort\"]\n").contains("imports.allow"));
        assert!(err("[features]\nthreads = true\n").contains("features.threads"));
        let e = err("[[patterns]]\nname = \"x\"\nscope = \"text\"\nregex = \"(\"\nweight = 0.1\n");
        assert!(e.contains("patterns `x`"), "{e}");
        let e = err("[[patterns]]\nname = \"x\"\nscope = \"body\"\nregex = \"a\"\nweight = 0.1\n");
        assert!(e.contains("scope") || e.contains("body"), "{e}");
    }

    #[test]
    fn to_toml_reads_back_as_the_same_policy() {
        let custom = Policy::from_toml(
            "min_safety_score = 0.5\n[limits]\nfuel_per_call = 12345\nwall_clock_ms = 7\n\
             [quarantine]\ndeadline = false\n[[patterns]]\nname = \"q\"\nscope = \"text\"\n\
             regex = 'a\\s+\"b'\nweight = 0.25\n",
        )
        .expect("custom");
        let none = Policy::from_toml("patterns = []\n").expect("no patterns");
        for p in [Policy::default_policy(), custom, none] {
            let text = p.to_toml().expect("to_toml");
            let back = Policy::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(format!("{p:?}"), format!("{back:?}"), "{text}");
            assert_eq!(back.to_toml().expect("again"), text);
        }
    }
}
