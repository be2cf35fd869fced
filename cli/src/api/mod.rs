//! The operator HTTP API (`tdev serve`): `pub fn app(state) -> Router`.
//!
//! Every route under `/v1` but `/v1/healthz`, and `/metrics`, needs `Authorization:
//! Bearer <token>`; each token has scopes and a request rate ([`auth`]). Request heads
//! and bodies are capped, every encoded input is decoded strictly ([`decode`]), runs
//! are bounded by a semaphore (503 with Retry-After past it), and connections by
//! count, read and write timeouts ([`conn`]).

pub mod auth;
mod conn;
mod decode;
mod error;

pub use auth::{Scope, Tokens};
pub use conn::serve;
pub use error::ApiError;

use crate::commands::{
    quarantine::list_json, run::rejected_json, run::run_json, validate::validate_json,
};
use auth::Caller;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use engine::store::{BlobStore, Bucket};
use engine::{Gate, Guard, Quarantine};
use runtime::{ActForm, Input, Sandbox};
use serde_json::{Value, json};
use std::sync::{Arc, MutexGuard, PoisonError};

/// Default cap of a request body: a module is at most a few KB; JSON and base64 add a
/// third.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Default cap of a request head (request line and headers), in bytes.
pub const HEADER_BYTES_LIMIT: usize = 16 * 1024;

/// Default cap of the number of headers in a request (hyper's own default).
pub const HEADER_COUNT_LIMIT: usize = 100;

/// The server's own limits (the sandbox's come from the policy). `tdev serve` sets
/// them from its flags.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Runs and validations in progress at once; past it, 503 with Retry-After.
    pub max_runs: usize,
    /// Largest request body in bytes (with input sent in `X-Tdev-Input`); past it, 413.
    pub max_body_bytes: usize,
    /// Largest request head in bytes; past it, 431.
    pub max_header_bytes: usize,
    /// Most headers in a request; past it, 431.
    pub max_headers: usize,
    /// Open connections at once; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's head, and then its body; an idle
    /// keep-alive connection is closed after it too.
    pub read_timeout: std::time::Duration,
    /// Time an answer may wait without progress for a client to read it; past it the
    /// connection is closed.
    pub write_timeout: std::time::Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_runs: 8,
            max_body_bytes: BODY_LIMIT,
            max_header_bytes: HEADER_BYTES_LIMIT,
            max_headers: HEADER_COUNT_LIMIT,
            max_connections: 256,
            read_timeout: std::time::Duration::from_secs(10),
            write_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Shared state of the server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    sandbox: Sandbox,
    store: Arc<dyn BlobStore>,
    tokens: Tokens,
    runs: Arc<tokio::sync::Semaphore>,
    limits: ServerLimits,
    metrics: std::sync::Mutex<Metrics>,
}

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.total += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for (i, b) in BUCKETS.iter().enumerate() {
            out.push_str(&format!("{name}_bucket{{le=\"{b}\"}} {}\n", self.counts[i]));
        }
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {}\n", self.total));
        out.push_str(&format!(
            "{name}_sum {}\n{name}_count {}\n",
            self.sum, self.total
        ));
    }
}

#[derive(Default)]
struct Metrics {
    runs: std::collections::BTreeMap<String, u64>,
    instantiate: Histogram,
    run: Histogram,
    busy: u64,
    /// 429 answers, by token name.
    rate_limited: std::collections::BTreeMap<String, u64>,
}

