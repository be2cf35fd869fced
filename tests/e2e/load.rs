//! Load on `POST /v1/run`: many clients at once on loopback, benign agents with hostile
//! modules mixed in, a healthz poller alongside. Every answer is checked (an outcome
//! word that is right for the module, see `fixtures::is_right`; the result a benign
//! agent must give), so load can not hide a wrong answer. Shared with
//! `cli/benches/load.rs` through `#[path]`; a test in `serve/runs.rs` runs a small load
//! against a real `tdev serve`.

#![allow(dead_code)]

use crate::fixtures;
use crate::http::Conn;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// What an answer must say.
#[derive(Clone, Debug)]
pub enum Expect {
    /// `outcome` is a right one for this manifest word ([`fixtures::is_right`]), and the
    /// module is quarantined when it is a limit.
    Outcome(String),
    /// `outcome` is `ok` and `result` this number.
    Result(i64),
    /// `outcome` is `ok` and `output_hex` this.
    Output(String),
}

/// One kind of request.
#[derive(Clone)]
pub struct Case {
    pub name: String,
    pub module: Vec<u8>,
    pub args: Option<String>,
    pub input: Option<Vec<u8>>,
    pub outcome: String,
    /// Made unique per request (a custom section with a counter), so the module is
    /// compiled, run and judged afresh instead of being held from an earlier run.
    pub fresh: bool,
}

/// The hostile fixtures that the default policy governs, with the outcome each must
/// get. Those that run are sent fresh every time; those rejected statically are sent
/// as they are (after the first, they are held in quarantine: still `rejected`).
pub fn hostile_cases() -> Vec<Case> {
    let dir = fixtures::dir();
    fixtures::manifest()
        .fixture
        .into_iter()
        .filter(|f| f.policy.is_none())
        .map(|f| {
            let module =
                wat::parse_file(dir.join(&f.file)).unwrap_or_else(|e| panic!("{}: {e}", f.file));
            Case {
                fresh: f.outcome != "rejected",
                name: f.file,
                module,
                args: f.args,
                input: f.input.map(String::into_bytes),
                outcome: f.outcome,
            }
        })
        .collect()
}

/// A module with a custom section `tdev.nonce` holding `n`: the same code under a new id.
pub fn with_nonce(module: &[u8], n: usize) -> Vec<u8> {
    let name = b"tdev.nonce";
    let payload = n.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = module.to_vec();
    out.push(0);
    let mut len = section.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&section);
    out
}

/// A benign request: its module, args or input, and the answer it must get.
fn benign(
    i: usize,
    add: &[u8],
    echo: &[u8],
    gcd: &[u8],
) -> (Vec<u8>, Option<String>, Option<Vec<u8>>, Expect) {
    let a = i as i64;
    match i % 3 {
        0 => (
            add.to_vec(),
            Some(format!("{a},7")),
            None,
            Expect::Result(a + 7),
        ),
        1 => {
            let input = format!("request {i}").into_bytes();
            let hex = input.iter().map(|b| format!("{b:02x}")).collect();
            (echo.to_vec(), None, Some(input), Expect::Output(hex))
        }
        _ => {
            let (x, y) = (12 * (a + 1), 18 * (a + 1));
            (
                gcd.to_vec(),
                Some(format!("{x},{y}")),
                None,
                Expect::Result(6 * (a + 1)),
            )
        }
    }
}

/// How much load.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Client threads, each with its own keep-alive connection.
    pub clients: usize,
    /// Requests in all.
    pub requests: usize,
    /// No request is started after this.
    pub time_limit: Duration,
    /// Every n-th request is a hostile module (0: none).
    pub hostile_every: usize,
    /// Pause between healthz probes.
    pub health_every: Duration,
    /// Whether a client sends a request again after a 503 (after a short pause that
    /// grows with each try), as a well-behaved client would; otherwise a 503 ends it.
    pub retry_busy: bool,
}

/// What happened.
#[derive(Default, Debug)]
pub struct Report {
    pub sent: usize,
    /// Requests answered 200, each answer checked.
    pub ok: usize,
    /// 503 answers with Retry-After (with `retry_busy`, one per refused try).
    pub busy: usize,
    pub hostile: usize,
    /// Answers that were neither (or had no Retry-After), and I/O errors.
    pub failed: Vec<String>,
    /// 200 answers that said the wrong thing.
    pub wrong: Vec<String>,
    /// Latency of the 200 answers.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    /// Latency of each healthz probe made during the load.
    pub health: Vec<Duration>,
    pub health_failures: usize,
    /// Outcome words seen, with counts.
    pub outcomes: std::collections::BTreeMap<String, usize>,
}

impl Report {
    /// The q-quantile (0..=1) of the sorted durations.
    pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }
}

fn check(v: &Value, expect: &Expect) -> Result<(), String> {
    let outcome = v["outcome"].as_str().unwrap_or("(none)");
    match expect {
        Expect::Outcome(want) => {
            if !fixtures::is_right(want, outcome) {
                return Err(format!("outcome {outcome}, expected {want}"));
            }
            let limit = runtime::Outcome::from_word(outcome).is_some_and(|o| o.is_limit());
            if (limit || outcome == "rejected") && v["quarantined"] != true {
                return Err(format!("{outcome} but not quarantined"));
            }
        }
        Expect::Result(r) => {
            if outcome != "ok" || v["result"].as_i64() != Some(*r) {
                return Err(format!("{outcome} {}, expected ok {r}", v["result"]));
            }
        }
        Expect::Output(hex) => {
            if outcome != "ok" || v["output_hex"].as_str() != Some(hex) {
                return Err(format!("{outcome} {}, expected ok {hex}", v["output_hex"]));
            }
        }
    }
    Ok(())
}

