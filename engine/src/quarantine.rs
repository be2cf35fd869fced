//! Quarantine: modules held until a person reviews them, with an audit trail.
//!
//! Layout in the agents bucket: `quarantine/<hex>.json` (the record) and `source/<hex>`
//! (the module bytes, checked against their id when read back). A purge deletes the
//! bytes and keeps the record, marked `purged`, for the audit trail.
//!
//! Every change of a record is a read–modify–conditional-write ([`BlobStore::put_if`]):
//! when another writer changed the record in between, the change is made again on the
//! new record, up to the store's `update_attempts`. So no trap is lost from the counts
//! and no release or purge loses its audit entry. Each change carries a random id kept
//! in the record's `updates` (the latest `update_ids` of them), so a write that was
//! made but answered as lost (a client retry meeting its own change) is not made
//! twice. The history of traps is capped at
//! the store's `trap_history`; `trap_counts` counts every trap ever recorded.

use crate::error::{ErrorKind, Result, from_json, to_json};
use crate::id::AgentId;
use crate::store::{BlobStore, Bucket, Version};
use crate::time::now_rfc3339;
use crate::words::AuditAction;
use runtime::{Finding, Policy, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The state of a quarantine record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Blocked until a person releases it.
    Quarantined,
    /// A person approved it; it may run again.
    Released,
    /// Its bytes were deleted; the record stays for the audit trail.
    Purged,
}

/// A finding as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// The finding word.
    pub kind: String,
    /// The detail, escaped.
    pub detail: String,
    /// Its weight.
    pub weight: f64,
    /// What an author can do about it, where there is something to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

impl From<&Finding> for StoredFinding {
    fn from(f: &Finding) -> Self {
        let kind = f.kind.to_string();
        StoredFinding {
            remedy: runtime::remedy(&kind, &f.detail).map(str::to_string),
            kind,
            detail: f.detail.clone(),
            weight: f.weight,
        }
    }
}

/// Longest text an [`Origin`] keeps of what it was given (a file path, a caller's name).
const ORIGIN_TEXT_BYTES: usize = 256;

/// Where a module came from: a file given to `tdev`, a caller of the API, or an
/// evolution (its generation; the record's `parents` are its lineage).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `file`, `api` or `evolution`.
    pub source: String,
    /// A short name to tell it by: the file's stem, the name the API caller gave (else
    /// the caller), or the evolution and generation. Escaped.
    pub name: String,
    /// The file as given on the command line. Escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The API caller (its token's name, or `anonymous` without tokens). Escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The evolution that bred it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evolution_id: Option<String>,
    /// The generation it was bred in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
}

/// Text from outside, escaped and cut to [`ORIGIN_TEXT_BYTES`] (at a character).
fn origin_text(s: &str) -> String {
    let mut e = runtime::escape(s);
    if e.len() > ORIGIN_TEXT_BYTES {
        let mut cut = ORIGIN_TEXT_BYTES;
        while !e.is_char_boundary(cut) {
            cut -= 1;
        }
        e.truncate(cut);
        e.push('…');
    }
    e
}

impl Origin {
    /// A module read from `path` by `tdev`.
    pub fn file(path: &std::path::Path) -> Origin {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Origin {
            source: "file".into(),
            name: origin_text(&stem),
            file: Some(origin_text(&path.to_string_lossy())),
            ..Origin::default()
        }
    }

    /// A module sent by an API caller, under the name it gave, if any.
    pub fn api(caller: &str, name: Option<&str>) -> Origin {
        Origin {
            source: "api".into(),
            name: origin_text(name.filter(|n| !n.is_empty()).unwrap_or(caller)),
            caller: Some(origin_text(caller)),
            ..Origin::default()
        }
    }

    /// A module a proposer (`proposer:<kind>:<name>`) offered evolution `id` for
    /// `generation`.
    pub fn proposer(word: &str, id: &str, generation: u32) -> Origin {
        Origin {
            source: "proposer".into(),
            name: origin_text(word),
            evolution_id: Some(origin_text(id)),
            generation: Some(generation),
            ..Origin::default()
        }
    }