impl AppState {
    /// State for a sandbox, a store, the tokens and the server's limits.
    pub fn new(
        sandbox: Sandbox,
        store: Arc<dyn BlobStore>,
        tokens: Tokens,
        limits: ServerLimits,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                sandbox,
                store,
                tokens,
                runs: Arc::new(tokio::sync::Semaphore::new(limits.max_runs.max(1))),
                limits,
                metrics: std::sync::Mutex::new(Metrics::default()),
            }),
        }
    }

    /// The counters; they are plain numbers, so a lock left poisoned by a panic still
    /// holds sound ones.
    fn metrics(&self) -> MutexGuard<'_, Metrics> {
        self.inner
            .metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A place among the runs (and validations) in progress, or 503 past the bound.
    fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.inner.runs.clone().try_acquire_owned().map_err(|_| {
            self.metrics().busy += 1;
            ApiError::Busy
        })
    }

    fn count(&self, outcome: &str) {
        *self.metrics().runs.entry(outcome.to_string()).or_default() += 1;
    }

    /// The caps a run request is checked against.
    fn caps(&self) -> decode::Caps {
        decode::Caps {
            max_body_bytes: self.inner.limits.max_body_bytes,
            input_bytes: self.inner.sandbox.policy().limits.input_bytes,
        }
    }
}

/// The router. Each route names the scope a token needs for it.
pub fn app(state: AppState) -> Router {
    let needs = |scope: Scope, route: MethodRouter<AppState>| {
        route.route_layer(middleware::from_fn_with_state(
            (state.clone(), scope),
            auth::require,
        ))
    };
    let v1 = Router::new()
        .route("/validate", needs(Scope::Run, post(validate)))
        .route("/run", needs(Scope::Run, post(run)))
        .route("/agents/{id}", needs(Scope::Read, get(agent)))
        .route("/agents/{id}/wat", needs(Scope::Read, get(agent_wat)))
        .route("/quarantine", needs(Scope::Read, get(quarantine_list)))
        .route(
            "/quarantine/{id}",
            needs(Scope::Read, get(quarantine_show))
                .merge(needs(Scope::Operate, delete(quarantine_purge))),
        )
        .route(
            "/quarantine/{id}/release",
            needs(Scope::Operate, post(quarantine_release)),
        )
        .route("/evolutions", needs(Scope::Read, get(evolutions)))
        .route("/evolutions/{id}", needs(Scope::Read, get(evolution)))
        .route(
            "/evolutions/{id}/rollback",
            needs(Scope::Operate, post(rollback)),
        )
        .route(
            "/emergency-stop",
            needs(Scope::Operate, post(emergency_stop)),
        )
        .route("/audit", needs(Scope::Read, get(audit)))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }));
    Router::new()
        .route("/", get(dashboard))
        .route("/dashboard.js", get(dashboard_js))
        .route("/metrics", needs(Scope::Read, get(metrics)))
        .nest("/v1", v1)
        // The head caps; the body is read (within its cap) by the token guard, once
        // the token is let in.
        .layer(middleware::from_fn_with_state(state.clone(), check_head))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// Bytes of a request's head as it came on the wire (request line, headers, the
/// blank line).
fn head_bytes(req: &Request) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2
}

/// Set by [`read_body`] on a request whose body it has read to its end.
#[derive(Clone, Default)]
struct BodyRead(Arc<std::sync::atomic::AtomicBool>);

