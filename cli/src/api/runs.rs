//! `POST /v1/validate` and `POST /v1/run`: a module in the body (bytes, or JSON with
//! base64), judged by the validator, run through the quarantine's guard.

use super::extract::{NoQuery, Query, RunQuery};
use super::{ApiError, AppState, blocking, decode};
use crate::report::{Refusal, RejectedReport, RunReport, ValidateReport};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use engine::{Gate, Guard, Quarantine};
use runtime::{ActForm, Input};

/// The `validate --json` object of the module in the body.
pub async fn validate(
    State(st): State<AppState>,
    Query(NoQuery {}): Query<NoQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ValidateReport>, ApiError> {
    let module = decode::run_request(&headers, None, &body, st.caps())?.module;
    let permit = st.permit()?;
    let sandbox = st.sandbox();
    blocking("the validation", move || {
        let _permit = permit;
        let v = sandbox.validate(&module);
        Ok(Json(ValidateReport::new(&v, sandbox.policy())))
    })
    .await
}

/// The `run --json` object of the module in the body, run with its input or args.
pub async fn run(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let decode::RunRequest {
        module,
        input,
        args,
    } = decode::run_request(&headers, q.args, &body, st.caps())?;
    let permit = st.permit()?;
    let state = st.clone();
    blocking("the run", move || {
        let _permit = permit;
        let guard = Guard::new(state.sandbox(), Quarantine::new(state.store()));
        let refused = |verdict: runtime::Verdict, record: engine::Record, reason| {
            state.metrics().count_rejected();
            Ok::<_, ApiError>(Json(RejectedReport::new(&verdict, &record, reason)).into_response())
        };
        let (agent, purges_seen) = match guard.admit(&module)? {
            Gate::Admitted {
                agent, purges_seen, ..
            } => (agent, purges_seen),
            Gate::Held { verdict, record } => {
                return refused(verdict, record, Refusal::Quarantined);
            }
            Gate::Rejected { verdict, record } => return refused(verdict, record, Refusal::Static),
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
        let run = guard.run(&module, &agent, input, purges_seen)?;
        state.metrics().count(&run.report);
        Ok(Json(RunReport::new(&agent, &run)).into_response())
    })
    .await
}
