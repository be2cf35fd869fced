//! The operator HTTP API (`tdev serve`): `pub fn app(state) -> Router`.
//!
//! Every route under `/v1` but `/v1/healthz` needs `Authorization: Bearer <token>`,
//! compared in constant time. Bodies are capped; agent ids are validated before they
//! touch the store; runs are bounded by a semaphore (503 with Retry-After past it).

mod error;

pub use error::ApiError;

use crate::commands::{
    quarantine::list_json, run::rejected_json, run::run_json, validate::validate_json,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::store::{BlobStore, Bucket};
use engine::{Gate, Guard, Quarantine};
use runtime::{ActForm, Input, Sandbox};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Default cap of a request body: a module is at most a few KB; JSON and base64 add a
/// third.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The server's own limits (the sandbox's come from the policy). `tdev serve` sets
/// them from its flags.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Runs and validations in progress at once; past it, 503 with Retry-After.
    pub max_runs: usize,
    /// Largest request body in bytes; past it, 413.
    pub max_body_bytes: usize,
    /// Open connections at once; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's head, and then its body; an idle
    /// keep-alive connection is closed after it too.
    pub read_timeout: std::time::Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_runs: 8,
            max_body_bytes: BODY_LIMIT,
            max_connections: 256,
            read_timeout: std::time::Duration::from_secs(10),
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
    token: String,
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
}

impl AppState {
    /// State for a sandbox, a store, the bearer token and the server's limits.
    pub fn new(
        sandbox: Sandbox,
        store: Arc<dyn BlobStore>,
        token: String,
        limits: ServerLimits,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                sandbox,
                store,
                token,
                runs: Arc::new(tokio::sync::Semaphore::new(limits.max_runs.max(1))),
                limits,
                metrics: std::sync::Mutex::new(Metrics::default()),
            }),
        }
    }
}

impl AppState {
    /// A place among the runs (and validations) in progress, or 503 past the bound.
    fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.inner.runs.clone().try_acquire_owned().map_err(|_| {
            if let Ok(mut m) = self.inner.metrics.lock() {
                m.busy += 1;
            }
            ApiError::Busy
        })
    }

    fn count(&self, outcome: &str) {
        if let Ok(mut m) = self.inner.metrics.lock() {
            *m.runs.entry(outcome.to_string()).or_default() += 1;
        }
    }
}

/// The router.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/validate", post(validate))
        .route("/run", post(run))
        .route("/agents/{id}", get(agent))
        .route("/agents/{id}/wat", get(agent_wat))
        .route("/quarantine", get(quarantine_list))
        .route(
            "/quarantine/{id}",
            get(quarantine_show).delete(quarantine_purge),
        )
        .route("/quarantine/{id}/release", post(quarantine_release))
        .route("/evolutions", get(evolutions))
        .route("/evolutions/{id}", get(evolution))
        .route("/evolutions/{id}/rollback", post(rollback))
        .route("/emergency-stop", post(emergency_stop))
        .route("/audit", get(audit))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }));
    let metrics_route = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/", get(dashboard))
        .route("/dashboard.js", get(dashboard_js))
        .nest("/v1", v1)
        .merge(metrics_route)
        // The one body cap: `read_body` buffers every body within it.
        .layer(middleware::from_fn_with_state(state.clone(), read_body))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// Reads the whole body first, within the body cap and the read timeout: a client that
