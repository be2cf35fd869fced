//! The records an evolution stores (DESIGN.md § Storage), as serde structs. Their
//! fields and words are the stored shapes: `engine/tests/all/records.rs` reads records
//! written before these types existed.

use crate::id::AgentId;
use crate::rng::Rng;
use crate::task::{Case, Task};
use crate::words::{Cull, RunStatus, SafetyFlag};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The best individual of a run (in checkpoints and in [`crate::evolve::Summary`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Its id.
    pub agent_id: AgentId,
    /// Mean train error.
    #[serde(deserialize_with = "finite_or_null")]
    pub train_error: f64,
    /// Mean error on the held-out cases (null when the task has none).
    pub test_error: Option<f64>,
    /// Size in bytes.
    pub size_bytes: usize,
}

/// What a generation looked like: its fitness log, `fitness_logs/<id>/<gen>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// Its number (0 is the initial population).
    pub generation: u32,
    /// Best mean train error.
    #[serde(deserialize_with = "finite_or_null")]
    pub best_error: f64,
    /// Mean train error of the scored individuals.
    #[serde(deserialize_with = "finite_or_null")]
    pub mean_error: f64,
    /// Median train error of the scored individuals: unlike the mean, not swayed by a
    /// few huge errors (absent in logs written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_error: Option<f64>,
    /// Id of the best individual.
    pub best_id: AgentId,
    /// Size of the best individual.
    pub best_size: usize,
    /// Offspring evaluated (duplicates scored once count once).
    pub evaluations: u64,
    /// Offspring produced / of which valid.
    pub produced: u64,
    /// Valid offspring.
    pub valid: u64,
    /// Culled this generation, by outcome word.
    pub culled: BTreeMap<Cull, u64>,
    /// Mean module size.
    pub mean_size: f64,
    /// Modules due for quarantine this generation that were not written, by outcome
    /// word: past the run's `quarantine_per_outcome` records per word and generation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quarantine_withheld: BTreeMap<Cull, u64>,
    /// Quarantine records written this generation (absent when none, and in logs
    /// written before it existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub quarantined: u64,
    /// What became of proposals this generation (absent without a proposer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposals: Option<crate::evolve::ProposalStats>,
}

/// The record that commits a generation: `checkpoints/<id>/<gen>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The evolution id.
    pub evolution_id: String,
    /// The generation.
    pub generation: u32,
    /// The task's name.
    pub task: String,
    /// The generator's state after this generation was bred.
    pub rng: Rng,
    /// The population: (id, parents) of each member.
    pub population: Vec<(AgentId, Vec<AgentId>)>,
    /// Evaluations so far.
    pub evaluations: u64,
    /// Culled so far, by word.
    pub culled: BTreeMap<Cull, u64>,
    /// Quarantined so far.
    pub quarantined: u64,
    /// Modules due for quarantine but not written (over the per-generation cap), in all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub quarantine_withheld: u64,
    /// Offspring produced so far.
    pub produced: u64,
    /// Of which invalid.
    pub invalid: u64,
    /// The best member (its `test_error` is null here).
    pub best: Best,
    /// What became of proposals so far (absent without a proposer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposals: Option<crate::evolve::ProposalStats>,
    /// The records this checkpoint commits (absent in checkpoints written before it
    /// existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<CommittedRecords>,
    /// `running`, `solved` or `finished`.
    pub status: RunStatus,
    /// (best, mean) train error per generation.
    #[serde(deserialize_with = "history_or_null")]
    pub history: Vec<(f64, f64)>,
    /// When it was written.
    pub written_at: String,
}

/// A member of a stored generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub agent_id: AgentId,
    /// Its mean train error; null when it was culled.
    pub train_error: Option<f64>,
    /// Its size.
    pub size_bytes: usize,
    /// Its parents.
    pub parents: Vec<AgentId>,
    /// The module, in hex.
    pub module_hex: String,
    /// `proposer:<kind>:<name>` for a member a proposer offered (absent for bred ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_by: Option<String>,
}

