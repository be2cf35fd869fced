//! The JSON objects `tdev … --json` prints and the API answers (DESIGN.md's shapes),
//! as serde structs: one definition for the CLI and the API.

use engine::{AgentId, GuardedRun, Record, Status};
use runtime::{Finding, Policy, RunResult, Value, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// `{"kind", "detail", "weight"}`: one finding of the validator.
#[derive(Debug, Serialize)]
pub struct FindingReport {
    /// The finding's kind word.
    pub kind: String,
    /// What was found (escaped).
    pub detail: String,
    /// Its weight in the safety score.
    pub weight: f64,
    /// What an author can do about it, where there is something to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<&'static str>,
}

/// The findings, as reported.
pub fn findings(findings: &[Finding]) -> Vec<FindingReport> {
    findings
        .iter()
        .map(|f| {
            let kind = f.kind.to_string();
            FindingReport {
                remedy: runtime::remedy(&kind, &f.detail),
                kind,
                detail: f.detail.clone(),
                weight: f.weight,
            }
        })
        .collect()
}

/// A module's quarantine record, in short: `validate` reports a held module as held.
#[derive(Debug, Serialize)]
pub struct HeldReport {
    /// `quarantined` (held) or `released`.
    pub status: Status,
    /// Why it was quarantined.
    pub reason: String,
    /// The record's safety score.
    pub safety_score: f64,
}

impl HeldReport {
    /// The short form of a record.
    pub fn new(r: &Record) -> Self {
        HeldReport {
            status: r.status,
            reason: r.reason.clone(),
            safety_score: r.safety_score,
        }
    }
}

/// The `validate --json` object and the answer of `POST /v1/validate`.
#[derive(Debug, Serialize)]
pub struct ValidateReport {
    /// `sha256:<hex>` of the bytes.
    pub agent_id: String,
    /// Module size.
    pub size_bytes: usize,
    /// Whether the policy admits it.
    pub admitted: bool,
    /// Its static safety score.
    pub safety_score: f64,
    /// The policy's minimum score.
    pub min_safety_score: f64,
    /// What the validator found.
    pub findings: Vec<FindingReport>,
    /// Whether the store holds it in quarantine (then it is not admitted, whatever
    /// the validator says).
    pub held: bool,
    /// Its quarantine record, when it has one that is not purged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<HeldReport>,
}

impl ValidateReport {
    /// The report of a verdict under a policy, given the module's quarantine record.
    pub fn new(v: &Verdict, policy: &Policy, record: Option<&Record>) -> Self {
        let record = record.filter(|r| r.status != Status::Purged);
        let held = record.is_some_and(|r| r.status == Status::Quarantined);
        ValidateReport {
            agent_id: v.agent_id.clone(),
            size_bytes: v.size_bytes,
            admitted: v.admitted && !held,
            safety_score: v.safety_score,
            min_safety_score: policy.min_safety_score,
            findings: findings(&v.findings),
            held,
            quarantine: record.map(HeldReport::new),
        }
    }
}

/// A typed result or a bytes-form status: a JSON integer for i64 and status, a JSON
/// number for a finite f64, else the word `nan`, `inf` or `-inf`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ResultReport {
    /// An i64, or a bytes-form status.
    Integer(i64),
    /// A finite f64.
    Number(f64),
    /// A non-finite f64.
    Word(&'static str),
}

impl ResultReport {
    /// The report of a typed value.
    pub fn value(v: Value) -> Self {
        match v {
            Value::I64(i) => ResultReport::Integer(i),
            Value::F64(bits) => {
                let f = f64::from_bits(bits);
                if f.is_nan() {
                    ResultReport::Word("nan")
                } else if f.is_infinite() {
                    ResultReport::Word(if f > 0.0 { "inf" } else { "-inf" })
                } else {
                    ResultReport::Number(f)
                }
            }
        }
    }
}

/// The `run --json` object of a module that ran, and the answer of `POST /v1/run`.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The agent's id.
    pub agent_id: String,
    /// The outcome word.
    pub outcome: String,
    /// The outcome word when it is not `ok`.
    pub trap: Option<String>,
    /// The trap's own message, if any.
    pub trap_message: Option<String>,
    /// The typed result or the bytes-form status.
    pub result: Option<ResultReport>,
    /// The raw 64 bits of a typed result, in decimal.
    pub result_bits: Option<String>,
    /// The output bytes in hex.
    pub output_hex: String,
    /// The output as text, when it is UTF-8 (left out otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_text: Option<String>,
    /// Fuel the run used.
    pub fuel_used: u64,
    /// Wall time in microseconds.
    pub wall_us: u64,
    /// Whether this run put (or kept) the module in quarantine.
    pub quarantined: bool,
    /// The static findings.
    pub findings: Vec<FindingReport>,
    /// The safety score after the run.
    pub safety_score: f64,
    /// The agent's log lines.
    pub logs: Vec<String>,
    /// Log lines dropped past the cap.
    pub logs_dropped: u64,
}

