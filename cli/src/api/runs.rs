//! `POST /v1/validate` and `POST /v1/run`: a module in the body (bytes, or JSON with
//! base64), judged by the validator, run through the quarantine's guard.

use super::auth::Caller;
use super::extract::{NoQuery, Query, RunQuery};
use super::{ApiError, AppState, blocking, decode};
use crate::report::{Refusal, RejectedReport, RunReport, ValidateReport};
use axum::Json;
use axum::body::Bytes;
use axum::extract::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use engine::{AgentId, Gate, Guard, Origin, Quarantine};
use runtime::{ActForm, Input};

/// What the server's alerts say they come from.
const SOURCE: &str = "tdev serve";

/// The `validate --json` object of the module in the body.
pub async fn validate(
    State(st): State<AppState>,
    Query(NoQuery {}): Query<NoQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ValidateReport>, ApiError> {
    let module = decode::run_request(&headers, None, None, &body, st.caps())?.module;
    let permit = st.permit()?;
    let sandbox = st.sandbox();
    let store = st.store();
    blocking("the validation", move || {
        let _permit = permit;
        let v = sandbox.validate(&module);
        // A module held in quarantine is reported held.
        let record = Quarantine::new(store).get(&AgentId::of(&module))?;
        Ok(Json(ValidateReport::new(
            &v,
            sandbox.policy(),
            record.as_ref(),
        )))
    })
    .await
}

/// The `run --json` object of the module in the body, run with its input or args.
pub async fn run(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RunQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let decode::RunRequest {
        module,
        input,
        args,
        name,
    } = decode::run_request(&headers, q.args, q.name, &body, st.caps())?;
    let origin = Origin::api(&caller.0, name.as_deref());
    let permit = st.permit()?;
    let state = st.clone();
    blocking("the run", move || {
        let _permit = permit;
        let guard = Guard::new(state.sandbox(), Quarantine::new(state.store()));
        let refused = |verdict: runtime::Verdict, record: engine::Record, reason| {
            state.metrics().count_rejected();
            Ok::<_, ApiError>(Json(RejectedReport::new(&verdict, &record, reason)).into_response())
        };
        let (agent, purges_seen) = match guard.admit(&module, &origin)? {
            Gate::Admitted {
                agent, purges_seen, ..
            } => (agent, purges_seen),
            Gate::Held { verdict, record } => {
                return refused(verdict, record, Refusal::Quarantined);
            }
            Gate::Rejected { verdict, record } => {
                if let Some(a) = state.alerts() {
                    a.emit(crate::common::quarantine_alert(
                        SOURCE,
                        &verdict.agent_id,
                        &origin,
                        &record.reason,
                        record.safety_score,
                    ));
                }
                return refused(verdict, record, Refusal::Static);
            }
        };
        let input = match agent.form() {
            ActForm::Bytes => {
                if args.is_some() {
                    return Err(ApiError::BadRequest(
                        "this agent has the bytes form: send input, not args".into(),
                    ));
                }
                Input::Bytes(input.unwrap_or_default())
            }
            ActForm::Typed { params, .. } => {
                if input.is_some() {
                    return Err(ApiError::BadRequest(
                        "this agent has the typed form: send args, not input".into(),
                    ));
                }
                Input::Typed(runtime::parse_args(params, args.as_deref().unwrap_or(""))?)
            }
        };
        // One instantiation per request: the run's own (a start function runs once).
        let run = guard.run(&module, &agent, input, purges_seen, &origin)?;
        state.metrics().count(&run.report);
        if let Some(a) = state.alerts() {
            crate::common::alert_run(a, SOURCE, &run, &origin, agent.id());
        }
        Ok(Json(RunReport::new(&agent, &run)).into_response())
    })
    .await
}
