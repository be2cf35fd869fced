//! Review over HTTP: auth, runs in each form, the quarantine's review and decisions,
//! the audit log, metrics, hostile ids and paths, and the dashboard's page.

use super::{TOKEN, auth, base64, call, http, json, ok_json, post_wasm, serve, wasm};
use crate::fixtures::is_right;

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
    let v = ok_json(post_wasm(a, "/v1/run?args=2,40", &wasm("agents/add.wat")));
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
    let v = ok_json(post_wasm(
        a,
        "/v1/validate",
        &wasm("hostile/wasi_import.wat"),
    ));
    assert_eq!(v["admitted"], false);
    // a hostile run is quarantined and reviewable
    let v = ok_json(post_wasm(a, "/v1/run", &wasm("hostile/infinite_loop.wat")));
    let limit = v["outcome"].as_str().expect("outcome").to_string();
    assert!(is_right("out_of_fuel", &limit), "{v}");
    assert_eq!(v["quarantined"], true);
    let id = v["agent_id"].as_str().expect("id").to_string();
    let ha = [("Authorization", au.as_str())];
    let l = json(&http(a, "GET", "/v1/quarantine", &ha, b"").2);
    assert_eq!(l["quarantine"][0]["agent_id"], id.as_str());
    let q = json(&http(a, "GET", &format!("/v1/quarantine/{id}"), &ha, b"").2);
    assert_eq!(q["trap_history"][0]["outcome"], limit.as_str());
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
        "tdev_runs_total{outcome=\"ok\"} 3".to_string(),
        format!("tdev_runs_total{{outcome=\"{limit}\"}} 1"),
        "tdev_instantiate_seconds_bucket{le=\"+Inf\"} 4".to_string(),
        "tdev_run_seconds_count 4".to_string(),
        "tdev_quarantine_modules 0".to_string(),
    ] {
        assert!(m.contains(&needle), "{needle} missing from:\n{m}");
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
    let v = ok_json(call(a, "POST", "/v1/emergency-stop"));
    assert_eq!(v["stopped"], true);
    assert!(
        s.dir
            .path()
            .join(".tdev/evolution/control/stop.json")
            .exists()
    );
    assert_eq!(http(a, "GET", "/v1/healthz", &[], b"").0, 200);
}
