//! The router in process (`tower::ServiceExt::oneshot`): every route group, the token
//! guard, and the JSON error shape of every refusal.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "t0ken";

fn state() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine::store::open(&format!("file://{}", dir.path().display())).expect("store");
    let sandbox = Sandbox::new(runtime::Policy::default_policy()).expect("sandbox");
    (
        AppState::new(
            sandbox,
            store,
            Tokens::new(vec![
                auth::Token::all_scopes("default", TOKEN, auth::DEFAULT_RATE).expect("token"),
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

/// The answer's status, head and body as text.
async fn call_raw(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The answer's status and JSON body (null when it is not JSON).
async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, body) = call_raw(app, req).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn request(method: &str, uri: &str, token: Option<&str>) -> axum::http::request::Builder {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    request("GET", uri, token)
        .body(Body::empty())
        .expect("request")
}

/// A request without a body, with the token.
fn bare(method: &str, uri: &str) -> Request<Body> {
    request(method, uri, Some(TOKEN))
        .body(Body::empty())
        .expect("request")
}

fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    request("POST", uri, Some(TOKEN))
        .header("content-type", content_type)
        .body(body.into())
        .expect("request")
}

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("wat")
}

const ADD: &str = r#"(module (func (export "act") (param i64 i64) (result i64)
    local.get 0 local.get 1 i64.add))"#;
const SPIN: &str = r#"(module (func (export "act") (result i32) (loop $l (br $l)) i32.const 0))"#;

/// A small evolution `id` of generations 0 and 1 in the file store at `root` (a
/// rollback checks the generation it goes back to).
fn two_generations(root: &std::path::Path, id: &str) {
    let store = engine::store::open(&format!("file://{}", root.display())).expect("store");
    let task = engine::task::Task::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/quartic.toml"),
    )
    .expect("task");
    let config = engine::evolve::EvolveConfig {
        population: 10,
        generations: 1,
        threads: 1,
        ..engine::evolve::EvolveConfig::for_task(&task)
    };
    let prepared = engine::evolve::Prepared {
        id: id.to_string(),
        task,
        config,
    };
    let sandbox = Sandbox::new(runtime::Policy::default_policy()).expect("sandbox");
    let mut e =
        engine::evolve::Evolution::start_prepared(sandbox, store, prepared, vec![]).expect("start");
    assert_eq!(e.run(|_| {}).expect("run").generations, 1);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt")
}

/// A 400 in the JSON error shape.
fn assert_bad_request((s, v): (StatusCode, Value), what: &str) {
    assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
    assert_eq!(v["error"]["code"], "bad_request", "{what}: {v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: {v}");
}

