//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, Debian's `chromium-driver`, installed by scripts/test.sh). The page
//! loads, draws the error chart of an evolution, lists the quarantine (a module whose
//! names carry HTML stays text), shows a module's findings and text form, and its
//! emergency-stop button reaches the server and the store.

use crate::serve::{TOKEN, auth, http, json, ok_json, post_wasm, serve};
use crate::support::{evolve, fixture, free_port};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(var: &str, names: &[&str]) -> String {
    if let Ok(p) = std::env::var(var)
        && !p.is_empty()
    {
        return p;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p.display().to_string();
            }
        }
    }
    panic!(
        "{} not found (set {var}); scripts/test.sh installs Debian's chromium and chromium-driver",
        names.join(" or ")
    )
}

/// A chromedriver process with one browser session; both end on drop.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            b"",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    fn start() -> Browser {
        let driver_bin = find_program("TDEV_CHROMEDRIVER", &["chromedriver"]);
        let chromium = find_program("TDEV_CHROMIUM", &["chromium", "chromium-browser"]);
        let port = free_port();
        let mut driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {driver_bin}: {e}"));
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(&addr).is_ok()
                && http(&addr, "GET", "/status", &[], b"").0 == 200
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = driver.kill();
                panic!("chromedriver did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        // The flags keep a headless Chromium off the network: nothing but loopback.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let (st, _, body) = http(
            &addr,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            caps.to_string().as_bytes(),
        );
        let v = json(&body);
        if st != 200 {
            let _ = driver.kill();
            panic!("no browser session ({st}): {v}");
        }
        let session = v["value"]["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        Browser {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let (st, _, out) = http(
            &self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        let v = json(&out);
        assert_eq!(st, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Runs a script in the page; its return value.
    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Polls a script until it returns something truthy; fails after 30 s with `what`.
    fn wait_for(&self, script: &str, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(script);
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "{what}: not seen after 30 s; status line: {}",
                    self.js("return document.querySelector('#status').textContent")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element a CSS selector names, as a user's pointer would.
    fn click(&self, css: &str) {
        let e = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        let id = e[ELEMENT].as_str().expect("element id").to_string();
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Answers the open `prompt()` with `text`; returns its question.
    fn answer_prompt(&self, text: &str) -> String {
        let question = self.call("GET", "/alert/text", json!({}));
        self.call("POST", "/alert/text", json!({ "text": text }));
        self.call("POST", "/alert/accept", json!({}));
        question.as_str().unwrap_or("").to_string()
    }

    /// Text of the open `confirm()` prompt; accepts it.
    fn accept_prompt(&self) -> String {
        let text = self.call("GET", "/alert/text", json!({}));
        self.call("POST", "/alert/accept", json!({}));
        text.as_str().unwrap_or("").to_string()
    }
}

#[test]
fn dashboard_in_headless_chromium_shows_the_chart_and_quarantine_and_stops() {
    let s = serve(&[]);
    let a = s.addr.as_str();
    let dir = s.dir.path();
    // an evolution to chart
    let r = evolve(
        dir,
        &[
            "--task",
            &fixture("tasks/quartic.toml").display().to_string(),
            "--seed",
            "3",
            "--generations",
            "6",
        ],
    );
    let evolution = r["evolution_id"]
        .as_str()
        .expect("evolution id")
        .to_string();
    let generations = r["generations"].as_u64().expect("generations");
    // a quarantined module whose export name is HTML that would run script if parsed
    let evil = r#"(module
      (func (export "<img src=x onerror=document.body.dataset.pwned=1>") (result i32) i32.const 1)
      (func (export "act") (result i32) (loop (br 0)) i32.const 0))"#;
    let v = ok_json(post_wasm(a, "/v1/run", &wat::parse_str(evil).expect("wat")));
    assert_eq!(v["quarantined"], true, "{v}");
    let evil_id = v["agent_id"].as_str().expect("id").to_string();
    let v = ok_json(post_wasm(
        a,
        "/v1/run",
        &wat::parse_file(fixture("hostile/memory_grow_bomb.wat")).expect("wat"),
    ));
    assert_eq!(v["quarantined"], true, "{v}");

    // the evolution's gauges in the metrics
    let au = auth();
    let (_, _, m) = http(a, "GET", "/metrics", &[("Authorization", au.as_str())], b"");
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains(&format!(
            "tdev_evolution_generation{{evolution_id=\"{evolution}\"}} {generations}\n"
        )),
        "{m}"
    );
    let best = r["best"]["train_error"].as_f64().expect("best error");
    let line = m
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "tdev_evolution_best_error{{evolution_id=\"{evolution}\"}}"
            ))
        })
        .expect("best error gauge");
    let gauge: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number");
    assert_eq!(gauge, best, "{line}");
    assert!(m.contains("tdev_quarantine_modules 2\n"), "{m}");

    let b = Browser::start();
    b.go(&format!("http://{a}/#token={TOKEN}"));
    // the token left the address bar and the page loaded the evolution list
    let rows = b.wait_for(
        "return document.querySelectorAll('#evolutions tr[data-id]').length",
        "evolution rows",
    );
    assert_eq!(rows, json!(1));
    assert!(
        !b.js("return location.href")
            .as_str()
            .expect("href")
            .contains(TOKEN)
    );
    let row = b.js(
        "return [...document.querySelectorAll('#evolutions tr[data-id] td')].map(c => c.textContent)",
    );
    let expect_status = if r["solved"] == true {
        "solved"
    } else {
        "finished"
    };
    assert_eq!(row[0], json!(evolution), "{row}");
    assert_eq!(row[2], json!(generations.to_string()), "{row}");
    assert_eq!(row[4], json!(expect_status), "{row}");
    // the chart: one best and one mean line with a point per generation (0..=G)
    let points = b.wait_for(
        "const p = document.querySelector('#chart polyline.best_error'); \
         return p && p.getAttribute('points')",
        "the chart's best-error line",
    );
    let n = points.as_str().expect("points").split(' ').count() as u64;
    assert_eq!(n, generations + 1, "{points}");
    let mean = b.js(
        "return document.querySelector('#chart polyline.median_error').getAttribute('data-points')",
    );
    assert_eq!(mean, json!((generations + 1).to_string()));
    // labelled axes: decades and generations, as the evolve plot draws them
    let ticks = b.js(
        "return [document.querySelectorAll('#chart .ytick').length, \
         document.querySelectorAll('#chart .xtick').length]",
    );
    assert!(
        ticks[0].as_u64() >= Some(2) && ticks[1].as_u64() >= Some(2),
        "{ticks}"
    );
    // the drawn line has a real extent on screen
    let width = b.js(
        "return document.querySelector('#chart polyline.best_error').getBoundingClientRect().width",
    );
    assert!(width.as_f64().expect("width") > 100.0, "{width}");

    // the quarantine rows, one per held module
    let ids = b.wait_for(
        "const r = [...document.querySelectorAll('#quarantine tr[data-id]')].map(t => t.dataset.id); \
         return r.length >= 2 && r",
        "quarantine rows",
    );
    let ids: Vec<&str> = ids
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(ids.contains(&evil_id.as_str()), "{ids:?}");
    assert_eq!(ids.len(), 2, "{ids:?}");
    // open the hostile one: findings, trap history and text form, the HTML as text
    b.click(&format!("#quarantine tr[data-id=\"{evil_id}\"]"));
    let wat = b.wait_for(
        "const p = document.querySelector('#detail pre.wat'); return p && p.textContent",
        "the text form",
    );
    let wat = wat.as_str().expect("wat");
    assert!(
        wat.contains("<img src=x onerror=document.body.dataset.pwned=1>") && wat.contains("loop"),
        "{wat}"
    );
    let detail = b.js("return document.querySelector('#detail').textContent");
    assert!(
        detail.as_str().expect("detail").contains("out_of_fuel"),
        "{detail}"
    );
    assert_eq!(
        b.js("return [document.querySelectorAll('#detail img').length, document.body.dataset.pwned || null]"),
        json!([0, null]),
        "module text was parsed as HTML"
    );
    // where it came from: the API, under the test's token
    assert!(
        detail
            .as_str()
            .expect("detail")
            .contains("from api default"),
        "{detail}"
    );
    // a release asks why, and the audit trail keeps the token and the reason
    b.click("#release");
    let question = b.answer_prompt("reviewed: <b>loops</b> on purpose");
    assert!(question.contains("Reason"), "{question}");
    let released = b.wait_for(
        &format!(
            "const r = document.querySelector('#quarantine tr[data-id=\"{evil_id}\"]'); \
             return r && r.textContent.includes('released') && r.textContent"
        ),
        "the released row",
    );
    assert!(released.is_string(), "{released}");
    let (code, _, body) = http(
        a,
        "GET",
        &format!("/v1/quarantine/{evil_id}"),
        &[("Authorization", au.as_str())],
        b"",
    );
    assert_eq!(code, 200);
    let rec: serde_json::Value = serde_json::from_slice(&body).expect("record");
    let last = rec["audit"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("audit");
    assert_eq!(last["action"], "released", "{rec}");
    assert_eq!(last["reason"], "reviewed: <b>loops</b> on purpose", "{rec}");
    assert_eq!(last["by"], "default", "{rec}");
    assert_eq!(last["via"], "api (token default)", "{rec}");

    // the emergency stop: a confirm prompt, then the API call
    b.click("#stop");
    let prompt = b.accept_prompt();
    assert!(prompt.contains("Emergency stop"), "{prompt}");
    b.wait_for(
        "return document.body.dataset.stopped",
        "the stop acknowledgement",
    );
    let status = b.js("return document.querySelector('#status').textContent");
    assert!(
        status
            .as_str()
            .expect("status")
            .contains("emergency stop sent"),
        "{status}"
    );
    assert!(dir.join(".tdev/evolution/control/stop.json").exists());
    // the server is still up
    assert_eq!(http(a, "GET", "/v1/healthz", &[], b"").0, 200);
}

