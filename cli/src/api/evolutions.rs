//! `GET /v1/evolutions`, `GET /v1/evolutions/{id}`, `POST
//! /v1/evolutions/{id}/rollback?generation=N` and `POST /v1/emergency-stop`.

use super::audit::{self, ServerAction};
use super::auth::Caller;
use super::extract::{EvolutionIdPath, Query, RollbackQuery};
use super::{ApiError, AppState, blocking, decode};
use crate::report::{EvolutionList, EvolutionReport, GenerationRow, RolledBack, Stopped};
use axum::Json;
use axum::extract::{Extension, State};
use engine::store::Bucket;

/// Every evolution in the store with its head generation and status.
pub async fn list(State(st): State<AppState>) -> Result<Json<EvolutionList>, ApiError> {
    let store = st.store();
    blocking("the evolution list", move || {
        Ok(Json(EvolutionList {
            evolutions: engine::evolve::list(store.as_ref())?,
        }))
    })
    .await
}

/// One evolution: its head and the fitness log of each generation up to it.
pub async fn show(
    State(st): State<AppState>,
    EvolutionIdPath(id): EvolutionIdPath,
) -> Result<Json<EvolutionReport>, ApiError> {
    let store = st.store();
    blocking("the evolution", move || {
        let head = engine::evolve::head_generation(store.as_ref(), &id)?;
        let mut generations = Vec::new();
        for key in store.list(Bucket::Evolution, &format!("fitness_logs/{id}/"))? {
            if !key.ends_with(".json") {
                continue;
            }
            // A log that does not parse (the plot, a log cut short) is left out.
            if let Some(b) = store.get(Bucket::Evolution, &key)?
                && let Ok(row) = serde_json::from_slice::<GenerationRow>(&b)
                && row.generation <= head
            {
                generations.push(row);
            }
        }
        Ok(Json(EvolutionReport {
            evolution_id: id,
            head_generation: head,
            generations,
        }))
    })
    .await
}

/// Makes generation N the head again; recorded in the audit log.
pub async fn rollback(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    EvolutionIdPath(id): EvolutionIdPath,
    Query(q): Query<RollbackQuery>,
) -> Result<Json<RolledBack>, ApiError> {
    let generation = decode::generation(&q.generation)?;
    let store = st.store();
    eprintln!(
        "tdev serve: token {} rolls {id} back to generation {generation}",
        caller.0
    );
    blocking("the rollback", move || {
        engine::evolve::rollback(store.as_ref(), &id, generation)?;
        audit::record(
            store.as_ref(),
            ServerAction::RolledBack,
            &format!(
                "evolution {id} to generation {generation} by tdev serve API (token {})",
                caller.0
            ),
        )?;
        Ok(Json(RolledBack {
            evolution_id: id,
            head_generation: generation,
        }))
    })
    .await
}

/// Interrupts every running agent of the server and asks every evolution on the store
/// to stop; recorded in the audit log.
pub async fn emergency_stop(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Stopped>, ApiError> {
    eprintln!("tdev serve: token {} pulls the emergency stop", caller.0);
    st.inner.sandbox.stop_handle().stop();
    let store = st.store();
    let state = st.clone();
    blocking("the emergency stop", move || {
        let at = engine::control::request_stop(store.as_ref())
            .map_err(|e| ApiError::Internal(format!("the stop marker: {e:#}")))?;
        if let Some(a) = state.alerts() {
            a.emit(crate::common::stop_alert(
                "tdev serve",
                &format!("token {}", caller.0),
                &at,
            ));
        }
        // This server has stopped its runs already: its watcher leaves this stop be.
        state.see_stop(at);
        audit::record(
            store.as_ref(),
            ServerAction::EmergencyStop,
            &format!("tdev serve API (token {})", caller.0),
        )?;
        Ok(Json(Stopped { stopped: true }))
    })
    .await
}
