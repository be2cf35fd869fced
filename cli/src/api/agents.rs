//! `GET /v1/agents/{id}` and `GET /v1/agents/{id}/wat`: what the store holds of an
//! agent, and its text form.

use super::extract::AgentIdPath;
use super::{ApiError, AppState, blocking};
use crate::report::{AgentReport, AgentText};
use axum::Json;
use axum::extract::State;
use engine::Quarantine;
use engine::store::Bucket;

/// The agent's stored size, quarantine state and metadata; 404 when the store knows
/// nothing of it.
pub async fn agent(
    State(st): State<AppState>,
    AgentIdPath(id): AgentIdPath,
) -> Result<Json<AgentReport>, ApiError> {
    let store = st.store();
    blocking("the agent lookup", move || {
        let q = Quarantine::new(store.clone());
        let record = q.get(&id)?;
        let module = q.module(&id)?;
        // A metadata record that does not parse is left out, as one that is missing.
        let metadata = store
            .get(Bucket::Agents, &engine::evolve::metadata_key(&id))?
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if record.is_none() && module.is_none() && metadata.is_none() {
            return Err(ApiError::NotFound(format!("no agent {id}")));
        }
        Ok(Json(AgentReport {
            size_bytes: module.as_ref().map(Vec::len),
            quarantine: record.map(|r| r.status),
            metadata,
            agent_id: id,
        }))
    })
    .await
}

/// The module's text form (checked against its id by the quarantine).
pub async fn text(
    State(st): State<AppState>,
    AgentIdPath(id): AgentIdPath,
) -> Result<Json<AgentText>, ApiError> {
    let store = st.store();
    let sandbox = st.sandbox();
    blocking("the text form", move || {
        // Quarantine::module checks the bytes against their id.
        let bytes = Quarantine::new(store)
            .module(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("no module {id}")))?;
        Ok(Json(AgentText {
            wat: runtime::text_form(sandbox.policy(), &bytes),
            agent_id: id,
        }))
    })
    .await
}
