//! `tdev serve` over a real socket: auth, runs, hostile ids and bodies, the run bound,
//! quarantine review and the emergency stop.

use crate::load::{Plan, drive};
use crate::support::{fixture, write};
use std::time::Duration;

pub(crate) const TOKEN: &str = "test-token-0123456789";

pub(crate) use crate::server::Server;

/// `tdev serve` on a free loopback port with the test token, in a fresh folder.
pub(crate) fn serve(extra: &[&str]) -> Server {
    crate::server::start(extra, TOKEN)
}

/// One HTTP/1.1 request on a new connection; returns (status, head, body).
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let a = crate::http::request(addr, method, path, headers, body);
    (a.status, a.head, a.body)
}

pub(crate) fn auth() -> String {
    format!("Bearer {TOKEN}")
}

pub(crate) fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

pub(crate) fn wasm(name: &str) -> Vec<u8> {
    wat::parse_file(fixture(name)).expect("wat")
}

#[test]
fn auth_runs_and_quarantine_review_over_http() {
    let s = serve(&[]);
    let a = &s.addr;
    // healthz needs no token; everything else does, with no detail leaked
    assert_eq!(http(a, "GET", "/v1/healthz", &[], b"").0, 200);
    for h in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic eA==")],
    ] {
        let (st, _, body) = http(a, "GET", "/v1/quarantine", &h, b"");
        assert_eq!(st, 401);
        let v = json(&body);
        assert_eq!(v["error"]["code"], "unauthorized");
        assert!(!String::from_utf8_lossy(&body).contains(TOKEN));
    }
    let au = auth();
    let h = [
        ("Authorization", au.as_str()),
        ("Content-Type", "application/wasm"),
    ];
    // a typed run from raw bytes with ?args=
    let (st, _, body) = http(a, "POST", "/v1/run?args=2,40", &h, &wasm("agents/add.wat"));
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["result"], 42);
    // bytes form with X-Tdev-Input
    let hi = [
        ("Authorization", au.as_str()),
        ("Content-Type", "application/wasm"),
        ("X-Tdev-Input", "6869"),
    ];
    let v = json(&http(a, "POST", "/v1/run", &hi, &wasm("agents/echo.wat")).2);
    assert_eq!(v["output_hex"], "6869");
    // JSON form
    let b64 = base64(&wasm("agents/fmul.wat"));
    let body = serde_json::json!({"module_b64": b64, "args": [2.5, "-4"]}).to_string();
    let hj = [
        ("Authorization", au.as_str()),
        ("Content-Type", "application/json"),
    ];
    let v = json(&http(a, "POST", "/v1/run", &hj, body.as_bytes()).2);
    assert_eq!(v["result"], -10.0);
    // validate
    let v = json(
        &http(
            a,
            "POST",
            "/v1/validate",
            &h,
            &wasm("hostile/wasi_import.wat"),
        )
        .2,
    );
    assert_eq!(v["admitted"], false);
    // a hostile run is quarantined and reviewable
    let v = json(&http(a, "POST", "/v1/run", &h, &wasm("hostile/infinite_loop.wat")).2);
    assert_eq!(v["outcome"], "out_of_fuel");
    assert_eq!(v["quarantined"], true);
    let id = v["agent_id"].as_str().expect("id").to_string();
    let ha = [("Authorization", au.as_str())];
    let l = json(&http(a, "GET", "/v1/quarantine", &ha, b"").2);
    assert_eq!(l["quarantine"][0]["agent_id"], id.as_str());
    let q = json(&http(a, "GET", &format!("/v1/quarantine/{id}"), &ha, b"").2);
    assert_eq!(q["trap_history"][0]["outcome"], "out_of_fuel");
    assert!(q["wat"].as_str().expect("wat").contains("loop"));
    let (st, _, _) = http(a, "GET", &format!("/v1/agents/{id}/wat"), &ha, b"");
    assert_eq!(st, 200);
    let r = json(&http(a, "POST", &format!("/v1/quarantine/{id}/release"), &ha, b"").2);
    assert_eq!(r["status"], "released");
    let p = json(&http(a, "DELETE", &format!("/v1/quarantine/{id}"), &ha, b"").2);
    assert_eq!(p["status"], "purged");
    let actions: Vec<&str> = p["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|e| e["action"].as_str().expect("a"))
        .collect();
    assert_eq!(actions, ["quarantined", "trapped", "released", "purged"]);
    // the audit log lists every decision with its time
    let log = json(&http(a, "GET", "/v1/audit", &ha, b"").2);
    let events = log["audit"].as_array().expect("audit");
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "purged" && e["agent_id"] == id.as_str())
    );
    assert!(events.iter().all(|e| e["at"].is_string()));
    // metrics: runs by outcome, latency histograms, quarantine size
    assert_eq!(http(a, "GET", "/metrics", &[], b"").0, 401);
    let (st, _, m) = http(a, "GET", "/metrics", &ha, b"");
    assert_eq!(st, 200);
    let m = String::from_utf8_lossy(&m);
    for needle in [
        "tdev_runs_total{outcome=\"ok\"} 3",
        "tdev_runs_total{outcome=\"out_of_fuel\"} 1",
        "tdev_instantiate_seconds_bucket{le=\"+Inf\"} 4",
        "tdev_run_seconds_count 4",
        "tdev_quarantine_modules 0",
    ] {
        assert!(m.contains(needle), "{needle} missing from:\n{m}");
    }
    // hostile ids and paths: refused, never a file outside the store
    for path in [
        "/v1/quarantine/..%2F..%2Fetc%2Fpasswd",
        "/v1/quarantine/sha256:..%2F..%2F..",
        "/v1/agents/sha256:zz",
        "/v1/agents/%00",
        "/v1/evolutions/..%2Fx",
        "/v1/evolutions/x;rm%20-rf/rollback?generation=1",
    ] {
        let method = if path.ends_with("rollback?generation=1") {
            "POST"
        } else {
            "GET"
        };
        let (st, _, body) = http(a, method, path, &ha, b"");
        assert!(st == 400 || st == 404, "{path}: {st}");
        assert!(json(&body)["error"]["message"].is_string(), "{path}");
    }
    // a body over the cap is refused; garbage JSON is a 400
    let (st, _, body) = http(a, "POST", "/v1/run", &h, &vec![0u8; 200_000]);
    assert_eq!(st, 413);
    assert_eq!(json(&body)["error"]["code"], "payload_too_large");
    let (st, _, body) = http(a, "PUT", "/v1/run", &ha, b"");
    assert_eq!(st, 405);
    assert_eq!(json(&body)["error"]["code"], "method_not_allowed");
    let (st, _, _) = http(a, "POST", "/v1/run", &hj, b"{not json");
    assert_eq!(st, 400);
    // the dashboard: one page, no token needed to load it, no outside resources
    let (st, head, page) = http(a, "GET", "/", &[], b"");
    assert_eq!(st, 200);
    assert!(head.to_ascii_lowercase().contains("text/html"));
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("id=\"stop\"")
            && page.contains("id=\"chart\"")
            && page.contains("id=\"quarantine\"")
    );
    // the only URL in page and script is the SVG namespace: nothing is fetched from outside
    let (st, head, script) = http(a, "GET", "/dashboard.js", &[], b"");
    assert_eq!(st, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("javascript"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{head}"
    );
    let script = String::from_utf8_lossy(&script).replace("http://www.w3.org/2000/svg", "");
    for text in [page.as_ref(), script.as_str()] {
        for outside in ["http://", "https://", "src=\"//", "href=\"//", "@import"] {
            assert!(!text.contains(outside), "the dashboard refers to {outside}");
        }
        for unsafe_sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(
                !text.contains(unsafe_sink),
                "module text must only go through textContent ({unsafe_sink})"
            );
        }
    }
    // the emergency stop reaches evolve processes through the store
    let v = json(&http(a, "POST", "/v1/emergency-stop", &ha, b"").2);
    assert_eq!(v["stopped"], true);
    assert!(
        s.dir
            .path()
            .join(".tdev/evolution/control/stop.json")
            .exists()
    );
    assert_eq!(http(a, "GET", "/v1/healthz", &[], b"").0, 200);
}