/// A generation's population: `generations/<id>/<gen>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// The generation.
    pub generation: u32,
    /// Its members.
    pub population: Vec<Member>,
    /// The modules first evaluated in this generation (offspring, proposals, migrants;
    /// a duplicate of a module evaluated before is not evaluated again). A resume reads
    /// them back, so its counts stay those of an uninterrupted run. Absent in records
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluated: Vec<AgentId>,
}

/// A generation's anomaly check: `safety_snapshots/<id>/<gen>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SafetySnapshot {
    /// The generation.
    pub generation: u32,
    /// Share of the evaluated that were culled.
    pub trap_rate: f64,
    /// Mean module size.
    pub mean_size: f64,
    /// Offspring quarantined so far.
    pub quarantined_total: u64,
    /// Its anomaly flags.
    pub flags: Vec<SafetyFlag>,
}

/// The generation to resume from: `checkpoints/<id>/head.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The generation.
    pub generation: u32,
    /// A random id of the write that set it (a run's commit or a rollback): a run moves
    /// the head on only from the one it wrote or read itself, with a conditional write,
    /// so a rollback made meanwhile is never undone. Absent in heads written before it
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

/// The policy an evolution runs under: `checkpoints/<id>/policy.json`, written when it
/// starts; a resume runs under it and refuses another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The policy as a TOML policy file, every setting written out.
    pub toml: String,
}

/// The records a checkpoint commits: the SHA-256 (hex) of each as stored, and each as
/// its text. The checkpoint is created once (a conditional create), so the process that
/// creates it owns these records: only it, or a process finishing its commit from this
/// very text, writes them under their keys. A process that loses the race has written
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedRecords {
    /// Of `generations/<id>/<gen>.json`.
    pub generation: String,
    /// Of `fitness_logs/<id>/<gen>.json`.
    pub fitness_log: String,
    /// Of `safety_snapshots/<id>/<gen>.json`.
    pub safety_snapshot: String,
    /// The three records, in that order, as the text written under their keys.
    pub text: Vec<String>,
}

/// A stop request ended the run at its head: `checkpoints/<id>/stopped.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// The head generation when it stopped.
    pub generation: u32,
    /// When.
    pub at: String,
}

/// What is known of a best module: `metadata/<hex>.json` in the agents bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Its id.
    pub agent_id: AgentId,
    /// Its parents.
    pub parents: Vec<AgentId>,
    /// Whether the policy admits it.
    pub admitted: bool,
    /// Its static safety score.
    pub safety_score: f64,
    /// Its static findings, by word.
    pub findings: Vec<String>,
    /// Its size.
    pub size_bytes: usize,
    /// The evolution that made it.
    pub evolution_id: String,
    /// The generation it was best of.
    pub generation: u32,
    /// Its mean train error.
    #[serde(deserialize_with = "finite_or_null")]
    pub train_error: f64,
    /// When it was written.
    pub created_at: String,
}

/// What running a best module on every training case costs, measured in the sandbox:
/// `performance/<hex>.json` in the agents bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// Training cases run.
    pub cases: usize,
    /// Fuel used over all cases.
    pub fuel_used_total: u64,
    /// Most fuel used by a case.
    pub fuel_used_max: u64,
    /// Wall time over all cases, in microseconds.
    pub wall_us_total: u64,
    /// Longest wall time of a case.
    pub wall_us_max: u64,
    /// Cases by outcome word.
    pub outcomes: BTreeMap<String, u64>,
    /// The train error as the sandbox computes it (the evolution may have screened
    /// the module with the interpreter).
    #[serde(deserialize_with = "finite_or_null")]
    pub train_error: f64,
    /// The policy's `limits.fuel_per_call`.
    pub fuel_per_call: u64,
    /// When it was measured.
    pub measured_at: String,
    /// The module's id.
    pub agent_id: AgentId,
    /// The evolution.
    pub evolution_id: String,
    /// The generation.
    pub generation: u32,
}