    /// A module bred by evolution `id` in `generation`.
    pub fn evolution(id: &str, generation: u32) -> Origin {
        Origin {
            source: "evolution".into(),
            name: origin_text(&format!("{id} g{generation}")),
            evolution_id: Some(origin_text(id)),
            generation: Some(generation),
            ..Origin::default()
        }
    }
}

/// The input of a run, as a record keeps it: the start of a bytes-form input (and its
/// whole length), or a typed run's arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInput {
    /// Bytes form: the first bytes of the input, in hex (at most the policy's
    /// `[quarantine] keep_input_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// Bytes form: the length of the whole input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// Typed form: the arguments, as `--args` takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
}

/// A typed value as `--args` writes it (an f64 by Rust's shortest round-trip form).
pub fn value_text(v: runtime::Value) -> String {
    match v {
        runtime::Value::I64(i) => i.to_string(),
        runtime::Value::F64(bits) => format!("{:?}", f64::from_bits(bits)),
    }
}

impl RunInput {
    /// What a record keeps of `input`: at most `keep` bytes of a bytes-form one.
    pub fn of(input: &runtime::Input, keep: u64) -> RunInput {
        match input {
            runtime::Input::Bytes(b) => {
                let keep = usize::try_from(keep).unwrap_or(usize::MAX).min(b.len());
                RunInput {
                    hex: Some(runtime::to_hex(&b[..keep])),
                    len: Some(b.len() as u64),
                    args: None,
                }
            }
            runtime::Input::Typed(args) => RunInput {
                args: Some(args.iter().map(|v| value_text(*v)).collect()),
                ..RunInput::default()
            },
        }
    }
}

/// A run that hit a limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrapEvent {
    /// When.
    pub at: String,
    /// The outcome word.
    pub outcome: String,
    /// What the trap said.
    pub message: String,
    /// Fuel used by the run.
    pub fuel_used: u64,
    /// Wall time of the run in microseconds.
    pub wall_us: u64,
    /// The run's input (or arguments), as much as the policy keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<RunInput>,
    /// Its log lines (escaped), up to the policy's `[quarantine] keep_log_bytes`.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Log lines the run dropped, and the lines past `keep_log_bytes`.
    #[serde(default)]
    pub logs_dropped: u64,
    /// Who ran it: the file, the API caller, the evolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// What to do about the limit it hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

impl TrapEvent {
    /// The event of a run that ended `outcome`, now: the rest is added with the
    /// `with_*` methods.
    pub fn new(outcome: runtime::Outcome, message: String, fuel_used: u64, wall_us: u64) -> Self {
        let word = outcome.to_string();
        TrapEvent {
            at: now_rfc3339(),
            remedy: runtime::remedy(&word, &message).map(str::to_string),
            outcome: word,
            message,
            fuel_used,
            wall_us,
            input: None,
            logs: Vec::new(),
            logs_dropped: 0,
            origin: None,
        }
    }

    /// With the run's input (already cut to what the record keeps).
    pub fn with_input(mut self, input: RunInput) -> Self {
        self.input = Some(input);
        self
    }

    /// With the run's log lines, as many whole lines as fit in `keep_bytes`; the rest
    /// are counted with the `dropped` the run reported.
    pub fn with_logs(mut self, logs: &[String], dropped: u64, keep_bytes: u64) -> Self {
        let mut used = 0u64;
        let mut kept = 0usize;
        for l in logs {
            used = used.saturating_add(l.len() as u64);
            if used > keep_bytes {
                break;
            }
            kept += 1;
        }
        self.logs = logs[..kept].to_vec();
        self.logs_dropped = dropped.saturating_add((logs.len() - kept) as u64);
        self
    }