/// Sends the plan's requests to the server at `addr` and checks every answer.
pub fn drive(addr: &str, token: &str, plan: &Plan) -> Report {
    let read =
        |p: &str| std::fs::read(fixture_dir().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let add = wat::parse_file(fixture_dir().join("agents/add.wat")).expect("add.wat");
    let echo = read("agents/echo.wasm");
    let gcd = read("agents/gcd.wasm");
    let hostile = hostile_cases();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let report = Arc::new(Mutex::new(Report::default()));
    let start = Instant::now();
    let auth = format!("Bearer {token}");

    let poller = {
        let (addr, done, report) = (addr.to_string(), done.clone(), report.clone());
        let every = plan.health_every;
        std::thread::spawn(move || {
            let mut conn = None;
            while !done.load(Ordering::SeqCst) {
                let t = Instant::now();
                let c = match conn.take() {
                    Some(c) => Ok(c),
                    None => Conn::open(&addr),
                };
                let r = c.and_then(|mut c| c.send("GET", "/v1/healthz", &[], b"").map(|a| (c, a)));
                let mut rep = report.lock().expect("report");
                match r {
                    Ok((c, a)) if a.status == 200 => {
                        rep.health.push(t.elapsed());
                        conn = Some(c);
                    }
                    _ => rep.health_failures += 1,
                }
                drop(rep);
                std::thread::sleep(every);
            }
        })
    };

    let clients: Vec<_> = (0..plan.clients)
        .map(|_| {
            let (addr, next, report, auth) =
                (addr.to_string(), next.clone(), report.clone(), auth.clone());
            let (add, echo, gcd, hostile, plan) = (
                add.clone(),
                echo.clone(),
                gcd.clone(),
                hostile.clone(),
                plan.clone(),
            );
            std::thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= plan.requests || start.elapsed() > plan.time_limit {
                        break;
                    }
                    let is_hostile =
                        plan.hostile_every > 0 && i % plan.hostile_every == plan.hostile_every - 1;
                    let (module, args, input, expect, name) = if is_hostile {
                        let c = &hostile[(i / plan.hostile_every) % hostile.len()];
                        let m = if c.fresh {
                            with_nonce(&c.module, i)
                        } else {
                            c.module.clone()
                        };
                        (
                            m,
                            c.args.clone(),
                            c.input.clone(),
                            Expect::Outcome(c.outcome.clone()),
                            c.name.clone(),
                        )
                    } else {
                        let (m, a, inp, e) = benign(i, &add, &echo, &gcd);
                        (m, a, inp, e, "benign".to_string())
                    };
                    let path = match &args {
                        Some(a) => format!("/v1/run?args={a}"),
                        None => "/v1/run".to_string(),
                    };
                    let hex: Option<String> = input
                        .as_ref()
                        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
                    let mut headers = vec![
                        ("Authorization", auth.as_str()),
                        ("Content-Type", "application/wasm"),
                    ];
                    if let Some(h) = &hex {
                        headers.push(("X-Tdev-Input", h.as_str()));
                    }
                    let t = Instant::now();
                    let mut tries = 0u32;
                    let answer = loop {
                        let c = match conn.take() {
                            Some(c) => Ok(c),
                            None => Conn::open(&addr),
                        };
                        let answer = c.and_then(|mut c| {
                            c.send("POST", &path, &headers, &module).map(|a| (c, a))
                        });
                        match answer {
                            Ok((c, a))
                                if a.status == 503
                                    && plan.retry_busy
                                    && tries < 1000
                                    && start.elapsed() < plan.time_limit =>
                            {
                                conn = Some(c);
                                tries += 1;
                                report.lock().expect("report").busy += 1;
                                std::thread::sleep(Duration::from_millis(u64::from(tries.min(20))));
                            }
                            other => break other,
                        }
                    };
                    let took = t.elapsed();
                    let mut rep = report.lock().expect("report");
                    rep.sent += 1;
                    if is_hostile {
                        rep.hostile += 1;
                    }
                    match answer {
                        Err(e) => rep.failed.push(format!("{name}: {e}")),
                        Ok((c, a)) => {
                            conn = Some(c);
                            match a.status {
                                200 => {
                                    rep.ok += 1;
                                    rep.latencies.push(took);
                                    match serde_json::from_slice::<Value>(&a.body) {
                                        Ok(v) => {
                                            let word = v["outcome"]
                                                .as_str()
                                                .unwrap_or("(none)")
                                                .to_string();
                                            *rep.outcomes.entry(word).or_default() += 1;
                                            if let Err(e) = check(&v, &expect) {
                                                rep.wrong.push(format!("{name}: {e}"));
                                            }
                                        }
                                        Err(e) => rep.wrong.push(format!("{name}: not JSON: {e}")),
                                    }
                                }
                                503 if a.header("retry-after").is_some() => rep.busy += 1,
                                s => rep.failed.push(format!(
                                    "{name}: status {s}: {}",
                                    String::from_utf8_lossy(&a.body)
                                )),
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::SeqCst);
    poller.join().expect("healthz poller");
    let mut r = std::mem::take(&mut *report.lock().expect("report"));
    r.elapsed = elapsed;
    r.latencies.sort();
    r.health.sort();
    r
}