impl RunReport {
    /// The report of a guarded run of `agent`.
    pub fn new(agent: &runtime::Agent, run: &GuardedRun) -> Self {
        let r = &run.report;
        let (result, result_bits) = match r.result {
            Some(RunResult::Status(s)) => (Some(ResultReport::Integer(i64::from(s))), None),
            Some(RunResult::Value(v)) => (Some(ResultReport::value(v)), Some(v.bits().to_string())),
            None => (None, None),
        };
        let trapped = r.outcome != runtime::Outcome::Ok;
        RunReport {
            agent_id: agent.id().to_string(),
            outcome: r.outcome.to_string(),
            trap: trapped.then(|| r.outcome.to_string()),
            trap_message: r.trap_message.clone(),
            result,
            result_bits,
            output_hex: runtime::to_hex(&r.output),
            output_text: String::from_utf8(r.output.clone()).ok(),
            fuel_used: r.fuel_used,
            wall_us: u64::try_from(r.wall.as_micros()).unwrap_or(u64::MAX),
            quarantined: run.quarantined,
            findings: findings(&agent.verdict().findings),
            safety_score: run.safety_score,
            logs: r.logs.clone(),
            logs_dropped: r.logs_dropped,
        }
    }
}

/// Why a module did not run: held in quarantine, or rejected by the validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Held in quarantine from an earlier decision.
    Quarantined,
    /// Rejected by the validator now.
    Static,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Quarantined => "quarantined",
            Refusal::Static => "static",
        })
    }
}

/// The `run --json` object of a module that did not run (`outcome: "rejected"`).
#[derive(Debug, Serialize)]
pub struct RejectedReport {
    /// The agent's id.
    pub agent_id: String,
    /// Always `rejected`.
    pub outcome: &'static str,
    /// Always null.
    pub trap: Option<String>,
    /// Always null.
    pub result: Option<ResultReport>,
    /// Always null.
    pub result_bits: Option<String>,
    /// Always empty.
    pub output_hex: &'static str,
    /// Always 0.
    pub fuel_used: u64,
    /// Always 0.
    pub wall_us: u64,
    /// Whether the module is held in quarantine.
    pub quarantined: bool,
    /// The static findings.
    pub findings: Vec<FindingReport>,
    /// Its safety score: the quarantine record's for a held module (what put it
    /// there), the static one for a module the validator rejects now.
    pub safety_score: f64,
    /// Why it did not run.
    pub rejected_because: Refusal,
    /// Why its record holds it: `static`, or the outcome word of the run that put it
    /// in quarantine.
    pub quarantine_reason: String,
}

impl RejectedReport {
    /// The report of a module refused for `reason`, with its quarantine record.
    pub fn new(verdict: &Verdict, record: &Record, reason: Refusal) -> Self {
        RejectedReport {
            agent_id: verdict.agent_id.clone(),
            outcome: "rejected",
            trap: None,
            result: None,
            result_bits: None,
            output_hex: "",
            fuel_used: 0,
            wall_us: 0,
            quarantined: record.status == Status::Quarantined,
            findings: findings(&verdict.findings),
            safety_score: match reason {
                Refusal::Quarantined => record.safety_score,
                Refusal::Static => verdict.safety_score,
            },
            rejected_because: reason,
            quarantine_reason: record.reason.clone(),
        }
    }
}