    /// With where the run came from.
    pub fn with_origin(mut self, origin: &Origin) -> Self {
        self.origin = Some(origin.clone());
        self
    }
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: String,
    /// What happened.
    pub action: AuditAction,
    /// Why, or who, in one line.
    pub detail: String,
    /// Who decided (a release or purge: `--by`, or the API's `by`). Escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why they decided (`--reason`, or the API's `reason`). Escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Through what: `cli` or `api (token NAME)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl AuditEvent {
    fn now(action: AuditAction, detail: String) -> AuditEvent {
        AuditEvent {
            at: now_rfc3339(),
            action,
            detail,
            by: None,
            reason: None,
            via: None,
        }
    }
}

/// The longest `by` or `reason` of a [`Decision`] (the record keeps one line of each).
pub const DECISION_TEXT_BYTES: usize = 256;

/// Whether `text` may be a decision's `by` or `reason`: one line of at most
/// [`DECISION_TEXT_BYTES`].
pub fn decision_text_fits(text: &str) -> bool {
    text.len() <= DECISION_TEXT_BYTES && !text.contains(['\n', '\r'])
}

/// A person's release or purge: who, why, and through what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Who decided.
    pub by: String,
    /// Why (may be empty).
    pub reason: String,
    /// Through what: `cli`, `api (token NAME)`.
    pub via: String,
}

impl Decision {
    fn event(&self, action: AuditAction) -> AuditEvent {
        let by = origin_text(&self.by);
        let reason = origin_text(&self.reason);
        let via = origin_text(&self.via);
        let mut detail = format!("by {by} via {via}");
        if !reason.is_empty() {
            detail.push_str(": ");
            detail.push_str(&reason);
        }
        AuditEvent {
            by: Some(by),
            reason: (!reason.is_empty()).then_some(reason),
            via: Some(via),
            ..AuditEvent::now(action, detail)
        }
    }
}

/// A quarantine record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its id.
    pub agent_id: AgentId,
    /// Its state.
    pub status: Status,
    /// When it was first quarantined.
    pub quarantined_at: String,
    /// Why: `static` (score below the minimum before running) or the outcome word of
    /// the run that pushed it below.
    pub reason: String,
    /// The safety score that put it here.
    pub safety_score: f64,
    /// The policy minimum at the time.
    pub min_safety_score: f64,
    /// Module size.
    pub size_bytes: u64,
    /// Static findings.
    pub findings: Vec<StoredFinding>,
    /// The latest runs that hit a limit, oldest first: at most the store's
    /// `trap_history` of them.
    pub trap_history: Vec<TrapEvent>,
    /// Every run that hit a limit, counted by outcome word: exact, whatever the history
    /// still holds.
    #[serde(default)]
    pub trap_counts: BTreeMap<String, u64>,
    /// Where it came from when it was first quarantined (the trap history says where
    /// each later run came from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Parent agent ids, for modules bred by the engine.
    pub parents: Vec<AgentId>,
    /// The audit trail: every decision (`quarantined`, `released`, `purged`), and the
    /// `trapped` entries of the runs still in the history.
    pub audit: Vec<AuditEvent>,
    /// How often it was purged.
    #[serde(default)]
    pub purges: u64,
    /// Ids of the latest changes made to the record (at most the store's
    /// `update_ids`), newest last: a writer told its write was lost looks for its own
    /// id here before making its change again.
    #[serde(default)]
    pub updates: Vec<String>,
}

impl Record {
    /// Traps recorded in all (the sum of `trap_counts`).
    pub fn traps_total(&self) -> u64 {
        self.trap_counts.values().sum()
    }

