//! `GET /v1/audit`: every quarantine decision (from the records' audit trails) and
//! every operator action that concerns no agent (rollbacks, emergency stops, recorded
//! here), newest first.

use super::{ApiError, AppState, blocking};
use axum::Json;
use axum::extract::State;
use engine::Quarantine;
use engine::store::{BlobStore, Bucket};
use serde::{Deserialize, Serialize};

/// Where the operator actions that concern no agent are recorded: one object per
/// action, never rewritten.
const AUDIT_PREFIX: &str = "audit/";

/// An operator action that concerns no agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerAction {
    /// An evolution's head was moved back.
    RolledBack,
    /// The emergency stop was pulled.
    EmergencyStop,
}

impl std::fmt::Display for ServerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerAction::RolledBack => "rolled_back",
            ServerAction::EmergencyStop => "emergency_stop",
        })
    }
}

/// An action as stored under [`AUDIT_PREFIX`].
#[derive(Debug, Serialize, Deserialize)]
struct Action {
    at: String,
    action: ServerAction,
    detail: String,
}

/// One entry of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    /// RFC 3339 time.
    pub at: String,
    /// The agent concerned; null for rollbacks and emergency stops.
    pub agent_id: Option<engine::AgentId>,
    /// The action word.
    pub action: String,
    /// Who and what.
    pub detail: String,
}

/// `{"audit": [...]}`.
#[derive(Debug, Serialize)]
pub struct AuditLog {
    /// The entries, newest first.
    pub audit: Vec<AuditEntry>,
}

/// Records an action done, with `detail` naming the token. The action is done
/// already: a record that cannot be written is a 500 that says so.
pub(super) fn record(
    store: &dyn BlobStore,
    action: ServerAction,
    detail: &str,
) -> Result<(), ApiError> {
    let entry = Action {
        at: engine::time::now_rfc3339(),
        action,
        detail: detail.to_string(),
    };
    let failed = |e: String| {
        ApiError::Internal(format!(
            "{action} was done, but its audit entry could not be written: {e}"
        ))
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| failed(e.to_string()))?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    // Never over another entry: the same millisecond gets the next number.
    for n in 0..1000u32 {
        let key = format!(
            "{AUDIT_PREFIX}{millis:015}-{}-{n:03}.json",
            std::process::id()
        );
        if store
            .put_new(Bucket::Agents, &key, &bytes)
            .map_err(|e| failed(e.to_string()))?
        {
            return Ok(());
        }
    }
    Err(failed("no free key".into()))
}

/// Every quarantine decision, rollback and emergency stop, newest first.
pub async fn log(State(st): State<AppState>) -> Result<Json<AuditLog>, ApiError> {
    let store = st.store();
    blocking("the audit log", move || {
        let q = Quarantine::new(store.clone());
        let mut audit = Vec::new();
        for key in store.list(Bucket::Agents, "quarantine/")? {
            let Some(hex) = key
                .strip_prefix("quarantine/")
                .and_then(|k| k.strip_suffix(".json"))
            else {
                continue;
            };
            // A key that is not an agent id's is not a record.
            let Ok(id) = engine::AgentId::from_hex(hex) else {
                continue;
            };
            if let Some(r) = q.get(&id)? {
                audit.extend(r.audit.iter().map(|a| AuditEntry {
                    at: a.at.clone(),
                    agent_id: Some(r.agent_id.clone()),
                    action: a.action.to_string(),
                    detail: a.detail.clone(),
                }));
            }
        }
        for key in store.list(Bucket::Agents, AUDIT_PREFIX)? {
            // An entry that is not one (written by hand, or cut short) is left out.
            if let Some(a) = store
                .get(Bucket::Agents, &key)?
                .and_then(|b| serde_json::from_slice::<Action>(&b).ok())
            {
                audit.push(AuditEntry {
                    at: a.at,
                    agent_id: None,
                    action: a.action.to_string(),
                    detail: a.detail,
                });
            }
        }
        audit.sort_by(|a, b| b.at.cmp(&a.at));
        Ok(Json(AuditLog { audit }))
    })
    .await
}