/// Checks the head against its caps (431) and the declared body length against its
/// cap (413), reading no body. A request with a body that was not read to its end
/// (refused before it or while it came, or sent to a route that takes none) has its
/// connection closed after the answer: the rest of the body is not waited for.
async fn check_head(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let limits = &st.inner.limits;
    let head = head_bytes(&req);
    let too_large = if head > limits.max_header_bytes {
        Some(ApiError::HeadersTooLarge {
            len: head,
            max: limits.max_header_bytes,
        })
    } else if req.headers().len() > limits.max_headers {
        Some(ApiError::Status(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ))
    } else {
        None
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let has_body =
        declared.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    let read = BodyRead::default();
    let mut resp = if let Some(e) = too_large {
        // As hyper does with the heads it refuses itself: the connection ends here.
        let mut resp = e.into_response();
        resp.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return resp;
    } else if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        ApiError::Status(axum::http::StatusCode::PAYLOAD_TOO_LARGE).into_response()
    } else {
        req.extensions_mut().insert(read.clone());
        next.run(req).await
    };
    if has_body && !read.0.load(std::sync::atomic::Ordering::Relaxed) {
        resp.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Reads the whole body of a request whose token was let in, within the body cap and
/// the read timeout: a client that trickles its body gets 408 and does not hold a
/// handler; one over the cap gets 413.
async fn read_body(st: &AppState, req: Request) -> Result<Request, Response> {
    let limits = &st.inner.limits;
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, limits.max_body_bytes);
    let collected = tokio::time::timeout(
        limits.read_timeout,
        http_body_util::BodyExt::collect(limited),
    )
    .await;
    match collected {
        Err(_) => Err(ApiError::Status(axum::http::StatusCode::REQUEST_TIMEOUT).into_response()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::Status(axum::http::StatusCode::PAYLOAD_TOO_LARGE).into_response())
        }
        Ok(Err(_)) => {
            Err(ApiError::BadRequest("the request body could not be read".into()).into_response())
        }
        Ok(Ok(body)) => {
            // Read to its end: the connection may serve another request.
            if let Some(r) = parts.extensions.get::<BodyRead>() {
                r.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Request::from_parts(
                parts,
                axum::body::Body::from(body.to_bytes()),
            ))
        }
    }
}

/// Gives every error answer the JSON shape `{"error": {"code", "message"}}`, also the
/// ones axum makes itself (unknown route, wrong method, body over the cap, a path or
/// query that does not parse). Their own text is not passed on: it may quote the
/// request.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, _) = resp.into_parts();
    let mut out = ApiError::Status(parts.status).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Runs blocking work (sandbox, store) off the async threads. A panic there is
/// answered 500 naming `what` (never taken for a result).
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(ApiError::Panicked(what)),
        Err(e) => Err(ApiError::Internal(format!("{what}: {e}"))),
    }
}

/// The query pairs of a request, in order, duplicates kept (so they can be refused).
type Pairs = Query<Vec<(String, String)>>;

async fn validate(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Pairs,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let q = decode::query(q, &[])?;
    let module = decode::run_request(&headers, &q, &body, st.caps())?.module;
    let permit = st.permit()?;
    let sandbox = st.inner.sandbox.clone();
    blocking("the validation", move || {
        let _permit = permit;
        let v = sandbox.validate(&module);
        Ok(Json(validate_json(&v, sandbox.policy())))
    })
    .await
}