    /// Adds a trap to the counts, the history and the audit trail, and drops the
    /// oldest history and `trapped` audit entries beyond `keep`.
    fn add_trap(&mut self, t: TrapEvent, keep: usize) {
        *self.trap_counts.entry(t.outcome.clone()).or_default() += 1;
        self.audit.push(AuditEvent {
            at: t.at.clone(),
            ..AuditEvent::now(AuditAction::Trapped, t.outcome.clone())
        });
        self.trap_history.push(t);
        let over = self.trap_history.len().saturating_sub(keep);
        self.trap_history.drain(..over);
        let trapped = self
            .audit
            .iter()
            .filter(|a| a.action == AuditAction::Trapped)
            .count();
        let mut drop = trapped.saturating_sub(keep);
        self.audit.retain(|a| {
            if drop > 0 && a.action == AuditAction::Trapped {
                drop -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// The quarantine over a store.
#[derive(Clone)]
pub struct Quarantine {
    store: Arc<dyn BlobStore>,
}

/// The key of a module's quarantine record in the agents bucket.
pub fn record_key(id: &AgentId) -> String {
    format!("quarantine/{}.json", id.hex())
}

/// The key of a module's bytes in the agents bucket.
pub fn source_key(id: &AgentId) -> String {
    format!("source/{}", id.hex())
}

/// The ids of the records under `quarantine/`, from their keys (other keys are skipped).
fn record_ids(keys: Vec<String>) -> impl Iterator<Item = AgentId> {
    keys.into_iter().filter_map(|k| {
        let hex = k.strip_prefix("quarantine/")?.strip_suffix(".json")?;
        AgentId::from_hex(hex).ok()
    })
}

impl Quarantine {
    /// The quarantine of `store`.
    pub fn new(store: Arc<dyn BlobStore>) -> Quarantine {
        Quarantine { store }
    }

    /// Resolves a user-given id: `sha256:<hex>`, `<hex>` or a unique hex prefix of at
    /// least 6 digits among the records.
    pub fn resolve(&self, given: &str) -> Result<AgentId> {
        let hex = given.strip_prefix("sha256:").unwrap_or(given);
        let valid = hex.len() >= 6
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(ErrorKind::NotFound(format!("agent {}", runtime::escape(given))).into());
        }
        if hex.len() == 64 {
            return AgentId::from_hex(hex).map_err(|_| {
                ErrorKind::NotFound(format!("agent {}", runtime::escape(given))).into()
            });
        }
        let mut matches = record_ids(self.store.list(Bucket::Agents, "quarantine/")?)
            .filter(|id| id.hex().starts_with(hex));
        match (matches.next(), matches.next()) {
            (None, _) => {
                Err(ErrorKind::NotFound(format!("agent {}", runtime::escape(given))).into())
            }
            (Some(id), None) => Ok(id),
            (Some(_), Some(_)) => Err(ErrorKind::Ambiguous(given.to_string()).into()),
        }
    }

    /// The record of an agent, if any.
    pub fn get(&self, id: &AgentId) -> Result<Option<Record>> {
        let key = record_key(id);
        let Some(bytes) = self.store.get(Bucket::Agents, &key)? else {
            return Ok(None);
        };
        Self::decode(id, &key, &bytes).map(Some)
    }

    /// The record, or `NotFound`.
    pub fn require(&self, id: &AgentId) -> Result<Record> {
        self.get(id)?
            .ok_or_else(|| ErrorKind::NotFound(format!("agent {id}")).into())
    }

    /// Every record that is not purged, oldest first.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for id in record_ids(self.store.list(Bucket::Agents, "quarantine/")?) {
            if let Some(r) = self.get(&id)?
                && r.status != Status::Purged
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.quarantined_at.cmp(&b.quarantined_at));
        Ok(out)
    }

    /// The module bytes of a record, checked against the id.
    pub fn module(&self, id: &AgentId) -> Result<Option<Vec<u8>>> {
        let key = source_key(id);
        let Some(bytes) = self.store.get(Bucket::Agents, &key)? else {
            return Ok(None);
        };
        if AgentId::of(&bytes) != *id {
            return Err(ErrorKind::Corrupt {
                key,
                reason: "bytes do not hash to their id".into(),
            }
            .into());
        }
        Ok(Some(bytes))
    }

    fn decode(id: &AgentId, key: &str, bytes: &[u8]) -> Result<Record> {
        let mut rec: Record = from_json(key, bytes)?;
        if rec.agent_id != *id {
            return Err(ErrorKind::Corrupt {
                key: key.to_string(),
                reason: format!("record names {}", rec.agent_id),
            }
            .into());
        }
        // Records written before the counts existed: their history is complete.
        if rec.trap_counts.is_empty() {
            for t in &rec.trap_history {
                *rec.trap_counts.entry(t.outcome.clone()).or_default() += 1;
            }
        }
        Ok(rec)
    }

    /// Changes the record of `id` by `change` (given the current record, if any),
    /// written only if nobody else wrote it in between; otherwise `change` runs again on
    /// the newer record, after a short randomised wait, up to the store's
    /// `update_attempts`.
    fn update(
        &self,
        id: &AgentId,
        mut change: impl FnMut(Option<Record>) -> Result<Record>,
    ) -> Result<Record> {
        let key = record_key(id);
        let settings = self.store.settings();
        let attempts = settings.update_attempts.max(1);
        let update = update_id();
        for attempt in 0..attempts {
            let current: Option<(Record, Version)> = self
                .store
                .get_versioned(Bucket::Agents, &key)?
                .map(|(b, v)| Ok::<_, crate::Error>((Self::decode(id, &key, &b)?, v)))
                .transpose()?;
            let (rec, version) = match current {
                Some((r, v)) => (Some(r), Some(v)),
                None => (None, None),
            };
            // An earlier attempt was written although its answer said otherwise (the
            // client retried a write that had succeeded and met its own change): the
            // change is made, it must not be made twice.
            if let Some(r) = &rec
                && r.updates.contains(&update)
            {
                return Ok(r.clone());
            }
            let mut new = change(rec)?;
            new.updates.push(update.clone());
            let over = new.updates.len().saturating_sub(settings.update_ids.max(1));
            new.updates.drain(..over);
            let json = to_json("a quarantine record", &new)?;
            let written = match &version {
                Some(v) => self.store.put_if(Bucket::Agents, &key, &json, v)?,
                None => self.store.put_new(Bucket::Agents, &key, &json)?,
            };
            if written {
                return Ok(new);
            }
            std::thread::sleep(backoff(attempt));
        }
        Err(ErrorKind::Conflict(format!(
            "quarantine record of {id}: changed by others on each of {attempts} attempts"
        ))
        .into())
    }

    /// Quarantines a module seen afresh (a static rejection, or a run the caller did
    /// not admit under an earlier record), or, when it already has a record, adds to its
    /// history. `trap` is the run that pushed its score below the minimum, if any. A
    /// released module keeps its release: the new trap is recorded in its history. A
    /// purged module is quarantined again. From the sighting's policy come the minimum
    /// safety score (recorded) and `limits.module_bytes`: the bytes of a larger module
    /// are not kept, its record says its size and its `size_cap` finding.
    pub fn quarantine(&self, s: &Sighting, trap: Option<TrapEvent>) -> Result<Record> {
        self.sight(s, trap, u64::MAX)
    }

    /// Records the trap of a run that was admitted when the record had been purged
    /// `purges_seen` times (0 when there was no record). If it has been purged since,
    /// the run raced the purge: the trap is counted, the record stays purged. Otherwise
    /// as [`Quarantine::quarantine`].
    pub fn record_trap(&self, s: &Sighting, trap: TrapEvent, purges_seen: u64) -> Result<Record> {
        self.sight(s, Some(trap), purges_seen)
    }

    fn sight(&self, s: &Sighting, trap: Option<TrapEvent>, purges_seen: u64) -> Result<Record> {
        // The runtime's id of the bytes, parsed where it enters the engine.
        let id: &AgentId = &s.verdict.agent_id.parse()?;
        let keep = self.store.settings().trap_history;
        let reason = trap
            .as_ref()
            .map_or_else(|| "static".to_string(), |t| t.outcome.clone());
        let min_safety_score = s.policy.min_safety_score;
        // Bytes first: a record never points at missing bytes. Bytes over the policy's
        // module cap are not kept (the record says so through its size and findings).
        // Checked on every attempt that needs them: a purge that won the race against
        // an earlier attempt may have deleted the bytes that attempt stored.
        let keep_bytes = || -> Result<()> {
            if s.bytes.len() as u64 <= s.policy.limits.module_bytes
                && self.store.get(Bucket::Agents, &source_key(id))?.is_none()
            {
                self.store.put(Bucket::Agents, &source_key(id), s.bytes)?;
            }
            Ok(())
        };
        self.update(id, |current| {
            let now = now_rfc3339();
            let mut rec = match current {
                Some(r) if r.status == Status::Purged && r.purges > purges_seen => {
                    // A run admitted before the purge: the purge stands.
                    r
                }
                Some(mut r) if r.status == Status::Purged => {
                    keep_bytes()?;
                    r.status = Status::Quarantined;
                    r.reason = reason.clone();
                    r.safety_score = s.safety_score;
                    r.audit.push(AuditEvent::now(
                        AuditAction::Quarantined,
                        format!("seen again after purge; safety score {}", s.safety_score),
                    ));
                    r
                }
                Some(r) => r,
                None => {
                    keep_bytes()?;
                    Record {
                        agent_id: id.clone(),
                        status: Status::Quarantined,
                        quarantined_at: now,
                        reason: reason.clone(),
                        safety_score: s.safety_score,
                        min_safety_score,
                        size_bytes: s.verdict.size_bytes as u64,
                        findings: s.verdict.findings.iter().map(StoredFinding::from).collect(),
                        trap_history: Vec::new(),
                        trap_counts: BTreeMap::new(),
                        origin: Some(s.origin.clone()),
                        parents: s.parents.to_vec(),
                        audit: vec![AuditEvent::now(
                            AuditAction::Quarantined,
                            format!(
                                "{reason}: safety score {} below {}",
                                s.safety_score, min_safety_score
                            ),
                        )],
                        purges: 0,
                        updates: Vec::new(),
                    }
                }
            };
            if let Some(t) = &trap {
                rec.add_trap(t.clone(), keep);
            }
            Ok(rec)
        })
    }

    /// Releases a quarantined module: a person approved it.
    pub fn release(&self, id: &AgentId, by: &Decision) -> Result<Record> {
        self.update(id, |current| {
            let mut rec = current
                .ok_or_else(|| crate::Error::from(ErrorKind::NotFound(format!("agent {id}"))))?;
            if rec.status == Status::Purged {
                return Err(ErrorKind::NotFound(format!("agent {id} (purged)")).into());
            }
            rec.status = Status::Released;
            rec.audit.push(by.event(AuditAction::Released));
            Ok(rec)
        })
    }

    /// Purges a module: deletes its bytes, keeps the record marked `purged`.
    pub fn purge(&self, id: &AgentId, by: &Decision) -> Result<Record> {
        let rec = self.update(id, |current| {
            let mut rec = current
                .ok_or_else(|| crate::Error::from(ErrorKind::NotFound(format!("agent {id}"))))?;
            rec.status = Status::Purged;
            rec.purges += 1;
            rec.audit.push(by.event(AuditAction::Purged));
            Ok(rec)
        })?;
        // Record first, then bytes: a crash between leaves a purged record whose bytes
        // a second purge removes.
        self.store.delete(Bucket::Agents, &source_key(id))?;
        Ok(rec)
    }
}

/// What a quarantine is told about a module it sees.
pub struct Sighting<'a> {
    /// The module's bytes (kept unless over the policy's `limits.module_bytes`).
    pub bytes: &'a [u8],
    /// Its static verdict under the policy.
    pub verdict: &'a Verdict,
    /// The safety score that brought it here.
    pub safety_score: f64,
    /// The policy it was judged under.
    pub policy: &'a Policy,
    /// Its parents, for a module bred by the engine.
    pub parents: &'a [AgentId],
    /// Where it came from.
    pub origin: &'a Origin,
}

/// A fresh id for one change of a record: 128 random bits in hex.
fn update_id() -> String {
    crate::id::random_hex()
}

/// The wait before attempt `attempt + 1` of a conditional update: doubling from 1 ms
/// up to 32 ms, each wait a random share (50–150 %) of that, so racing writers spread.
fn backoff(attempt: u32) -> Duration {
    use std::hash::BuildHasher;
    let base_us = 1000u64 << attempt.min(5);
    // A fresh `RandomState` has random keys: hashing with it is a cheap random number.
    let r = std::collections::hash_map::RandomState::new().hash_one(attempt);
    Duration::from_micros(base_us / 2 + r % base_us.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StateItem, StoreSettings};

    /// A store on which every conditional write loses its race.
    struct AlwaysLoses(Arc<dyn BlobStore>);

    impl BlobStore for AlwaysLoses {
        fn put(&self, b: Bucket, key: &str, bytes: &[u8]) -> Result<()> {
            self.0.put(b, key, bytes)
        }
        fn put_new(&self, _: Bucket, _: &str, _: &[u8]) -> Result<bool> {
            Ok(false)
        }
        fn put_state(&self, item: &StateItem) -> Result<bool> {
            self.0.put_state(item)
        }
        fn get_states(&self, id: &str) -> Result<Vec<StateItem>> {
            self.0.get_states(id)
        }
        fn delete_state(&self, id: &str, g: u32) -> Result<()> {
            self.0.delete_state(id, g)
        }
        fn get(&self, b: Bucket, key: &str) -> Result<Option<Vec<u8>>> {
            self.0.get(b, key)
        }
        fn get_versioned(&self, b: Bucket, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
            self.0.get_versioned(b, key)
        }
        fn put_if(&self, _: Bucket, _: &str, _: &[u8], _: &Version) -> Result<bool> {
            Ok(false)
        }
        fn list(&self, b: Bucket, prefix: &str) -> Result<Vec<String>> {
            self.0.list(b, prefix)
        }
        fn delete(&self, b: Bucket, key: &str) -> Result<()> {
            self.0.delete(b, key)
        }
        fn describe(&self) -> String {
            self.0.describe()
        }
        fn settings(&self) -> &StoreSettings {
            self.0.settings()
        }
    }

    fn op() -> Decision {
        Decision {
            by: "op".into(),
            reason: String::new(),
            via: "test".into(),
        }
    }

    fn store(params: &str) -> (Arc<dyn BlobStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s =
            crate::store::open(&format!("file://{}{params}", dir.path().display())).expect("store");
        (s, dir)
    }

    fn rejected(tag: u32) -> (Vec<u8>, Verdict) {
        let wasm = wat::parse_str(format!(
            r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
                (func (export "act") (result i32) i32.const {tag}))"#
        ))
        .expect("wat");
        let v = runtime::validate(&Policy::default_policy(), &wasm);
        (wasm, v)
    }

