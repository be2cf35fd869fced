//! `GET /metrics`: the server's counters in the Prometheus text format.
//!
//! Hand-written: the text format is a few lines per series, and a client crate would
//! bring a registry and its own locking for the handful of counters kept here.

use super::{ApiError, AppState, blocking};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use engine::Quarantine;
use engine::records::EvolutionEntry;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1.0,
];

/// A latency histogram with the [`BUCKETS`] bounds.
#[derive(Default)]
pub(super) struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

impl Histogram {
    /// Counts one observation of `secs`.
    pub(super) fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.total += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.total);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.total);
    }
}

/// The server's counters.
#[derive(Default)]
pub(super) struct Metrics {
    /// Runs answered, by outcome word.
    pub(super) runs: BTreeMap<String, u64>,
    /// Store set-up and instantiation time.
    pub(super) instantiate: Histogram,
    /// Wall time of a run.
    pub(super) run: Histogram,
    /// Runs refused past `--max-runs`.
    pub(super) busy: u64,
    /// 429 answers, by token name.
    pub(super) rate_limited: BTreeMap<String, u64>,
}

impl Metrics {
    /// Counts a run's outcome and its latencies.
    pub(super) fn count(&mut self, report: &runtime::RunReport) {
        *self.runs.entry(report.outcome.to_string()).or_default() += 1;
        if let Some(t) = report.instantiate {
            self.instantiate.observe(t.as_secs_f64());
        }
        self.run.observe(report.wall.as_secs_f64());
    }

    /// Counts a module that did not run.
    pub(super) fn count_rejected(&mut self) {
        *self.runs.entry("rejected".to_string()).or_default() += 1;
    }

    fn render(&self, out: &mut String) {
        out.push_str("# HELP tdev_runs_total Runs served, by outcome word.\n# TYPE tdev_runs_total counter\n");
        for (k, v) in &self.runs {
            let _ = writeln!(out, "tdev_runs_total{{outcome=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP tdev_runs_refused_total Runs refused past the concurrency bound.\n# TYPE tdev_runs_refused_total counter\ntdev_runs_refused_total {}",
            self.busy
        );
        out.push_str("# HELP tdev_requests_rate_limited_total Requests refused past their token's rate, by token name.\n# TYPE tdev_requests_rate_limited_total counter\n");
        for (name, n) in &self.rate_limited {
            let _ = writeln!(
                out,
                "tdev_requests_rate_limited_total{{token=\"{name}\"}} {n}"
            );
        }
        self.instantiate.render(
            "tdev_instantiate_seconds",
            "Store set-up and instantiation time.",
            out,
        );
        self.run.render(
            "tdev_run_seconds",
            "Wall time of a run (instantiate and call).",
            out,
        );
    }
}

/// A gauge per evolution: its name, its help and the value of each evolution.
type Gauge = (&'static str, &'static str, fn(&EvolutionEntry) -> String);

/// Prometheus text: runs by outcome, instantiate and run latency, quarantine size,
/// evolutions' head generation and best error.
pub async fn render(State(st): State<AppState>) -> Result<Response, ApiError> {
    let store = st.store();
    let (quarantined, evolutions) = blocking("the metrics", move || {
        let q = Quarantine::new(store.clone()).list()?;
        let e = engine::evolve::list(store.as_ref())?;
        Ok((q, e))
    })
    .await?;
    let mut out = String::new();
    st.metrics().render(&mut out);
    let held = quarantined
        .iter()
        .filter(|r| r.status == engine::Status::Quarantined)
        .count();
    let _ = writeln!(
        out,
        "# HELP tdev_quarantine_modules Modules held in quarantine.\n# TYPE tdev_quarantine_modules gauge\ntdev_quarantine_modules {held}"
    );
    let gauges: [Gauge; 8] = [
        (
            "tdev_evolution_generation",
            "Head generation of each evolution.",
            |e| e.head_generation.to_string(),
        ),
        (
            "tdev_evolution_best_error",
            "Best train error of each evolution.",
            |e| {
                if e.best_error.is_finite() {
                    e.best_error.to_string()
                } else {
                    "NaN".into()
                }
            },
        ),
        (
            "tdev_evolution_quarantined",
            "Modules each evolution quarantined (records written).",
            |e| e.quarantined.to_string(),
        ),
        (
            "tdev_evolution_quarantine_withheld",
            "Modules due for quarantine that each evolution counted but did not write (over its cap per outcome and generation).",
            |e| e.quarantine_withheld.to_string(),
        ),
        (
            "tdev_evolution_proposals_used",
            "Candidates from a proposer that took an offspring's place, per evolution.",
            |e| e.proposals.map_or(0, |p| p.used).to_string(),
        ),
        (
            "tdev_evolution_proposals_rejected",
            "Candidates from a proposer refused at admission (not a module, rejected, wrong signature), per evolution.",
            |e| e.proposals.map_or(0, |p| p.rejected).to_string(),
        ),
        (
            "tdev_evolution_proposals_failed",
            "Proposer requests that failed (error, timeout, not an answer), per evolution.",
            |e| e.proposals.map_or(0, |p| p.failed).to_string(),
        ),
        (
            "tdev_evolution_proposals_late",
            "Proposer answers too late for their generation, or requests not sent while it was busy, per evolution.",
            |e| e.proposals.map_or(0, |p| p.late).to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for e in &evolutions {
            let _ = writeln!(
                out,
                "{name}{{evolution_id=\"{}\"}} {}",
                e.evolution_id,
                value(e)
            );
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