#[test]
fn dashboard_shows_a_failed_evolution_with_its_error() {
    let s = serve(&[]);
    let store = engine::store::open(&format!("file://{}", s.dir.path().join(".tdev").display()))
        .expect("store");
    let task = engine::task::Task::from_file(&fixture("tasks/abs.toml")).expect("task");
    let config = engine::evolve::EvolveConfig::for_task(&task);
    let id = engine::evolve::Evolution::prepare(store.as_ref(), &task, &config).expect("prepare");
    engine::evolve::record_failure(
        store.as_ref(),
        &id,
        None,
        &engine::evolve::JobFailure {
            error: "corrupt stored object <b>task.json</b>".into(),
            job: format!(r#"{{"kind":"evolution","evolution_id":"{id}"}}"#),
            receive_count: 5,
            at: engine::time::now_rfc3339(),
        },
    )
    .expect("record the failure");
    let b = Browser::start();
    b.go(&format!("http://{}/#token={TOKEN}", s.addr));
    b.wait_for(
        "return document.querySelectorAll('#evolutions tr[data-id]').length === 1",
        "the evolution row",
    );
    let row = b.js(
        "return [...document.querySelectorAll('#evolutions tr[data-id] td')].map(c => c.textContent)",
    );
    assert_eq!(row[0], json!(id), "{row}");
    // the error is shown as text, never as markup
    assert_eq!(
        row[4],
        json!("failed: corrupt stored object <b>task.json</b>"),
        "{row}"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#evolutions b').length"),
        json!(0)
    );
}
