//! Quarantine: modules held until a person reviews them, with an audit trail.
//!
//! Layout in the agents bucket: `quarantine/<hex>.json` (the record) and `source/<hex>`
//! (the module bytes, checked against their id when read back). A purge deletes the
//! bytes and keeps the record, marked `purged`, for the audit trail.

use crate::error::{ErrorKind, Result};
use crate::store::{BlobStore, Bucket};
use crate::time::now_rfc3339;
use runtime::{Finding, Verdict, agent_id, is_agent_id};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
}

impl From<&Finding> for StoredFinding {
    fn from(f: &Finding) -> Self {
        StoredFinding {
            kind: f.kind.to_string(),
            detail: f.detail.clone(),
            weight: f.weight,
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
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: String,
    /// `quarantined`, `trapped`, `released`, `purged`.
    pub action: String,
    /// Why, or who.
    pub detail: String,
}

/// A quarantine record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `sha256:<hex>`.
    pub agent_id: String,
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
    /// Runs that hit a limit.
    pub trap_history: Vec<TrapEvent>,
    /// Parent agent ids, for modules bred by the engine.
    pub parents: Vec<String>,
    /// The audit trail.
    pub audit: Vec<AuditEvent>,
}

/// The quarantine over a store.
#[derive(Clone)]
pub struct Quarantine {
    store: Arc<dyn BlobStore>,
}

/// Modules larger than this (1 MiB) are recorded without their bytes.
pub const KEEP_BYTES_MAX: usize = 1 << 20;

fn hex_of(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

fn record_key(id: &str) -> String {
    format!("quarantine/{}.json", hex_of(id))
}

/// The key of a module's bytes in the agents bucket.
pub fn source_key(id: &str) -> String {
    format!("source/{}", hex_of(id))
}

impl Quarantine {
    /// The quarantine of `store`.
    pub fn new(store: Arc<dyn BlobStore>) -> Quarantine {
        Quarantine { store }
    }

    /// Resolves a user-given id: `sha256:<hex>`, `<hex>` or a unique hex prefix of at
    /// least 6 digits among the records.
    pub fn resolve(&self, given: &str) -> Result<String> {
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
            return Ok(format!("sha256:{hex}"));
        }
        let matches: Vec<String> = self
            .store
            .list(Bucket::Agents, "quarantine/")?
            .into_iter()
            .filter_map(|k| {
                let h = k.strip_prefix("quarantine/")?.strip_suffix(".json")?;
                h.starts_with(hex).then(|| format!("sha256:{h}"))
            })
            .collect();
        match matches.len() {
            0 => Err(ErrorKind::NotFound(format!("agent {}", runtime::escape(given))).into()),
            1 => Ok(matches.into_iter().next().unwrap_or_default()),
            _ => Err(ErrorKind::Ambiguous(given.to_string()).into()),
        }
    }

    /// The record of an agent, if any.
    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        if !is_agent_id(id) {
            return Err(ErrorKind::NotFound(format!("agent {}", runtime::escape(id))).into());
        }
        let key = record_key(id);
        let Some(bytes) = self.store.get(Bucket::Agents, &key)? else {
            return Ok(None);
        };
        let rec: Record = serde_json::from_slice(&bytes).map_err(|e| ErrorKind::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        if rec.agent_id != id {
            return Err(ErrorKind::Corrupt {
                key,
                reason: format!("record names {}", rec.agent_id),
            }
            .into());
        }
        Ok(Some(rec))
    }

    /// The record, or `NotFound`.
    pub fn require(&self, id: &str) -> Result<Record> {
        self.get(id)?
            .ok_or_else(|| ErrorKind::NotFound(format!("agent {id}")).into())
    }

    /// Every record that is not purged, oldest first.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for key in self.store.list(Bucket::Agents, "quarantine/")? {
            let Some(hex) = key
                .strip_prefix("quarantine/")
                .and_then(|k| k.strip_suffix(".json"))
            else {
                continue;
            };
            let id = format!("sha256:{hex}");
            if !is_agent_id(&id) {
                continue;
            }
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
    pub fn module(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let key = source_key(id);
        let Some(bytes) = self.store.get(Bucket::Agents, &key)? else {
            return Ok(None);
        };
        if agent_id(&bytes) != id {
            return Err(ErrorKind::Corrupt {
                key,
                reason: "bytes do not hash to their id".into(),
            }
            .into());
        }
        Ok(Some(bytes))
    }

    fn save(&self, rec: &Record) -> Result<()> {
        let json = serde_json::to_vec_pretty(rec).map_err(|e| ErrorKind::Corrupt {
            key: record_key(&rec.agent_id),
            reason: e.to_string(),
        })?;
        self.store
            .put(Bucket::Agents, &record_key(&rec.agent_id), &json)
    }

    /// Quarantines a module (or, when it already has a record, adds to its history).
    /// `trap` is the run that pushed its score below the minimum, if any. A released
    /// module keeps its release: the new trap is recorded in its history.
    pub fn quarantine(
        &self,
        bytes: &[u8],
        verdict: &Verdict,
        safety_score: f64,
        min_safety_score: f64,
        trap: Option<TrapEvent>,
        parents: &[String],
    ) -> Result<Record> {
        let id = &verdict.agent_id;
        let now = now_rfc3339();
        // Bytes first: a record never points at missing bytes. Bytes too large to be
        // a module at all are not kept (the record says so through its size).
        if bytes.len() <= KEEP_BYTES_MAX
            && self.store.get(Bucket::Agents, &source_key(id))?.is_none()
        {
            self.store.put(Bucket::Agents, &source_key(id), bytes)?;
        }
        let reason = trap
            .as_ref()
            .map_or_else(|| "static".to_string(), |t| t.outcome.clone());
        let mut rec = match self.get(id)? {
            Some(mut r) => {
                if r.status == Status::Purged {
                    r.status = Status::Quarantined;
                    r.reason = reason.clone();
                    r.safety_score = safety_score;
                    r.audit.push(AuditEvent {
                        at: now.clone(),
                        action: "quarantined".into(),
                        detail: format!("seen again after purge; safety score {safety_score}"),
                    });
                }
                r
            }
            None => Record {
                agent_id: id.clone(),
                status: Status::Quarantined,
                quarantined_at: now.clone(),
                reason: reason.clone(),
                safety_score,
                min_safety_score,
                size_bytes: verdict.size_bytes as u64,
                findings: verdict.findings.iter().map(StoredFinding::from).collect(),
                trap_history: Vec::new(),
                parents: parents.to_vec(),
                audit: vec![AuditEvent {
                    at: now.clone(),
                    action: "quarantined".into(),
                    detail: format!(
                        "{reason}: safety score {safety_score} below {min_safety_score}"
                    ),
                }],
            },
        };
        if let Some(t) = trap {
            rec.audit.push(AuditEvent {
                at: now,
                action: "trapped".into(),
                detail: t.outcome.clone(),
            });
            rec.trap_history.push(t);
        }
        self.save(&rec)?;
        Ok(rec)
    }

    /// Releases a quarantined module: a person approved it.
    pub fn release(&self, id: &str, by: &str) -> Result<Record> {
        let mut rec = self.require(id)?;
        if rec.status == Status::Purged {
            return Err(ErrorKind::NotFound(format!("agent {id} (purged)")).into());
        }
        rec.status = Status::Released;
        rec.audit.push(AuditEvent {
            at: now_rfc3339(),
            action: "released".into(),
            detail: by.to_string(),
        });
        self.save(&rec)?;
        Ok(rec)
    }

    /// Purges a module: deletes its bytes, keeps the record marked `purged`.
    pub fn purge(&self, id: &str, by: &str) -> Result<Record> {
        let mut rec = self.require(id)?;
        rec.status = Status::Purged;
        rec.audit.push(AuditEvent {
            at: now_rfc3339(),
            action: "purged".into(),
            detail: by.to_string(),
        });
        // Record first, then bytes: a crash between leaves a purged record whose bytes
        // a second purge removes.
        self.save(&rec)?;
        self.store.delete(Bucket::Agents, &source_key(id))?;
        Ok(rec)
    }
}
