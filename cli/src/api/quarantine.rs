//! `GET /v1/quarantine`, `GET /v1/quarantine/{id}`, `POST /v1/quarantine/{id}/release`
//! and `DELETE /v1/quarantine/{id}`: review and decisions, each decision recorded in
//! the record's audit trail with the token's name.

use super::auth::Caller;
use super::extract::AgentIdPath;
use super::{ApiError, AppState, blocking};
use crate::report::{QuarantineList, RecordReport};
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use engine::Quarantine;

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
    what: &'static str,
    act: fn(&Quarantine, &engine::AgentId, &str) -> engine::Result<engine::Record>,
) -> Result<Json<engine::Record>, ApiError> {
    let store = st.store();
    // The audit entry names the token (never its secret).
    let by = format!("tdev serve API (token {})", caller.0);
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
) -> Result<Json<engine::Record>, ApiError> {
    decide(st, id, caller, "the release", Quarantine::release).await
}

/// Deletes a module's bytes; the record stays, marked purged.
pub async fn purge(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    AgentIdPath(id): AgentIdPath,
) -> Result<Json<engine::Record>, ApiError> {
    decide(st, id, caller, "the purge", Quarantine::purge).await
}