/// trickles its body gets 408 and does not hold a handler; one over the cap gets 413.
async fn read_body(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &st.inner.limits;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return ApiError::Status(axum::http::StatusCode::PAYLOAD_TOO_LARGE).into_response();
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, limits.max_body_bytes);
    let collected = tokio::time::timeout(
        limits.read_timeout,
        http_body_util::BodyExt::collect(limited),
    )
    .await;
    match collected {
        Err(_) => ApiError::Status(axum::http::StatusCode::REQUEST_TIMEOUT).into_response(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            ApiError::Status(axum::http::StatusCode::PAYLOAD_TOO_LARGE).into_response()
        }
        Ok(Err(_)) => {
            ApiError::BadRequest("the request body could not be read".into()).into_response()
        }
        Ok(Ok(body)) => {
            next.run(Request::from_parts(
                parts,
                axum::body::Body::from(body.to_bytes()),
            ))
            .await
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, under the server's limits:
/// at most `max_connections` connections at once, each closed when a request's head
/// takes longer than `read_timeout` to arrive (or a keep-alive connection idles that
/// long).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = &mut shutdown => return,
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait, go on.
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        format!("tdev serve: accept failed: {e}\n").as_bytes(),
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let timeout = limits.read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    if constant_time_eq(given.as_bytes(), st.inner.token.as_bytes()) {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Runs blocking work (sandbox, store) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

fn agent_id(given: &str) -> Result<String, ApiError> {
    if runtime::is_agent_id(given) {
        Ok(given.to_string())
    } else {
        Err(ApiError::BadRequest(
            "an agent id is sha256: and 64 lowercase hex digits".into(),
        ))
    }
}

fn unbase64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// (module bytes, input bytes, typed arguments) of a request.
type RunRequest = (Vec<u8>, Option<Vec<u8>>, Option<String>);

/// The module, input and args of a request: `application/wasm` bytes with `?args=` or
/// an `X-Tdev-Input` hex header, or JSON `{"module_b64", "input_b64", "args"}`.
fn parse_request(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<RunRequest, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
        let module = v["module_b64"]
            .as_str()
            .and_then(unbase64)
            .ok_or_else(|| ApiError::BadRequest("module_b64: base64 module bytes needed".into()))?;
        let input = match &v["input_b64"] {
            Value::Null => None,
            Value::String(s) => Some(
                unbase64(s).ok_or_else(|| ApiError::BadRequest("input_b64: not base64".into()))?,
            ),
            _ => return Err(ApiError::BadRequest("input_b64: a string".into())),
        };
        let args = match &v["args"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => Some(
                a.iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => Err(ApiError::BadRequest("args: numbers or strings".into())),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
            ),
            _ => return Err(ApiError::BadRequest("args: a string or an array".into())),
        };
        return Ok((module, input, args));
    }
    let input = match headers.get("x-tdev-input") {
        None => None,
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(runtime::from_hex)
                .ok_or_else(|| ApiError::BadRequest("X-Tdev-Input: hex bytes".into()))?,
        ),
    };
    Ok((body.to_vec(), input, query.get("args").cloned()))
}

async fn validate(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (module, _, _) = parse_request(&headers, &q, &body)?;
    let permit = st.permit()?;
    let sandbox = st.inner.sandbox.clone();
    blocking(move || {
        let _permit = permit;
        let v = sandbox.validate(&module);
        Ok(Json(validate_json(&v, sandbox.policy())))
    })
    .await
}

async fn run(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (module, input, args) = parse_request(&headers, &q, &body)?;
    let permit = st.permit()?;
    let sandbox = st.inner.sandbox.clone();
    let store = st.inner.store.clone();
    let state = st.clone();
    blocking(move || {
        let _permit = permit;
        let guard = Guard::new(sandbox, Quarantine::new(store));
        let agent = match guard.admit(&module)? {
            Gate::Admitted { agent, .. } => agent,
            Gate::Held { verdict, record } => {
                state.count("rejected");
                return Ok(Json(rejected_json(&verdict, &record, "quarantined")));
            }
            Gate::Rejected { verdict, record } => {
                state.count("rejected");
                return Ok(Json(rejected_json(&verdict, &record, "static")));
            }
        };
        let t = std::time::Instant::now();
        let instantiated = guard.sandbox().instantiate_only(&agent);
        let inst = t.elapsed().as_secs_f64();
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
        let run = guard.run(&module, &agent, input)?;
        if let Ok(mut m) = state.inner.metrics.lock() {
            *m.runs.entry(run.report.outcome.to_string()).or_default() += 1;
            if instantiated {
                m.instantiate.observe(inst);
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
    let id = agent_id(&id)?;
    let store = st.inner.store.clone();
    blocking(move || {
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
    let id = agent_id(&id)?;
    let store = st.inner.store.clone();
    let sandbox = st.inner.sandbox.clone();
    blocking(move || {
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
    blocking(move || Ok(Json(list_json(&Quarantine::new(store).list()?)))).await
}

async fn quarantine_show(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = agent_id(&id)?;
    let store = st.inner.store.clone();
    let sandbox = st.inner.sandbox.clone();
    blocking(move || {
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
    act: fn(&Quarantine, &str, &str) -> engine::Result<engine::Record>,
) -> Result<Json<Value>, ApiError> {
    let id = agent_id(&id)?;
    let store = st.inner.store.clone();
    blocking(move || {
        let r = act(&Quarantine::new(store), &id, "tdev serve API")?;
        Ok(Json(
            serde_json::to_value(&r).map_err(|e| ApiError::Internal(e.to_string()))?,
        ))
    })
    .await
}

async fn quarantine_release(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(st, id, Quarantine::release).await
}

async fn quarantine_purge(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(st, id, Quarantine::purge).await
}

async fn evolutions(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = st.inner.store.clone();
    blocking(move || {
        Ok(Json(
            json!({"evolutions": engine::evolve::list(store.as_ref())?}),
        ))
    })
    .await
}

fn evolution_id(id: &str) -> Result<String, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id.to_string())
    } else {
        Err(ApiError::BadRequest(
            "an evolution id is letters, digits, - and _".into(),
        ))
    }
}

async fn evolution(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = evolution_id(&id)?;
    let store = st.inner.store.clone();
    blocking(move || {
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
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id = evolution_id(&id)?;
    let generation: u32 = q
        .get("generation")
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| ApiError::BadRequest("?generation=N needed".into()))?;
    let store = st.inner.store.clone();
    blocking(move || {
        engine::evolve::rollback(store.as_ref(), &id, generation)?;
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
    let (quarantined, evolutions) = blocking(move || {
        let q = Quarantine::new(store.clone()).list()?;
        let e = engine::evolve::list(store.as_ref())?;
        Ok((q, e))
    })
    .await?;
    let mut out = String::new();
    if let Ok(m) = st.inner.metrics.lock() {
        out.push_str("# HELP tdev_runs_total Runs served, by outcome word.\n# TYPE tdev_runs_total counter\n");
        for (k, v) in &m.runs {
            out.push_str(&format!("tdev_runs_total{{outcome=\"{k}\"}} {v}\n"));
        }
        out.push_str(&format!(
            "# HELP tdev_runs_refused_total Runs refused past the concurrency bound.\n# TYPE tdev_runs_refused_total counter\ntdev_runs_refused_total {}\n",
            m.busy
        ));
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

/// Every quarantine decision, newest first: `{"audit": [{"at", "agent_id", "action",
/// "detail"}]}`.
async fn audit(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = st.inner.store.clone();
    blocking(move || {
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
        events.sort_by(|a, b| b["at"].as_str().cmp(&a["at"].as_str()));
        Ok(Json(json!({"audit": events})))
    })
    .await
}

async fn emergency_stop(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    st.inner.sandbox.stop_handle().stop();
    let store = st.inner.store.clone();
    blocking(move || {
        crate::commands::evolve::request_stop(store.as_ref())?;
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
                "t0ken".into(),
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