/// One line of [`crate::evolve::list`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvolutionEntry {
    /// The evolution id.
    pub evolution_id: String,
    /// The task's name.
    pub task: String,
    /// The generation it resumes from.
    pub head_generation: u32,
    /// The head's best train error.
    #[serde(deserialize_with = "finite_or_null")]
    pub best_error: f64,
    /// Its status (`stopped` when a stop request ended it at its head, `queued` when a
    /// worker has yet to start it, `failed` when its last job failed).
    pub status: RunStatus,
    /// The head's best agent (`null` before the first generation).
    pub best_agent_id: Option<AgentId>,
    /// The islands of an island evolution (left out for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub islands: Option<u32>,
    /// Why its last job failed, when its status is `failed` (left out otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Modules it quarantined, as of its head (not in the `--json` contract).
    #[serde(skip)]
    pub quarantined: u64,
    /// Modules due for quarantine it did not write, over its cap per generation.
    #[serde(skip)]
    pub quarantine_withheld: u64,
    /// What became of its proposals, as of its head (not in the `--json` contract).
    #[serde(skip)]
    pub proposals: Option<crate::evolve::ProposalStats>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A value of a stored task: an i64 or finite f64 as a JSON number, a NaN or infinite
/// f64 as its Rust spelling (`"inf"`, `"-inf"`, `"NaN"`), which the task parser reads.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StoredValue {
    /// An i64.
    I64(i64),
    /// A finite f64.
    F64(f64),
    /// A NaN or infinite f64.
    Text(String),
}

impl From<&runtime::Value> for StoredValue {
    fn from(v: &runtime::Value) -> StoredValue {
        match *v {
            runtime::Value::I64(i) => StoredValue::I64(i),
            runtime::Value::F64(b) => {
                let f = f64::from_bits(b);
                if f.is_finite() {
                    StoredValue::F64(f)
                } else {
                    StoredValue::Text(f.to_string())
                }
            }
        }
    }
}

/// A stored case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredCase {
    /// Its arguments.
    pub args: Vec<StoredValue>,
    /// Its expected result.
    pub expect: StoredValue,
}

impl From<&Case> for StoredCase {
    fn from(c: &Case) -> StoredCase {
        StoredCase {
            args: c.args.iter().map(StoredValue::from).collect(),
            expect: StoredValue::from(&c.expect),
        }
    }
}

/// The task as an evolution stores it (`checkpoints/<id>/task.json`): a JSON task file,
/// read back by [`Task::parse`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskRecord {
    /// Its name.
    pub name: String,
    /// Parameter types.
    pub params: Vec<String>,
    /// Result type.
    pub result: String,
    /// The error metric.
    pub error: crate::task::Metric,
    /// The success threshold.
    pub success_threshold: f64,
    /// Training cases.
    pub cases: Vec<StoredCase>,
    /// Held-out cases.
    pub test_cases: Vec<StoredCase>,
    /// Fuel one case may spend.
    pub fuel_per_case: u64,
}

impl From<&Task> for TaskRecord {
    fn from(t: &Task) -> TaskRecord {
        TaskRecord {
            name: t.name.clone(),
            params: t.params.iter().map(|p| p.to_string()).collect(),
            result: t.result.to_string(),
            error: t.metric,
            success_threshold: t.success_threshold,
            cases: t.cases.iter().map(StoredCase::from).collect(),
            test_cases: t.test_cases.iter().map(StoredCase::from).collect(),
            fuel_per_case: t.fuel_per_case,
        }
    }
}

/// An f64 of a stored record: JSON has no infinity or NaN, so serde_json writes such a
/// value as `null` (a generation where no member has an error below 1e29 has no mean:
/// infinity). `null` reads back as infinity.
fn finite_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

/// A checkpoint's history of (best, mean) errors, `null` read back as infinity.
fn history_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(f64, f64)>, D::Error> {
    Ok(Vec::<(Option<f64>, Option<f64>)>::deserialize(d)?
        .into_iter()
        .map(|(b, m)| (b.unwrap_or(f64::INFINITY), m.unwrap_or(f64::INFINITY)))
        .collect())
}
