//! The operator HTTP API (`tdev serve`): `pub fn app(state) -> Router`.
//!
//! Every route under `/v1` but `/v1/healthz`, and `/metrics`, needs `Authorization:
//! Bearer <token>`; each token has scopes and a request rate ([`auth`]). Request heads
//! and bodies are capped ([`middleware`]), every encoded input is decoded strictly
//! ([`decode`], [`extract`]), runs are bounded by a semaphore (503 with Retry-After past
//! it), and connections by count, read and write timeouts ([`server`]).
//!
//! The routes, by group: runs and validations ([`runs`]), agents ([`agents`]), the
//! quarantine ([`quarantine`]), evolutions and the emergency stop ([`evolutions`]), the
//! audit log ([`audit`]), the counters ([`metrics`]) and the [`dashboard`].

pub mod agents;
pub mod audit;
pub mod auth;
pub mod dashboard;
pub mod decode;
mod error;
pub mod evolutions;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod quarantine;
pub mod runs;
pub mod server;

pub use auth::{Scope, Tokens};
pub use error::ApiError;
pub use server::serve;

use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use engine::store::BlobStore;
use runtime::Sandbox;
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
    metrics: std::sync::Mutex<metrics::Metrics>,
    /// The newest stop marker this server has acted on (its own stops included), so
    /// that [`AppState::watch_stops`] acts on each stop once.
    stop_seen: std::sync::Mutex<Option<String>>,
    /// Where quarantines, stops and limit hits are sent (`--alerts`), if anywhere.
    alerts: std::sync::OnceLock<Arc<engine::alerts::Alerts>>,
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
                metrics: std::sync::Mutex::new(metrics::Metrics::default()),
                stop_seen: std::sync::Mutex::new(None),
                alerts: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Sends this server's events to `alerts` from now on.
    pub fn with_alerts(self, alerts: Arc<engine::alerts::Alerts>) -> Self {
        // A fresh state: nothing was set yet.
        let _ = self.inner.alerts.set(alerts);
        self
    }

    /// The alerts, if the server has any.
    fn alerts(&self) -> Option<&engine::alerts::Alerts> {
        self.inner.alerts.get().map(|a| a.as_ref())
    }

    /// Marks a stop marker as acted on; true when it is newer than any before.
    fn see_stop(&self, at: String) -> bool {
        let mut seen = self
            .inner
            .stop_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.as_ref().is_some_and(|s| *s >= at) {
            return false;
        }
        *seen = Some(at);
        true
    }

    /// Polls the store's stop marker every `every` on a thread of its own and
    /// interrupts this server's runs when a stop is asked for through another replica
    /// (or `tdev stop`): several servers on one store stop as one. A stop older than
    /// the server is not acted on.
    pub fn watch_stops(&self, every: std::time::Duration) -> std::io::Result<()> {
        if let Ok(Some(at)) = engine::control::stop_requested_at(self.inner.store.as_ref()) {
            self.see_stop(at);
        }
        let state = self.clone();
        std::thread::Builder::new()
            .name("tdev-stop-watch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    // A read that fails is tried again at the next poll.
                    if let Ok(Some(at)) =
                        engine::control::stop_requested_at(state.inner.store.as_ref())
                        && state.see_stop(at.clone())
                    {
                        eprintln!("tdev serve: the stop of {at} on the store interrupts this server's runs");
                        state.inner.sandbox.stop_handle().stop();
                    }
                }
            })
            .map(|_| ())
    }

    /// The counters; they are plain numbers, so a lock left poisoned by a panic still
    /// holds sound ones.
    fn metrics(&self) -> MutexGuard<'_, metrics::Metrics> {
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

    /// The caps a run request is checked against.
    fn caps(&self) -> decode::Caps {
        decode::Caps {
            max_body_bytes: self.inner.limits.max_body_bytes,
            input_bytes: self.inner.sandbox.policy().limits.input_bytes,
        }
    }

    /// The store, for a blocking task.
    fn store(&self) -> Arc<dyn BlobStore> {
        self.inner.store.clone()
    }

    /// The sandbox, for a blocking task.
    fn sandbox(&self) -> Sandbox {
        self.inner.sandbox.clone()
    }
}

/// The router. Each route names the scope a token needs for it.
pub fn app(state: AppState) -> Router {
    let needs = |scope: Scope, route: MethodRouter<AppState>| {
        route.route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), scope),
            middleware::require,
        ))
    };
    let v1 = Router::new()
        .route("/validate", needs(Scope::Run, post(runs::validate)))
        .route("/run", needs(Scope::Run, post(runs::run)))
        .route("/agents/{id}", needs(Scope::Read, get(agents::agent)))
        .route("/agents/{id}/wat", needs(Scope::Read, get(agents::text)))
        .route("/quarantine", needs(Scope::Read, get(quarantine::list)))
        .route(
            "/quarantine/{id}",
            needs(Scope::Read, get(quarantine::show))
                .merge(needs(Scope::Operate, delete(quarantine::purge))),
        )
        .route(
            "/quarantine/{id}/release",
            needs(Scope::Operate, post(quarantine::release)),
        )
        .route("/evolutions", needs(Scope::Read, get(evolutions::list)))
        .route(
            "/evolutions/{id}",
            needs(Scope::Read, get(evolutions::show)),
        )
        .route(
            "/evolutions/{id}/rollback",
            needs(Scope::Operate, post(evolutions::rollback)),
        )
        .route(
            "/emergency-stop",
            needs(Scope::Operate, post(evolutions::emergency_stop)),
        )
        .route("/audit", needs(Scope::Read, get(audit::log)))
        .route(
            "/healthz",
            get(|| async { Json(crate::report::Health { status: "ok" }) }),
        );
    Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .route("/metrics", needs(Scope::Read, get(metrics::render)))
        .nest("/v1", v1)
        // The head caps; the body is read (within its cap) by the token guard, once
        // the token is let in.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::check_head,
        ))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .with_state(state)
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

#[cfg(test)]
mod tests;