#[test]
fn runs_past_the_bound_get_503_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slow = write(
        dir.path(),
        "slow.toml",
        "[limits]\nfuel_per_call = 1000000000000000\nwall_clock_ms = 400\n",
    );
    let s = serve(&["--max-runs", "1", "--policy", slow.to_str().expect("p")]);
    let module = wasm("hostile/deadline_spin.wat");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let a = s.addr.clone();
            let m = module.clone();
            std::thread::spawn(move || {
                let au = auth();
                http(
                    &a,
                    "POST",
                    "/v1/run",
                    &[
                        ("Authorization", au.as_str()),
                        ("Content-Type", "application/wasm"),
                    ],
                    &m,
                )
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect();
    let busy = results.iter().filter(|r| r.0 == 503).count();
    let ran = results.iter().filter(|r| r.0 == 200).count();
    assert!(
        ran >= 1 && busy >= 1,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.0 == 503) {
        assert!(
            r.1.to_ascii_lowercase().contains("retry-after: 1"),
            "{}",
            r.1
        );
    }
    assert_eq!(http(&s.addr, "GET", "/v1/healthz", &[], b"").0, 200);
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn concurrent_runs_with_hostile_modules_get_exact_answers_and_healthz_stays_up() {
    // the load measures the server, not a token's rate
    let mut s = serve(&[
        "--max-runs",
        "4",
        "--token-rate",
        "1000000",
        "--token-burst",
        "1000000",
    ]);
    let plan = Plan {
        clients: 12,
        requests: 300,
        time_limit: Duration::from_secs(120),
        hostile_every: 4,
        health_every: Duration::from_millis(20),
        retry_busy: true,
    };
    let r = drive(&s.addr, TOKEN, &plan);
    eprintln!(
        "{} requests ({} hostile), {} busy answers, outcomes {:?}",
        r.sent, r.hostile, r.busy, r.outcomes
    );
    assert!(
        r.failed.is_empty(),
        "failed: {:?}",
        &r.failed[..r.failed.len().min(5)]
    );
    assert!(
        r.wrong.is_empty(),
        "wrong answers: {:?}",
        &r.wrong[..r.wrong.len().min(5)]
    );
    assert_eq!(r.sent, plan.requests, "the time limit cut the run short");
    // every request was answered and checked, some after retries past the bound
    assert_eq!(r.ok, r.sent, "{r:?}");
    assert!(r.hostile >= 70);
    assert_eq!(r.health_failures, 0);
    assert!(!r.health.is_empty());
    // the hostile mix reached the sandbox: traps of several kinds, and rejections
    for word in [
        "ok",
        "rejected",
        "out_of_fuel",
        "memory_limit",
        "stack_overflow",
    ] {
        assert!(
            r.outcomes.contains_key(word),
            "{word} never seen: {:?}",
            r.outcomes
        );
    }
    assert!(s.alive(), "the server died under load");
    // the server's own counts agree with what the clients saw
    let au = auth();
    let (_, _, m) = http(
        &s.addr,
        "GET",
        "/metrics",
        &[("Authorization", au.as_str())],
        b"",
    );
    let m = String::from_utf8_lossy(&m);
    let served: u64 = m
        .lines()
        .filter(|l| l.starts_with("tdev_runs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(served, r.ok as u64, "{m}");
    assert!(
        m.contains(&format!("tdev_runs_refused_total {}\n", r.busy)),
        "{m}"
    );
    assert_eq!(http(&s.addr, "GET", "/v1/healthz", &[], b"").0, 200);
}

#[test]
fn emergency_stop_interrupts_the_servers_runs_and_evolve_processes_on_its_store() {
    use crate::evolve::{spawn_evolve, task, wait_for_generation};
    use std::time::Instant;
    let dir = tempfile::tempdir().expect("tempdir");
    // a run that would last 20 s of wall clock if nothing stopped it
    let slow = write(
        dir.path(),
        "slow.toml",
        "[limits]\nfuel_per_call = 1000000000000000\nwall_clock_ms = 20000\n",
    );
    let mut s = serve(&["--policy", slow.to_str().expect("p")]);
    let d = s.dir.path().to_path_buf();
    // an evolution on the same store, in its own process
    let evolve = spawn_evolve(
        &d,
        &[
            "--task",
            &task("sum_range"),
            "--population",
            "60",
            "--generations",
            "100000",
        ],
    );
    // killed if the test fails before the stop ends it
    struct Reaper(Option<std::process::Child>);
    impl Drop for Reaper {
        fn drop(&mut self) {
            if let Some(c) = self.0.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut evolve = Reaper(Some(evolve));
    let id = wait_for_generation(&d.join(".tdev"), 1, Duration::from_secs(120));
    let spinning = {
        let a = s.addr.clone();
        let m = wasm("hostile/deadline_spin.wat");
        std::thread::spawn(move || {
            let au = auth();
            let h = [
                ("Authorization", au.as_str()),
                ("Content-Type", "application/wasm"),
            ];
            let t = Instant::now();
            let (st, _, body) = http(&a, "POST", "/v1/run", &h, &m);
            (st, body, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let au = auth();
    let v = json(
        &http(
            &s.addr,
            "POST",
            "/v1/emergency-stop",
            &[("Authorization", au.as_str())],
            b"",
        )
        .2,
    );
    assert_eq!(v["stopped"], true);
    let t = Instant::now();
    // the running agent ends with emergency_stop, long before its 20 s deadline
    let (st, body, took) = spinning.join().expect("run thread");
    assert_eq!(st, 200);
    let r = json(&body);
    assert_eq!(r["outcome"], "emergency_stop", "{r}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // the evolve process halts with its last generation durable
    let out = evolve
        .0
        .take()
        .expect("evolve")
        .wait_with_output()
        .expect("wait evolve");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).expect("evolve JSON");
    assert_eq!(e["stopped"], true, "{e}");
    assert_eq!(e["evolution_id"], id.as_str());
    let listed = json(
        &http(
            &s.addr,
            "GET",
            &format!("/v1/evolutions/{id}"),
            &[("Authorization", au.as_str())],
            b"",
        )
        .2,
    );
    assert_eq!(listed["head_generation"], e["generations"], "{listed}");
    // the server itself goes on: new runs are not affected by the stop
    let h = [
        ("Authorization", au.as_str()),
        ("Content-Type", "application/wasm"),
    ];
    let v = json(
        &http(
            &s.addr,
            "POST",
            "/v1/run?args=2,3",
            &h,
            &wasm("agents/add.wat"),
        )
        .2,
    );
    assert_eq!(v["result"], 5);
    assert!(s.alive());
}

#[test]
fn slow_or_idle_clients_are_cut_off_and_connections_are_bounded() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;
    let mut s = serve(&[
        "--read-timeout-ms",
        "400",
        "--max-connections",
        "2",
        "--max-body-bytes",
        "1000",
    ]);
    let a = s.addr.clone();
    // read until the server closes the connection; what it said
    let drain = |mut c: TcpStream| -> String {
        c.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    // a head that never ends: the connection is closed
    let mut c = TcpStream::connect(&a).expect("connect");
    c.write_all(b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let t = Instant::now();
    drain(c);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // a body that never ends: 408 in the JSON error shape
    let mut c = TcpStream::connect(&a).expect("connect");
    c.write_all(
        format!(
            "POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 500\r\n\r\n0123456789",
            auth()
        )
        .as_bytes(),
    )
    .expect("write");
    let answer = drain(c);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    // the body cap comes from --max-body-bytes
    let au = auth();
    let (st, _, body) = http(
        &a,
        "POST",
        "/v1/validate",
        &[("Authorization", au.as_str())],
        &[0u8; 1001],
    );
    assert_eq!(st, 413);
    assert_eq!(json(&body)["error"]["code"], "payload_too_large");
    // two idle connections take both places; a third takes the place of the one idle
    // longest, and the other is closed for idling
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&a).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(http(&a, "GET", "/v1/healthz", &[], b"").0, 200);
    for c in idle {
        assert_eq!(drain(c), "", "an idle connection was answered");
    }
    assert!(s.alive());
}

#[test]
fn malformed_http_gets_an_answer_or_a_closed_connection_and_the_server_stays_up() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let mut s = serve(&["--read-timeout-ms", "2000"]);
    let a = s.addr.clone();
    let au = auth();
    let send = |raw: &[u8]| -> String {
        let mut c = TcpStream::connect(&a).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        // ask for the connection to be closed after the answer
        let mut raw = raw.to_vec();
        if let Some(p) = raw.windows(9).position(|w| w == b"Host: x\r\n") {
            raw.splice(p + 9..p + 9, b"Connection: close\r\n".iter().copied());
        }
        let _ = c.write_all(&raw);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let big_header = format!(
        "GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let many_headers = format!(
        "GET /v1/healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<Vec<u8>> = vec![
        b"\x00\xff\x16\x03\x01garbage\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /v1/healthz HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET http://evil.example/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        big_header.into_bytes(),
        many_headers.into_bytes(),
        // a chunked body with a bad chunk size, and one that claims far more than sent
        format!("POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").into_bytes(),
        format!("POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\nabc").into_bytes(),
        // both framings at once (a smuggling attempt) and two lengths
        format!("POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/audit HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
        format!("POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nContent-Length: 4\r\nContent-Length: 9\r\n\r\nabcd").into_bytes(),
        format!("POST /v1/run HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nContent-Length: -1\r\n\r\n").into_bytes(),
        format!("POST /v1/run?args=%ZZ HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nContent-Length: 0\r\n\r\n").into_bytes(),
        [
            format!("POST /v1/run HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nX-Tdev-Input: ").into_bytes(),
            vec![0xff, 0xfe],
            b"\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ]
        .concat(),
    ];
    for raw in &cases {
        let answer = send(raw);
        // either no answer (closed) or a status line; an error status is never 5xx
        if let Some(code) = answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse::<u16>().ok())
        {
            assert!(
                code < 500,
                "{code} for {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(120)])
            );
            // the smuggled second request is never answered as its own request
            assert!(!answer.contains("\"audit\""), "{answer}");
        } else {
            assert!(answer.is_empty(), "not HTTP: {answer:?}");
        }
        assert_eq!(http(&a, "GET", "/v1/healthz", &[], b"").0, 200);
    }
    assert!(s.alive());
}

mod conn;
mod requests;
mod runs;
mod tokens;