/// A member of a group run (`run --peer`): its run report and its mail counts.
#[derive(Debug, Serialize)]
pub struct MemberReport {
    /// The member's run.
    #[serde(flatten)]
    pub run: RunReport,
    /// Its name (the file stem).
    pub name: String,
    /// Calls of its `act`.
    pub calls: u32,
    /// Messages it sent.
    pub messages_sent: u32,
    /// Messages it received.
    pub messages_received: u32,
}

/// The `run --peer … --json` object: the first agent's report, the group's rounds, and
/// the peers' reports.
#[derive(Debug, Serialize)]
pub struct GroupReport {
    /// The first agent.
    #[serde(flatten)]
    pub main: MemberReport,
    /// Rounds run.
    pub rounds: u32,
    /// Whether the group stopped with no mail left.
    pub quiescent: bool,
    /// The other members.
    pub peers: Vec<MemberReport>,
}

/// One entry of `quarantine list --json` and `GET /v1/quarantine`.
#[derive(Debug, Serialize)]
pub struct QuarantineItem {
    /// The agent's id.
    pub agent_id: AgentId,
    /// Its state.
    pub status: Status,
    /// A short name to tell it by (from its origin; the id's first 12 digits without).
    pub name: String,
    /// Where it came from, when the record says.
    pub origin: Option<engine::Origin>,
    /// Why it was quarantined.
    pub reason: String,
    /// The score that put it there.
    pub safety_score: f64,
    /// When.
    pub quarantined_at: String,
    /// Module size.
    pub size_bytes: u64,
    /// The kinds of its findings.
    pub findings: Vec<String>,
    /// Runs that hit a limit.
    pub traps: u64,
}

/// `{"quarantine": [...]}`.
#[derive(Debug, Serialize)]
pub struct QuarantineList {
    /// The records, oldest first.
    pub quarantine: Vec<QuarantineItem>,
}

impl QuarantineList {
    /// The list of records.
    pub fn new(records: &[Record]) -> Self {
        QuarantineList {
            quarantine: records
                .iter()
                .map(|r| QuarantineItem {
                    agent_id: r.agent_id.clone(),
                    status: r.status,
                    name: short_name(r),
                    origin: r.origin.clone(),
                    reason: r.reason.clone(),
                    safety_score: r.safety_score,
                    quarantined_at: r.quarantined_at.clone(),
                    size_bytes: r.size_bytes,
                    findings: r.findings.iter().map(|f| f.kind.clone()).collect(),
                    traps: r.traps_total(),
                })
                .collect(),
        }
    }
}

/// A record's short name: its origin's, else the first 12 digits of its id.
pub fn short_name(r: &Record) -> String {
    match &r.origin {
        Some(o) if !o.name.is_empty() => o.name.clone(),
        _ => r.agent_id.hex().chars().take(12).collect(),
    }
}

/// A quarantine record with its module's text form (`quarantine show --json`), and
/// its lineage (`GET /v1/quarantine/{id}`).
#[derive(Debug, Serialize)]
pub struct RecordReport<'a> {
    /// The record's own fields.
    #[serde(flatten)]
    pub record: &'a Record,
    /// The text form, when the bytes are kept and parse.
    pub wat: Option<String>,
    /// The parents (the API's name for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<&'a [AgentId]>,
}

/// `GET /v1/agents/{id}`.
#[derive(Debug, Serialize)]
pub struct AgentReport {
    /// The agent's id.
    pub agent_id: AgentId,
    /// Size of its stored bytes, if kept.
    pub size_bytes: Option<usize>,
    /// Its quarantine state, if it has a record.
    pub quarantine: Option<Status>,
    /// Its metadata record, if it was bred.
    pub metadata: Option<serde_json::Value>,
}