async fn run(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Pairs,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let q = decode::query(q, &["args"])?;
    let decode::RunRequest {
        module,
        input,
        args,
    } = decode::run_request(&headers, &q, &body, st.caps())?;
    let permit = st.permit()?;
    let sandbox = st.inner.sandbox.clone();
    let store = st.inner.store.clone();
    let state = st.clone();
    blocking("the run", move || {
        let _permit = permit;
        let guard = Guard::new(sandbox, Quarantine::new(store));
        let (agent, purges_seen) = match guard.admit(&module)? {
            Gate::Admitted {
                agent, purges_seen, ..
            } => (agent, purges_seen),
            Gate::Held { verdict, record } => {
                state.count("rejected");
                return Ok(Json(rejected_json(&verdict, &record, "quarantined")));
            }
            Gate::Rejected { verdict, record } => {
                state.count("rejected");
                return Ok(Json(rejected_json(&verdict, &record, "static")));
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
        let run = guard.run(&module, &agent, input, purges_seen)?;
        {
            let mut m = state.metrics();
            *m.runs.entry(run.report.outcome.to_string()).or_default() += 1;
            if let Some(t) = run.report.instantiate {
                m.instantiate.observe(t.as_secs_f64());
            }
            m.run.observe(run.report.wall.as_secs_f64());
        }
        Ok(Json(run_json(&agent, &run)))
    })
    .await
}

async fn agent(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = decode::agent_id(&id)?;
    let store = st.inner.store.clone();
    blocking("the agent lookup", move || {
        let q = Quarantine::new(store.clone());
        let record = q.get(&id)?;
        let module = q.module(&id)?;
        let meta = store
            .get(Bucket::Agents, &format!("metadata/{}.json", &id[7..]))?
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        if record.is_none() && module.is_none() && meta.is_none() {
            return Err(ApiError::NotFound(format!("no agent {id}")));
        }
        Ok(Json(json!({
            "agent_id": id,
            "size_bytes": module.as_ref().map(|m| m.len()),
            "quarantine": record.map(|r| serde_json::to_value(r.status).unwrap_or(Value::Null)),
            "metadata": meta,
        })))
    })
    .await
}

async fn agent_wat(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = decode::agent_id(&id)?;
    let store = st.inner.store.clone();
    let sandbox = st.inner.sandbox.clone();
    blocking("the text form", move || {
        // Quarantine::module checks the bytes against their id.
        let bytes = Quarantine::new(store)
            .module(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("no module {id}")))?;
        Ok(Json(
            json!({"agent_id": id, "wat": runtime::text_form(sandbox.policy(), &bytes)}),
        ))
    })
    .await
}

async fn quarantine_list(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = st.inner.store.clone();
    blocking("the quarantine list", move || {
        Ok(Json(list_json(&Quarantine::new(store).list()?)))
    })
    .await
}

async fn quarantine_show(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = decode::agent_id(&id)?;
    let store = st.inner.store.clone();
    let sandbox = st.inner.sandbox.clone();
    blocking("the quarantine record", move || {
        let q = Quarantine::new(store);
        let r = q.require(&id)?;
        let wat = q
            .module(&id)?
            .and_then(|b| runtime::text_form(sandbox.policy(), &b));
        let mut v = serde_json::to_value(&r).map_err(|e| ApiError::Internal(e.to_string()))?;
        v["wat"] = json!(wat);
        v["lineage"] = json!(r.parents);
        Ok(Json(v))
    })
    .await
}

/// A quarantine decision (release or purge) on a validated id, recorded in the
/// record's audit trail.
async fn decide(
    st: AppState,
    id: String,
    caller: Caller,
    what: &'static str,
    act: fn(&Quarantine, &str, &str) -> engine::Result<engine::Record>,
) -> Result<Json<Value>, ApiError> {
    let id = decode::agent_id(&id)?;
    let store = st.inner.store.clone();
    // The audit entry names the token (never its secret).
    let by = format!("tdev serve API (token {})", caller.0);
    blocking(what, move || {
        let r = act(&Quarantine::new(store), &id, &by)?;
        Ok(Json(
            serde_json::to_value(&r).map_err(|e| ApiError::Internal(e.to_string()))?,
        ))
    })
    .await
}

async fn quarantine_release(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(st, id, caller, "the release", Quarantine::release).await
}

async fn quarantine_purge(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(st, id, caller, "the purge", Quarantine::purge).await
}

async fn evolutions(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = st.inner.store.clone();
    blocking("the evolution list", move || {
        Ok(Json(
            json!({"evolutions": engine::evolve::list(store.as_ref())?}),
        ))
    })
    .await
}

async fn evolution(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = decode::evolution_id(&id)?;
    let store = st.inner.store.clone();
    blocking("the evolution", move || {
        let head = engine::evolve::head_generation(store.as_ref(), &id)?;
        let mut generations = Vec::new();
        for key in store.list(Bucket::Evolution, &format!("fitness_logs/{id}/"))? {
            if !key.ends_with(".json") {
                continue;
            }
            if let Some(b) = store.get(Bucket::Evolution, &key)?
                && let Ok(v) = serde_json::from_slice::<Value>(&b)
                && v["generation"]
                    .as_u64()
                    .is_some_and(|g| g <= u64::from(head))
            {
                generations.push(json!({
                    "generation": v["generation"],
                    "best_error": v["best_error"],
                    "mean_error": v["mean_error"],
                    "culled": v["culled"],
                    "evaluations": v["evaluations"],
                }));
            }
        }
        Ok(Json(
            json!({"evolution_id": id, "head_generation": head, "generations": generations}),
        ))
    })
    .await
}

async fn rollback(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Pairs,
) -> Result<Json<Value>, ApiError> {
    let id = decode::evolution_id(&id)?;
    let q = decode::query(q, &["generation"])?;
    let generation = decode::generation(
        q.get("generation")
            .ok_or_else(|| ApiError::BadRequest("?generation=N needed".into()))?,
    )?;
    let store = st.inner.store.clone();
    eprintln!(
        "tdev serve: token {} rolls {id} back to generation {generation}",
        caller.0
    );
    blocking("the rollback", move || {
        engine::evolve::rollback(store.as_ref(), &id, generation)?;
        record(
            store.as_ref(),
            "rolled_back",
            &format!(
                "evolution {id} to generation {generation} by tdev serve API (token {})",
                caller.0
            ),
        )?;
        Ok(Json(
            json!({"evolution_id": id, "head_generation": generation}),
        ))
    })
    .await
}

/// What the dashboard may load: its own script and the API, nothing from outside, no
/// inline script (so an injected handler attribute could not run either).
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The dashboard: one page, no outside resources; it asks for the token and calls
/// the API from the browser. Text from modules is set with `textContent` only.
async fn dashboard() -> Response {
    page("text/html; charset=utf-8", include_str!("dashboard.html"))
}

/// The dashboard's script.
async fn dashboard_js() -> Response {
    page(
        "text/javascript; charset=utf-8",
        include_str!("dashboard.js"),
    )
}

/// Prometheus text: runs by outcome, instantiate and run latency, quarantine size,
/// evolutions' head generation and best error.
async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let store = st.inner.store.clone();
    let (quarantined, evolutions) = blocking("the metrics", move || {
        let q = Quarantine::new(store.clone()).list()?;
        let e = engine::evolve::list(store.as_ref())?;
        Ok((q, e))
    })
    .await?;
    let mut out = String::new();
    {
        let m = st.metrics();
        out.push_str("# HELP tdev_runs_total Runs served, by outcome word.\n# TYPE tdev_runs_total counter\n");
        for (k, v) in &m.runs {
            out.push_str(&format!("tdev_runs_total{{outcome=\"{k}\"}} {v}\n"));
        }
        out.push_str(&format!(
            "# HELP tdev_runs_refused_total Runs refused past the concurrency bound.\n# TYPE tdev_runs_refused_total counter\ntdev_runs_refused_total {}\n",
            m.busy
        ));
        out.push_str("# HELP tdev_requests_rate_limited_total Requests refused past their token's rate, by token name.\n# TYPE tdev_requests_rate_limited_total counter\n");
        for (name, n) in &m.rate_limited {
            out.push_str(&format!(
                "tdev_requests_rate_limited_total{{token=\"{name}\"}} {n}\n"
            ));
        }
        m.instantiate.render(
            "tdev_instantiate_seconds",
            "Store set-up and instantiation time.",
            &mut out,
        );
        m.run.render(
            "tdev_run_seconds",
            "Wall time of a run (instantiate and call).",
            &mut out,
        );
    }
    let held = quarantined
        .iter()
        .filter(|r| r.status == engine::Status::Quarantined)
        .count();
    out.push_str(&format!(
        "# HELP tdev_quarantine_modules Modules held in quarantine.\n# TYPE tdev_quarantine_modules gauge\ntdev_quarantine_modules {held}\n"
    ));
    out.push_str("# HELP tdev_evolution_generation Head generation of each evolution.\n# TYPE tdev_evolution_generation gauge\n");
    for e in &evolutions {
        out.push_str(&format!(
            "tdev_evolution_generation{{evolution_id=\"{}\"}} {}\n",
            e["evolution_id"].as_str().unwrap_or(""),
            e["head_generation"]
        ));
    }
    out.push_str("# HELP tdev_evolution_best_error Best train error of each evolution.\n# TYPE tdev_evolution_best_error gauge\n");
    for e in &evolutions {
        let best = e["best_error"].as_f64().unwrap_or(f64::NAN);
        out.push_str(&format!(
            "tdev_evolution_best_error{{evolution_id=\"{}\"}} {}\n",
            e["evolution_id"].as_str().unwrap_or(""),
            if best.is_finite() {
                best.to_string()
            } else {
                "NaN".into()
            }
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// Where the operator actions that concern no agent (rollbacks, emergency stops) are
/// recorded: one object per action, never rewritten.
const AUDIT_PREFIX: &str = "audit/";

/// An operator action that concerns no agent, in the audit log that `GET /v1/audit`
/// serves.
#[derive(serde::Serialize, serde::Deserialize)]
struct Action {
    at: String,
    action: String,
    detail: String,
}

/// Records an action done (`rolled_back`, `emergency_stop`) with `detail` naming the
/// token. The action is done already: a record that cannot be written is a 500 that
/// says so.
fn record(store: &dyn BlobStore, action: &str, detail: &str) -> Result<(), ApiError> {
    let entry = Action {
        at: engine::time::now_rfc3339(),
        action: action.to_string(),
        detail: detail.to_string(),
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| ApiError::Internal(e.to_string()))?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let failed = |e: String| {
        ApiError::Internal(format!(
            "{action} was done, but its audit entry could not be written: {e}"
        ))
    };
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

/// Every quarantine decision, rollback and emergency stop, newest first: `{"audit":
/// [{"at", "agent_id", "action", "detail"}]}` (`agent_id` is null for the last two).
async fn audit(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = st.inner.store.clone();
    blocking("the audit log", move || {
        let q = Quarantine::new(store.clone());
        let mut events = Vec::new();
        for key in store.list(Bucket::Agents, "quarantine/")? {
            let Some(hex) = key.strip_prefix("quarantine/").and_then(|k| k.strip_suffix(".json")) else {
                continue;
            };
            if let Some(r) = q.get(&format!("sha256:{hex}"))? {
                for a in &r.audit {
                    events.push(json!({"at": a.at, "agent_id": r.agent_id, "action": a.action, "detail": a.detail}));
                }
            }
        }
        for key in store.list(Bucket::Agents, AUDIT_PREFIX)? {
            // An entry that is not one (written by hand, or cut short) is left out.
            if let Some(a) = store
                .get(Bucket::Agents, &key)?
                .and_then(|b| serde_json::from_slice::<Action>(&b).ok())
            {
                events.push(json!({"at": a.at, "agent_id": null, "action": a.action, "detail": a.detail}));
            }
        }
        events.sort_by(|a, b| b["at"].as_str().cmp(&a["at"].as_str()));
        Ok(Json(json!({"audit": events})))
    })
    .await
}

async fn emergency_stop(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    eprintln!("tdev serve: token {} pulls the emergency stop", caller.0);
    st.inner.sandbox.stop_handle().stop();
    let store = st.inner.store.clone();
    blocking("the emergency stop", move || {
        crate::commands::evolve::request_stop(store.as_ref())?;
        record(
            store.as_ref(),
            "emergency_stop",
            &format!("tdev serve API (token {})", caller.0),
        )?;
        Ok(Json(json!({"stopped": true})))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use tower::ServiceExt;

    fn state() -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            engine::store::open(&format!("file://{}", dir.path().display())).expect("store");
        let sandbox = Sandbox::new(runtime::Policy::default_policy()).expect("sandbox");
        (
            AppState::new(
                sandbox,
                store,
                Tokens::new(vec![
                    auth::Token::all_scopes("default", "t0ken", auth::DEFAULT_RATE).expect("token"),
                ])
                .expect("tokens"),
                ServerLimits {
                    max_runs: 2,
                    ..ServerLimits::default()
                },
            ),
            dir,
        )
    }

    async fn call(app: Router, req: HttpRequest<Body>) -> (StatusCode, Value) {
        let resp = app.oneshot(req).await.expect("response");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), BODY_LIMIT)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[test]
    fn a_panic_on_a_blocking_thread_is_a_500_naming_the_task() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let r: Result<u32, ApiError> =
                blocking("the test task", || panic!("a panic on purpose")).await;
            let resp = match r {
                Err(e @ ApiError::Panicked("the test task")) => e.into_response(),
                other => panic!("a panic was taken for {other:?}"),
            };
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::body::to_bytes(resp.into_body(), BODY_LIMIT)
                .await
                .expect("body");
            let v: Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(v["error"]["code"], "internal");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("the test task")),
                "{v}"
            );
            // an answer that is not a panic passes through untouched
            assert_eq!(blocking("x", || Ok(7)).await.ok(), Some(7));
        });
    }

    #[test]
    fn oneshot_routes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let (st, _dir) = state();
            let app = app(st);
            let get = |uri: &str, token: Option<&str>| {
                let mut b = HttpRequest::builder().uri(uri);
                if let Some(t) = token {
                    b = b.header("authorization", format!("Bearer {t}"));
                }
                b.body(Body::empty()).expect("request")
            };
            let (s, v) = call(app.clone(), get("/v1/healthz", None)).await;
            assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
            let (s, v) = call(app.clone(), get("/v1/evolutions", None)).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            assert_eq!(v["error"]["code"], "unauthorized");
            let (s, v) = call(app.clone(), get("/v1/evolutions", Some("t0ken"))).await;
            assert_eq!(s, StatusCode::OK);
            // the scheme is case-insensitive (RFC 9110); the token is not
            for (header, want) in [
                ("bearer t0ken", StatusCode::OK),
                ("BEARER t0ken", StatusCode::OK),
                ("Bearer T0KEN", StatusCode::UNAUTHORIZED),
                ("Bearer  t0ken ", StatusCode::OK),
                ("Basic t0ken", StatusCode::UNAUTHORIZED),
                ("t0ken", StatusCode::UNAUTHORIZED),
                ("Bearer", StatusCode::UNAUTHORIZED),
            ] {
                let req = HttpRequest::builder()
                    .uri("/v1/evolutions")
                    .header("authorization", header)
                    .body(Body::empty())
                    .expect("request");
                assert_eq!(call(app.clone(), req).await.0, want, "{header}");
            }
            assert_eq!(v["evolutions"], serde_json::json!([]));
            let (s, _) = call(app.clone(), get("/v1/quarantine/not-an-id", Some("t0ken"))).await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
            // axum's own answers get the JSON error shape too
            let (s, v) = call(app.clone(), get("/v1/nothing", Some("t0ken"))).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::NOT_FOUND, Some("not_found"))
            );
            let (s, v) = call(app.clone(), get("/v1/run", Some("t0ken"))).await;
            assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(v["error"]["code"], "method_not_allowed");
            let big = HttpRequest::builder()
                .method("POST")
                .uri("/v1/validate")
                .header("authorization", "Bearer t0ken")
                .body(Body::from(vec![0u8; BODY_LIMIT + 1]))
                .expect("request");
            let (s, v) = call(app.clone(), big).await;
            assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(v["error"]["code"], "payload_too_large");
            let (s, v) = call(
                app.clone(),
                get("/v1/evolutions/x/rollback?generation=1", Some("t0ken")),
            )
            .await;
            assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
            let bad_utf8 = get("/v1/quarantine/%FF%FE", Some("t0ken"));
            let (s, v) = call(app, bad_utf8).await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
            assert!(v["error"]["message"].is_string());
        });
    }
}
