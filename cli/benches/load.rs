//! Load bench of `tdev serve`: `cargo bench -p cli --bench load`.
//!
//! Starts the built `tdev serve` on loopback (a fresh store in a temporary folder) and
//! sends many concurrent `POST /v1/run` requests, a share of them hostile modules (the
//! fixtures the default policy governs, most made unique so each is compiled, run and
//! quarantined afresh). Every answer is checked; a healthz poller runs alongside. Prints
//! a table: throughput, p50/p99 latency, 503 answers, healthz latency. Bounded in
//! requests and time per row. Without `--bench` (as `cargo test --benches` runs it) it
//! does one small row.

#[path = "../../tests/e2e/fixtures.rs"]
mod fixtures;
#[path = "../../tests/e2e/http.rs"]
mod http;
#[path = "../../tests/e2e/load.rs"]
mod load;
#[path = "../../tests/e2e/server.rs"]
mod server;

use load::{Plan, Report, drive};
use std::time::Duration;

const TOKEN: &str = "bench-token-0123456789abcdef";

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // (clients, --max-runs, hostile every n-th request, retry after 503)
    let rows: &[(usize, usize, usize, bool)] = if full {
        &[
            (1, 8, 5, true),
            (4, 8, 5, true),
            (16, 8, 5, true),
            (64, 8, 5, true),
            (64, 8, 0, true),
            (64, 64, 5, true),
            (64, 8, 5, false),
        ]
    } else {
        &[(8, 4, 5, true)]
    };
    let requests = if full { 3000 } else { 200 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "tdev serve under load: {requests} POST /v1/run per row (at most 30 s), loopback, {cores} cores"
    );
    println!();
    println!(
        "| clients | --max-runs | hostile | retry 503 | answered | 503s | req/s | p50 ms | p99 ms | max ms | healthz probes | healthz p99 ms | healthz max ms |"
    );
    println!("|---:|---:|---:|:--:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut bad = false;
    for &(clients, max_runs, hostile_every, retry_busy) in rows {
        // the bench measures the server, not a token's rate (--token-rate)
        let mut server = server::start(
            &[
                "--max-runs",
                &max_runs.to_string(),
                "--token-rate",
                "1000000",
                "--token-burst",
                "1000000",
            ],
            TOKEN,
        );
        let plan = Plan {
            clients,
            requests,
            time_limit: Duration::from_secs(30),
            hostile_every,
            health_every: Duration::from_millis(10),
            retry_busy,
        };
        let r: Report = drive(&server.addr, TOKEN, &plan);
        let alive = server.alive();
        let hostile = format!("{}%", 100usize.checked_div(hostile_every).unwrap_or(0));
        println!(
            "| {clients} | {max_runs} | {hostile} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            if retry_busy { "yes" } else { "no" },
            r.ok,
            r.busy,
            r.ok as f64 / r.elapsed.as_secs_f64(),
            ms(Report::quantile(&r.latencies, 0.5)),
            ms(Report::quantile(&r.latencies, 0.99)),
            ms(Report::quantile(&r.latencies, 1.0)),
            r.health.len(),
            ms(Report::quantile(&r.health, 0.99)),
            ms(Report::quantile(&r.health, 1.0)),
        );
        if !r.failed.is_empty() || !r.wrong.is_empty() || r.health_failures > 0 || !alive {
            bad = true;
            eprintln!(
                "  problems: alive={alive} healthz failures={} failed={:?} wrong={:?}",
                r.health_failures,
                &r.failed[..r.failed.len().min(3)],
                &r.wrong[..r.wrong.len().min(3)]
            );
        }
        // a row without retries ends each refused request with its 503
        if !retry_busy && r.ok + r.busy != r.sent {
            bad = true;
        }
    }
    println!();
    println!(
        "answered: requests answered 200 (each answer checked: outcome word, result or output); \
         503s: refusals past --max-runs (retried after 1-20 ms when 'retry 503' is yes); \
         latency of answered requests includes their retries."
    );
    if bad {
        eprintln!("load bench: the server failed, died or answered wrongly");
        std::process::exit(1);
    }
}