/// `GET /v1/agents/{id}/wat`.
#[derive(Debug, Serialize)]
pub struct AgentText {
    /// The agent's id.
    pub agent_id: AgentId,
    /// The text form (null when the bytes do not parse).
    pub wat: Option<String>,
}

/// `{"evolutions": [...]}`: `tdev evolutions --json` and `GET /v1/evolutions`.
#[derive(Debug, Serialize)]
pub struct EvolutionList {
    /// One entry per evolution.
    pub evolutions: Vec<engine::evolve::EvolutionEntry>,
}

/// One generation of `GET /v1/evolutions/{id}`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct GenerationRow {
    /// Its number.
    pub generation: u32,
    /// Best mean train error (null when not finite).
    #[serde(default)]
    pub best_error: Option<f64>,
    /// Mean train error (null when not finite).
    #[serde(default)]
    pub mean_error: Option<f64>,
    /// Median train error (null when not finite, or in a log written before it was
    /// kept).
    #[serde(default)]
    pub median_error: Option<f64>,
    /// Culled, by outcome word.
    #[serde(default)]
    pub culled: Option<BTreeMap<engine::words::Cull, u64>>,
    /// Offspring evaluated.
    #[serde(default)]
    pub evaluations: Option<u64>,
}

/// `GET /v1/evolutions/{id}`.
#[derive(Debug, Serialize)]
pub struct EvolutionReport {
    /// The evolution's id.
    pub evolution_id: String,
    /// Its head generation.
    pub head_generation: u32,
    /// The generations up to the head, from their fitness logs.
    pub generations: Vec<GenerationRow>,
}

/// The answer of a rollback: the evolution and its new head.
#[derive(Debug, Serialize)]
pub struct RolledBack {
    /// The evolution's id.
    pub evolution_id: String,
    /// The generation that is the head now.
    pub head_generation: u32,
}

/// `{"stopped": true}`.
#[derive(Debug, Serialize)]
pub struct Stopped {
    /// Whether the stop was requested.
    pub stopped: bool,
}

/// `{"status": "ok"}`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// The best agent of an evolution, in its report.
#[derive(Debug, Serialize)]
pub struct BestReport {
    /// Its id.
    pub agent_id: AgentId,
    /// Mean train error.
    pub train_error: f64,
    /// Mean error on the held-out cases.
    pub test_error: Option<f64>,
    /// Module size.
    pub size_bytes: usize,
}

/// The `evolve --json` object.
#[derive(Debug, Serialize)]
pub struct EvolveReport {
    /// The evolution's id.
    pub evolution_id: String,
    /// Whether the task was solved.
    pub solved: bool,
    /// Generations run.
    pub generations: u32,
    /// Offspring evaluated.
    pub evaluations: u64,
    /// Wall time of the command.
    pub wall_ms: u64,
    /// Whether the best agent is exact on every held-out case (false without any).
    pub generalises: bool,
    /// The best agent.
    pub best: BestReport,
    /// Culled, by outcome word.
    pub culled: BTreeMap<engine::words::Cull, u64>,
    /// Offspring quarantined.
    pub quarantined: u64,
    /// Share of valid offspring.
    pub valid_share: f64,
    /// Whether a stop ended it.
    pub stopped: bool,
    /// Where the plot was written.
    pub plot: String,
}

/// `{"error": {"code", "message"}}`: an API error, and `--json`'s form of a failed
/// command.
#[derive(Debug, Serialize)]
pub struct ErrorReport<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// The code and message of an [`ErrorReport`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// A word: `bad_request`, `not_found`, … (`error` for the CLI).
    pub code: &'a str,
    /// What went wrong.
    pub message: &'a str,
}

impl<'a> ErrorReport<'a> {
    /// The error of `code` saying `message`.
    pub fn new(code: &'a str, message: &'a str) -> Self {
        ErrorReport {
            error: ErrorDetail { code, message },
        }
    }
}