    #[test]
    fn a_write_that_always_loses_is_a_conflict_after_the_attempts() {
        let (s, _dir) = store("?update_attempts=3");
        let q = Quarantine::new(Arc::new(AlwaysLoses(s.clone())));
        let (wasm, v) = rejected(1);
        let e = q
            .quarantine(
                &Sighting {
                    bytes: &wasm,
                    verdict: &v,
                    safety_score: 0.1,
                    policy: &Policy::default_policy(),
                    parents: &[],
                    origin: &Origin::default(),
                },
                None,
            )
            .expect_err("never written");
        assert!(matches!(e.kind(), ErrorKind::Conflict(_)), "{e}");
        assert!(e.to_string().contains("3 attempts"), "{e}");
        // the bytes went first, the record never
        let id: AgentId = v.agent_id.parse().expect("id");
        assert!(
            s.get(Bucket::Agents, &source_key(&id))
                .expect("get")
                .is_some()
        );
        assert!(Quarantine::new(s).get(&id).expect("get").is_none());
    }

    #[test]
    fn release_and_purge_need_a_record() {
        let (s, _dir) = store("");
        let q = Quarantine::new(s);
        let id = AgentId::of(b"none");
        for e in [
            q.release(&id, &op()).expect_err("release"),
            q.purge(&id, &op()).expect_err("purge"),
            q.require(&id).expect_err("require"),
        ] {
            assert!(matches!(e.kind(), ErrorKind::NotFound(_)), "{e}");
        }
        // a purged record cannot be released
        let (wasm, v) = rejected(2);
        let rec = q
            .quarantine(
                &Sighting {
                    bytes: &wasm,
                    verdict: &v,
                    safety_score: 0.1,
                    policy: &Policy::default_policy(),
                    parents: &[],
                    origin: &Origin::default(),
                },
                None,
            )
            .expect("quarantine");
        q.purge(&rec.agent_id, &op()).expect("purge");
        let e = q.release(&rec.agent_id, &op()).expect_err("purged");
        assert!(matches!(e.kind(), ErrorKind::NotFound(_)), "{e}");
        assert!(
            q.list().expect("list").is_empty(),
            "purged records are not listed"
        );
    }

