//! `GET /v1/quarantine`, `GET /v1/quarantine/{id}`, `POST /v1/quarantine/{id}/release`
//! and `DELETE /v1/quarantine/{id}`: review and decisions, each decision recorded in
//! the record's audit trail with the token's name.

use super::auth::Caller;
use super::extract::AgentIdPath;
use super::{ApiError, AppState, blocking};
use crate::report::{QuarantineList, RecordReport};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use engine::quarantine::{DECISION_TEXT_BYTES, decision_text_fits};
use engine::{Decision, Quarantine};
use serde::Deserialize;

/// The body of a release or purge (optional): who decides and why, for the audit
/// trail. Without `by`, the token's name stands for who.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Who decides.
    #[serde(default)]
    pub by: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The decision of `caller` with the request's body: empty, or a JSON [`DecisionBody`].
fn decision(caller: &Caller, body: &[u8]) -> Result<Decision, ApiError> {
    let given: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the body is empty or {{\"by\": NAME, \"reason\": TEXT}}: {}",
                runtime::escape(&e.to_string())
            ))
        })?
    };
    for (field, v) in [("by", &given.by), ("reason", &given.reason)] {
        if let Some(v) = v
            && !decision_text_fits(v)
        {
            return Err(ApiError::BadRequest(format!(
                "{field} is one line of at most {DECISION_TEXT_BYTES} bytes"
            )));
        }
    }
    Ok(Decision {
        by: given
            .by
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| caller.0.clone()),
        reason: given.reason.unwrap_or_default(),
        via: format!("api (token {})", caller.0),
    })
}

/// Quarantined and released modules, oldest first.
pub async fn list(State(st): State<AppState>) -> Result<Json<QuarantineList>, ApiError> {
    let store = st.store();
    blocking("the quarantine list", move || {
        Ok(Json(QuarantineList::new(&Quarantine::new(store).list()?)))
    })
    .await
}

/// One record with its text form and lineage.
pub async fn show(
    State(st): State<AppState>,
    AgentIdPath(id): AgentIdPath,
) -> Result<Response, ApiError> {
    let store = st.store();
    let sandbox = st.sandbox();
    blocking("the quarantine record", move || {
        let q = Quarantine::new(store);
        let record = q.require(&id)?;
        let wat = q
            .module(&id)?
            .and_then(|b| runtime::text_form(sandbox.policy(), &b));
        Ok(Json(RecordReport {
            record: &record,
            wat,
            lineage: Some(&record.parents),
        })
        .into_response())
    })
    .await
}

/// A quarantine decision (release or purge) on a validated id, recorded in the
/// record's audit trail.
async fn decide(
    st: AppState,
    id: engine::AgentId,
    caller: Caller,
    body: &[u8],
    what: &'static str,
    act: fn(&Quarantine, &engine::AgentId, &Decision) -> engine::Result<engine::Record>,
) -> Result<Json<engine::Record>, ApiError> {
    let store = st.store();
    // The audit entry names the token (never its secret) and whom the body names.
    let by = decision(&caller, body)?;
    blocking(what, move || {
        Ok(Json(act(&Quarantine::new(store), &id, &by)?))
    })
    .await
}

/// Approves a module: it may run again.
pub async fn release(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    AgentIdPath(id): AgentIdPath,
    body: Bytes,
) -> Result<Json<engine::Record>, ApiError> {
    decide(st, id, caller, &body, "the release", Quarantine::release).await
}

/// Deletes a module's bytes; the record stays, marked purged.
pub async fn purge(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    AgentIdPath(id): AgentIdPath,
    body: Bytes,
) -> Result<Json<engine::Record>, ApiError> {
    decide(st, id, caller, &body, "the purge", Quarantine::purge).await
}