#[test]
fn a_panic_on_a_blocking_thread_is_a_500_naming_the_task() {
    rt().block_on(async {
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
fn the_token_guard_and_axums_own_answers() {
    rt().block_on(async {
        let (st, _dir) = state();
        let app = app(st);
        let (s, v) = call(&app, get("/v1/healthz", None)).await;
        assert_eq!((s, v), (StatusCode::OK, json!({"status": "ok"})));
        let (s, v) = call(&app, get("/v1/evolutions", None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["code"], "unauthorized");
        let (s, v) = call(&app, get("/v1/evolutions", Some(TOKEN))).await;
        assert_eq!((s, v), (StatusCode::OK, json!({"evolutions": []})));
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
            let req = Request::builder()
                .uri("/v1/evolutions")
                .header("authorization", header)
                .body(Body::empty())
                .expect("request");
            assert_eq!(call(&app, req).await.0, want, "{header}");
        }
        assert_bad_request(
            call(&app, get("/v1/quarantine/not-an-id", Some(TOKEN))).await,
            "a bad agent id",
        );
        // axum's own answers get the JSON error shape too
        let (s, v) = call(&app, get("/v1/nothing", Some(TOKEN))).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
        let (s, v) = call(&app, get("/v1/run", Some(TOKEN))).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(v["error"]["code"], "method_not_allowed");
        let (s, v) = call(
            &app,
            post(
                "/v1/validate",
                "application/wasm",
                vec![0u8; BODY_LIMIT + 1],
            ),
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(v["error"]["code"], "payload_too_large");
        let (s, v) = call(
            &app,
            get("/v1/evolutions/x/rollback?generation=1", Some(TOKEN)),
        )
        .await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
        assert_bad_request(
            call(&app, get("/v1/quarantine/%FF%FE", Some(TOKEN))).await,
            "a path that is not UTF-8",
        );
    });
}

#[test]
fn runs_and_validations_answer_the_cli_objects() {
    rt().block_on(async {
        let (st, _dir) = state();
        let app = app(st);
        let (s, v) = call(&app, post("/v1/validate", "application/wasm", wasm(ADD))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "admitted",
                "agent_id",
                "findings",
                "held",
                "min_safety_score",
                "safety_score",
                "size_bytes"
            ]
        );
        assert_eq!(v["admitted"], true);
        assert_eq!(v["held"], false);
        let (s, v) = call(
            &app,
            post("/v1/run?args=40,2", "application/wasm", wasm(ADD)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["outcome"], "ok");
        assert_eq!(v["result"], 42);
        assert_eq!(v["result_bits"], "42");
        assert_eq!(v["trap"], Value::Null);
        // the JSON form, args as a list
        let body = json!({"module_b64": base64_of(&wasm(ADD)), "args": [1, "2"]}).to_string();
        let (s, v) = call(&app, post("/v1/run", "application/json", body)).await;
        assert_eq!((s, v["result"].clone()), (StatusCode::OK, json!(3)), "{v}");
        // a run that hits a limit is quarantined; the second is refused without running
        let (s, v) = call(&app, post("/v1/run", "application/wasm", wasm(SPIN))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(
            ["out_of_fuel", "deadline"].contains(&v["outcome"].as_str().unwrap_or("")),
            "{v}"
        );
        assert_eq!(v["quarantined"], true);
        let (s, v) = call(&app, post("/v1/run", "application/wasm", wasm(SPIN))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["outcome"], "rejected");
        assert_eq!(v["rejected_because"], "quarantined");
        assert_eq!(
            (v["fuel_used"].clone(), v["output_hex"].clone()),
            (json!(0), json!(""))
        );
    });
}

#[test]
fn unknown_or_repeated_fields_and_parameters_are_400s_in_the_json_shape() {
    rt().block_on(async {
        let (st, _dir) = state();
        let app = app(st);
        let add64 = base64_of(&wasm(ADD));
        for (what, req) in [
            (
                "an unknown parameter",
                post("/v1/run?argz=1,2", "application/wasm", wasm(ADD)),
            ),
            (
                "a parameter twice",
                post("/v1/run?args=1,2&args=3,4", "application/wasm", wasm(ADD)),
            ),
            (
                "a parameter on validate",
                post("/v1/validate?args=1", "application/wasm", wasm(ADD)),
            ),
            (
                "an unknown JSON field",
                post(
                    "/v1/run",
                    "application/json",
                    format!(r#"{{"module_b64": "{add64}", "input": ""}}"#),
                ),
            ),
            (
                "a JSON field twice",
                post(
                    "/v1/run",
                    "application/json",
                    format!(r#"{{"module_b64": "{add64}", "module_b64": "{add64}"}}"#),
                ),
            ),
            (
                "a JSON body that is not JSON",
                post("/v1/run", "application/json", "{not json"),
            ),
            (
                "module_b64 missing",
                post("/v1/validate", "application/json", r#"{"args": "1"}"#),
            ),
            (
                "a missing generation",
                bare("POST", "/v1/evolutions/e1/rollback"),
            ),
            (
                "a generation twice",
                bare(
                    "POST",
                    "/v1/evolutions/e1/rollback?generation=1&generation=1",
                ),
            ),
            (
                "a generation with a sign",
                bare("POST", "/v1/evolutions/e1/rollback?generation=+1"),
            ),
            (
                "an evolution id with a dot",
                get("/v1/evolutions/e.1", Some(TOKEN)),
            ),
            (
                "an agent id in upper case",
                get(
                    &format!("/v1/agents/sha256:{}", "A".repeat(64)),
                    Some(TOKEN),
                ),
            ),
        ] {
            let (s, headers, body) = call_raw(&app, req).await;
            assert!(
                headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/json")),
                "{what}: {headers:?}"
            );
            assert_bad_request(
                (s, serde_json::from_str(&body).unwrap_or(Value::Null)),
                what,
            );
        }
    });
}

#[test]
fn review_decisions_and_the_audit_log() {
    rt().block_on(async {
        let (st, dir) = state();
        let app = app(st);
        let (_, v) = call(&app, post("/v1/run", "application/wasm", wasm(SPIN))).await;
        let id = v["agent_id"].as_str().expect("id").to_string();
        let (s, v) = call(&app, get(&format!("/v1/agents/{id}"), Some(TOKEN))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["quarantine"], "quarantined");
        assert_eq!(v["size_bytes"], wasm(SPIN).len());
        assert_eq!(v["metadata"], Value::Null);
        let (s, v) = call(&app, get(&format!("/v1/agents/{id}/wat"), Some(TOKEN))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(v["wat"].as_str().is_some_and(|w| w.contains("loop")), "{v}");
        let (_, v) = call(&app, get("/v1/quarantine", Some(TOKEN))).await;
        assert_eq!(v["quarantine"][0]["agent_id"], id.as_str());
        assert_eq!(v["quarantine"][0]["traps"], 1);
        let (_, v) = call(&app, get(&format!("/v1/quarantine/{id}"), Some(TOKEN))).await;
        assert_eq!(v["lineage"], json!([]));
        assert!(v["wat"].is_string() && v["trap_history"].is_array(), "{v}");
        let (s, v) = call(&app, bare("POST", &format!("/v1/quarantine/{id}/release"))).await;
        assert_eq!(
            (s, v["status"].clone()),
            (StatusCode::OK, json!("released")),
            "{v}"
        );
        let (s, v) = call(&app, bare("DELETE", &format!("/v1/quarantine/{id}"))).await;
        assert_eq!(
            (s, v["status"].clone()),
            (StatusCode::OK, json!("purged")),
            "{v}"
        );
        let unknown = format!("sha256:{}", "0".repeat(64));
        let (s, v) = call(&app, get(&format!("/v1/agents/{unknown}"), Some(TOKEN))).await;
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (StatusCode::NOT_FOUND, json!("not_found"))
        );
        // a rollback (of a small evolution of two generations), and an emergency stop
        two_generations(dir.path(), "evo-t");
        let (s, v) = call(
            &app,
            bare("POST", "/v1/evolutions/evo-t/rollback?generation=1"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v, json!({"evolution_id": "evo-t", "head_generation": 1}));
        let (s, v) = call(&app, bare("POST", "/v1/emergency-stop")).await;
        assert_eq!((s, v), (StatusCode::OK, json!({"stopped": true})));
        assert!(
            engine::control::stop_requested_at(
                engine::store::open(&format!("file://{}", dir.path().display()))
                    .expect("store")
                    .as_ref()
            )
            .expect("read the marker")
            .is_some()
        );
        let (_, v) = call(&app, get("/v1/audit", Some(TOKEN))).await;
        let actions: Vec<&str> = v["audit"]
            .as_array()
            .expect("audit")
            .iter()
            .map(|e| e["action"].as_str().expect("action"))
            .collect();
        for a in [
            "quarantined",
            "trapped",
            "released",
            "purged",
            "rolled_back",
            "emergency_stop",
        ] {
            assert!(actions.contains(&a), "{a} missing: {v}");
        }
        let stop = v["audit"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["action"] == "emergency_stop"))
            .expect("the stop");
        assert_eq!(stop["agent_id"], Value::Null);
        assert_eq!(stop["detail"], "tdev serve API (token default)");
        // newest first
        let times: Vec<&str> = v["audit"]
            .as_array()
            .expect("audit")
            .iter()
            .map(|e| e["at"].as_str().expect("at"))
            .collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    });
}

#[test]
fn records_say_which_caller_and_name_and_decisions_say_who_and_why() {
    rt().block_on(async {
        let (st, _dir) = state();
        let app = app(st);
        // a named run: the record keeps the caller (the token) and the name
        let (_, v) = call(
            &app,
            post("/v1/run?name=nightly-7", "application/wasm", wasm(SPIN)),
        )
        .await;
        assert_eq!(v["quarantined"], true, "{v}");
        let id = v["agent_id"].as_str().expect("id").to_string();
        let (_, v) = call(&app, get("/v1/quarantine", Some(TOKEN))).await;
        let item = &v["quarantine"][0];
        assert_eq!(item["name"], "nightly-7", "{v}");
        assert_eq!(item["origin"]["source"], "api", "{v}");
        assert_eq!(item["origin"]["caller"], "default", "{v}");
        // held: validation says so, with the record's score
        let (s, v) = call(&app, post("/v1/validate", "application/wasm", wasm(SPIN))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (&v["held"], &v["admitted"]),
            (&json!(true), &json!(false)),
            "{v}"
        );
        assert_eq!(v["quarantine"]["reason"], "out_of_fuel", "{v}");
        // a run of the held module shows the record's score
        let (_, r) = call(&app, post("/v1/run", "application/wasm", wasm(SPIN))).await;
        assert_eq!(r["rejected_because"], "quarantined", "{r}");
        assert_eq!(r["safety_score"], v["quarantine"]["safety_score"], "{r}");
        // a bad name, a bad decision body: 400, nothing changes
        for uri in ["/v1/run?name=", "/v1/run?name=a%0Ab"] {
            assert_bad_request(
                call(&app, post(uri, "application/wasm", wasm(SPIN))).await,
                uri,
            );
        }
        let release = format!("/v1/quarantine/{id}/release");
        for body in [
            r#"{"by": "x", "extra": 1}"#,
            r#"{"reason": "two
lines"}"#,
            "not json",
        ] {
            assert_bad_request(
                call(&app, post(&release, "application/json", body.to_string())).await,
                body,
            );
        }
        let (_, v) = call(&app, get(&format!("/v1/quarantine/{id}"), Some(TOKEN))).await;
        assert_eq!(v["status"], "quarantined", "{v}");
        // release with who and why in the body
        let (s, v) = call(
            &app,
            post(
                &release,
                "application/json",
                r#"{"by": "carol", "reason": "reviewed the loop"}"#.to_string(),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let last = v["audit"]
            .as_array()
            .and_then(|a| a.last())
            .cloned()
            .expect("audit");
        assert_eq!(last["by"], "carol", "{v}");
        assert_eq!(last["reason"], "reviewed the loop", "{v}");
        assert_eq!(last["via"], "api (token default)", "{v}");
        // purge without a body: the token is who
        let (s, v) = call(&app, bare("DELETE", &format!("/v1/quarantine/{id}"))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let last = v["audit"]
            .as_array()
            .and_then(|a| a.last())
            .cloned()
            .expect("audit");
        assert_eq!(
            (&last["by"], &last["reason"]),
            (&json!("default"), &Value::Null),
            "{v}"
        );
    });
}

#[test]
fn metrics_count_runs_by_outcome_and_the_dashboard_is_locked_down() {
    rt().block_on(async {
        let (st, _dir) = state();
        let app = app(st);
        for _ in 0..2 {
            call(
                &app,
                post("/v1/run?args=1,2", "application/wasm", wasm(ADD)),
            )
            .await;
        }
        let (s, headers, text) = call_raw(&app, get("/metrics", Some(TOKEN))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(headers["content-type"], "text/plain; version=0.0.4");
        for needle in [
            "tdev_runs_total{outcome=\"ok\"} 2\n",
            "tdev_runs_refused_total 0\n",
            "tdev_run_seconds_count 2\n",
            "tdev_instantiate_seconds_bucket{le=\"+Inf\"} 2\n",
            "tdev_quarantine_modules 0\n",
            "# TYPE tdev_evolution_generation gauge\n",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        for (path, kind) in [("/", "text/html"), ("/dashboard.js", "text/javascript")] {
            let (s, headers, _) = call_raw(&app, get(path, None)).await;
            assert_eq!(s, StatusCode::OK, "{path}");
            assert!(
                headers["content-type"]
                    .to_str()
                    .is_ok_and(|v| v.starts_with(kind)),
                "{path}: {headers:?}"
            );
            assert!(
                headers["content-security-policy"]
                    .to_str()
                    .is_ok_and(|v| v.starts_with("default-src 'none'; script-src 'self';")),
                "{path}"
            );
            assert_eq!(headers["x-frame-options"], "DENY");
        }
    });
}

/// Standard padded base64, as a client would send it.
fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn queued_and_failed_evolutions_are_listed_with_their_error() {
    rt().block_on(async {
        let (st, dir) = state();
        let store =
            engine::store::open(&format!("file://{}", dir.path().display())).expect("store");
        let task = engine::task::Task::from_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/abs.toml"),
        )
        .expect("task");
        let config = engine::evolve::EvolveConfig::for_task(&task);
        let id =
            engine::evolve::Evolution::prepare(store.as_ref(), &task, &config).expect("prepare");
        let app = app(st);
        let (s, v) = call(&app, get("/v1/evolutions", Some(TOKEN))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let e = &v["evolutions"][0];
        assert_eq!(
            (&e["evolution_id"], &e["status"], &e["best_agent_id"]),
            (&json!(id), &json!("queued"), &Value::Null),
            "{v}"
        );
        assert!(e.get("error").is_none(), "{v}");
        engine::evolve::record_failure(
            store.as_ref(),
            &id,
            None,
            &engine::evolve::JobFailure {
                error: "corrupt stored object checkpoints/x/task.json: invalid".into(),
                job: format!(r#"{{"kind":"evolution","evolution_id":"{id}"}}"#),
                receive_count: 2,
                at: engine::time::now_rfc3339(),
            },
        )
        .expect("record");
        let (_, v) = call(&app, get("/v1/evolutions", Some(TOKEN))).await;
        let e = &v["evolutions"][0];
        assert_eq!(e["status"], "failed", "{v}");
        assert!(
            e["error"].as_str().is_some_and(|m| m.contains("task.json")),
            "{v}"
        );
        // it has no generation to show yet
        let (s, _) = call(&app, get(&format!("/v1/evolutions/{id}"), Some(TOKEN))).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    });
}