    #[test]
    fn ids_resolve_from_unique_prefixes() {
        let (s, _dir) = store("");
        let q = Quarantine::new(s.clone());
        let mut ids = Vec::new();
        for tag in 0..40 {
            let (wasm, v) = rejected(tag);
            ids.push(
                q.quarantine(
                    &Sighting {
                        bytes: &wasm,
                        verdict: &v,
                        safety_score: 0.1,
                        policy: &Policy::default_policy(),
                        parents: &[],
                        origin: &Origin::default(),
                    },
                    None,
                )
                .expect("quarantine")
                .agent_id,
            );
        }
        let id = &ids[0];
        assert_eq!(&q.resolve(id.as_str()).expect("full"), id);
        assert_eq!(&q.resolve(id.hex()).expect("hex"), id);
        // a unique prefix of the shortest length needed, at least 6
        let unique = (6..=64)
            .map(|n| &id.hex()[..n])
            .find(|p| ids.iter().filter(|i| i.hex().starts_with(p)).count() == 1)
            .expect("a unique prefix");
        assert_eq!(&q.resolve(unique).expect("prefix"), id);
        assert_eq!(&q.resolve(&format!("sha256:{unique}")).expect("prefix"), id);
        for bad in ["", "abc12", "sha256:", "zzzzzz", &id.hex().to_uppercase()] {
            let e = q.resolve(bad).expect_err(bad);
            assert!(matches!(e.kind(), ErrorKind::NotFound(_)), "{bad}: {e}");
        }
        // no record starts with this
        let none = ["000000", "ffffff"]
            .into_iter()
            .find(|p| !ids.iter().any(|i| i.hex().starts_with(p)))
            .expect("an unused prefix");
        assert!(matches!(
            q.resolve(none).expect_err("none").kind(),
            ErrorKind::NotFound(_)
        ));
        // two records under one prefix
        for d in ["0", "1"] {
            let key = format!("quarantine/abcdef{}.json", d.repeat(58));
            s.put(Bucket::Agents, &key, b"{}").expect("put");
        }
        let e = q.resolve("abcdef").expect_err("ambiguous");
        assert!(matches!(e.kind(), ErrorKind::Ambiguous(_)), "{e}");
        // a record that names another id is corrupt
        let other = &ids[1];
        let bytes = s
            .get(Bucket::Agents, &record_key(other))
            .expect("get")
            .expect("rec");
        s.put(Bucket::Agents, &record_key(id), &bytes).expect("put");
        assert!(matches!(
            q.get(id).expect_err("corrupt").kind(),
            ErrorKind::Corrupt { .. }
        ));
    }
}
