//! Proposers in an evolution: the repo's template proposer (a real program), a hostile
//! one, a slow one, and an OpenAI-shaped server on loopback.

use crate::support::{code, fixture, root, tdev, tdev_json, write_script};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn templates() -> String {
    format!(
        "command:python3 {}",
        root().join("scripts/proposers/templates.py").display()
    )
}

fn abs() -> String {
    fixture("tasks/abs.toml").to_string_lossy().into_owned()
}

/// A stored record of evolution `id` in the `.tdev` store of `d`.
fn stored(d: &Path, kind: &str, id: &str, g: u32) -> Value {
    let p = d.join(format!(".tdev/evolution/{kind}/{id}/{g:06}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("json")
}

fn evolve(d: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["evolve", "--json"];
    args.extend_from_slice(extra);
    tdev_json(d, &args, 0)
}

#[test]
fn a_deterministic_proposer_in_sync_mode_gives_the_same_run_and_marks_its_members() {
    let t = templates();
    // a share of 0.05 of the 58 offspring past the 2 elites: 2 places for 5 templates
    let args = [
        "--task",
        &abs(),
        "--seed",
        "5",
        "--generations",
        "3",
        "--population",
        "60",
        "--proposer",
        &t,
        "--proposer-sync",
        "--proposer-env",
        "PATH",
        "--proposer-share",
        "0.05",
    ];
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let ra = evolve(a.path(), &args);
    let rb = evolve(b.path(), &args);
    assert_eq!(ra["best"], rb["best"], "{ra}\n{rb}");
    assert_eq!(ra["evaluations"], rb["evaluations"]);
    let id = ra["evolution_id"].as_str().expect("id");
    // generation 1 took the proposals: counted, stored, and its members marked
    let log = stored(a.path(), "fitness_logs", id, 1);
    let p = &log["proposals"];
    assert_eq!(p["requested"], 1, "{log}");
    assert_eq!(
        (&p["candidates"], &p["used"], &p["rejected"]),
        (&5.into(), &2.into(), &0.into()),
        "{log}"
    );
    let record = stored(a.path(), "proposals", id, 1);
    assert!(
        record["origin"]
            .as_str()
            .expect("origin")
            .starts_with("proposer:command:python3 templates.py")
    );
    let generation = stored(a.path(), "generations", id, 1);
    let marked: Vec<&Value> = generation["population"]
        .as_array()
        .expect("population")
        .iter()
        .filter(|m| m["proposed_by"].is_string())
        .collect();
    assert!(!marked.is_empty(), "{generation}");
    assert!(marked.iter().all(|m| m["parents"] == serde_json::json!([])));
}

#[test]
fn a_resumed_run_uses_the_stored_proposals_and_breeds_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // the template proposer, counting the requests it gets
    let log = d.join("asked.log");
    let wrapper = write_script(
        d,
        "counting.sh",
        &format!(
            "#!/bin/sh\necho asked >> {}\nexec python3 {}\n",
            log.display(),
            root().join("scripts/proposers/templates.py").display()
        ),
    );
    let spec = format!("command:{}", wrapper.display());
    // the quartic is not solved in 4 generations: each one asks
    let quartic = fixture("tasks/quartic.toml").to_string_lossy().into_owned();
    let first = evolve(
        d,
        &[
            "--task",
            &quartic,
            "--seed",
            "7",
            "--generations",
            "4",
            "--population",
            "40",
            "--proposer",
            &spec,
            "--proposer-sync",
            "--proposer-env",
            "PATH",
        ],
    );
    let asked = std::fs::read_to_string(&log).expect("log").lines().count();
    assert_eq!(asked, 4, "one request per generation bred");
    let id = first["evolution_id"].as_str().expect("id");
    assert_eq!(
        code(&tdev(d, &["rollback", id, "--generation", "2"]), "rollback"),
        0
    );
    let again = evolve(
        d,
        &[
            "--resume",
            id,
            "--proposer",
            &spec,
            "--proposer-sync",
            "--proposer-env",
            "PATH",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&log).expect("log").lines().count(),
        asked,
        "generations 3 and 4 took their stored proposals"
    );
    assert_eq!(first["best"], again["best"], "{first}\n{again}");
}

#[test]
fn hostile_candidates_are_refused_counted_and_quarantined_with_their_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let wasi = r#"(module (import \"wasi_snapshot_preview1\" \"proc_exit\" (func (param i32))) (func (export \"act\") (param i64) (result i64) local.get 0))"#;
    let answer = format!(
        r#"{{"candidates": [{{"wat": "(module (func (export \"act\") (param f64) (result f64) local.get 0))"}}, {{"wat": "{wasi}"}}, {{"wat": "(modul"}}, {{"wasm_b64": "not base64!"}}, {{"wat": "(module)", "wasm_b64": "AA=="}}, {{"wat": "(module (func (export \"act\") (param i64) (result i64) (loop $l (br $l)) local.get 0))"}}]}}"#
    );
    let script = write_script(
        d,
        "hostile.sh",
        &format!("#!/bin/sh\ncat > /dev/null\ncat <<'EOF'\n{answer}\nEOF\n"),
    );
    let spec = format!("command:{}", script.display());
    let r = evolve(
        d,
        &[
            "--task",
            &abs(),
            "--seed",
            "3",
            "--generations",
            "2",
            "--population",
            "30",
            "--proposer",
            &spec,
            "--proposer-sync",
            "--proposer-share",
            "0.5",
        ],
    );
    let id = r["evolution_id"].as_str().expect("id");
    let log = stored(d, "fitness_logs", id, 1);
    let p = &log["proposals"];
    // wrong signature, WASI import, bad text, bad base64, both forms: refused
    assert_eq!(
        (&p["candidates"], &p["rejected"], &p["used"]),
        (&6.into(), &5.into(), &1.into()),
        "{log}"
    );
    // the WASI module is quarantined as the proposer's (the endless loop runs out of the
    // task's budget: a wrong answer, as for a bred module)
    let list = tdev_json(d, &["quarantine", "list", "--json"], 0);
    let items = list["quarantine"].as_array().expect("items");
    let from_proposer: Vec<&Value> = items
        .iter()
        .filter(|i| i["origin"]["source"] == "proposer")
        .collect();
    assert_eq!(from_proposer.len(), 1, "{list}");
    assert_eq!(
        from_proposer[0]["findings"],
        serde_json::json!(["import_denied"]),
        "{list}"
    );
    for i in &from_proposer {
        assert_eq!(i["origin"]["evolution_id"], id, "{i}");
        assert!(
            i["name"]
                .as_str()
                .expect("name")
                .starts_with("proposer:command:hostile.sh"),
            "{i}"
        );
    }
    let reasons: Vec<&str> = from_proposer
        .iter()
        .map(|i| i["reason"].as_str().expect("reason"))
        .collect();
    assert!(reasons.contains(&"static"), "{reasons:?}");
}

#[test]
fn a_slow_or_failing_proposer_never_holds_a_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let marker = d.join("answered");
    let slow = write_script(
        d,
        "slow.sh",
        &format!(
            "#!/bin/sh\ncat > /dev/null\nsleep 20\ntouch {}\necho '{{\"candidates\": []}}'\n",
            marker.display()
        ),
    );
    let quartic = fixture("tasks/quartic.toml").to_string_lossy().into_owned();
    let r = evolve(
        d,
        &[
            "--task",
            &quartic,
            "--seed",
            "2",
            "--generations",
            "4",
            "--population",
            "30",
            "--proposer",
            &format!("command:{}", slow.display()),
            "--proposer-env",
            "PATH",
        ],
    );
    assert_eq!(r["generations"], 4, "{r}");
    // the evolution ended before the proposer answered, and its process was ended too
    assert!(!marker.exists(), "the run waited for the proposer");
    let id = r["evolution_id"].as_str().expect("id");
    let late: u64 = (1..=4)
        .map(|g| {
            stored(d, "fitness_logs", id, g)["proposals"]["late"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(late >= 1, "an unanswered request is counted late");
    std::thread::sleep(std::time::Duration::from_secs(1));
    // a proposer that fails: counted, the run goes on
    let failing = write_script(d, "failing.sh", "#!/bin/sh\necho nope >&2\nexit 7\n");
    let r = evolve(
        d,
        &[
            "--task",
            &quartic,
            "--seed",
            "2",
            "--generations",
            "2",
            "--population",
            "30",
            "--proposer",
            &format!("command:{}", failing.display()),
            "--proposer-sync",
        ],
    );
    let id = r["evolution_id"].as_str().expect("id");
    let log = stored(d, "fitness_logs", id, 1);
    assert_eq!(log["proposals"]["failed"], 1, "{log}");
    let record = stored(d, "proposals", id, 1);
    assert!(
        record["error"].as_str().expect("error").contains("nope"),
        "{record}"
    );
    // a bad spec or share is refused before anything runs
    let out = tdev(
        d,
        &["evolve", "--task", &abs(), "--proposer", "carrier-pigeon:x"],
    );
    assert_eq!(code(&out, "bad spec"), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a proposer"));
    let out = tdev(
        d,
        &[
            "evolve",
            "--task",
            &abs(),
            "--proposer",
            &templates(),
            "--proposer-share",
            "2",
        ],
    );
    assert_eq!(code(&out, "bad share"), 1);
}

/// What a model server was asked: each request's line and authorization, and its body.
type Asked = Arc<Mutex<Vec<(String, Value)>>>;

/// A model server on loopback: takes each request's line, authorization and JSON body,
/// and answers `answer` (as JSON) with one exact abs module in a ```wat block of the
/// model's text.
fn model_server(answer: fn(&str) -> Value) -> (u16, Asked) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Asked = Arc::default();
    let keep = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let request_line = line.trim().to_string();
            let mut len = 0usize;
            let mut auth = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = line.trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            keep.lock()
                .expect("lock")
                .push((format!("{request_line} {auth}"), v));
            let content = "Here is one:\n```wat\n(module (func (export \"act\") (param i64) (result i64) (select (local.get 0) (i64.sub (i64.const 0) (local.get 0)) (i64.ge_s (local.get 0) (i64.const 0)))))\n```\n";
            let answer = answer(content).to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn an_openai_shaped_server_on_loopback_is_asked_and_its_wat_blocks_used() {
    let (port, seen) = model_server(
        |content| serde_json::json!({"choices": [{"message": {"role": "assistant", "content": content}}]}),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args([
            "evolve",
            "--task",
            &abs(),
            "--seed",
            "4",
            "--generations",
            "3",
            "--json",
            "--proposer",
            &format!("openai:http://127.0.0.1:{port}/v1"),
            "--proposer-sync",
        ])
        .current_dir(dir.path())
        .env("TDEV_PROPOSER_MODEL", "local-model")
        .env("TDEV_PROPOSER_KEY", "sk-test-key")
        .output()
        .expect("tdev");
    assert_eq!(
        code(&out, "evolve"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    // the model's module is exact: the run is solved at generation 1
    assert_eq!(r["solved"], true, "{r}");
    assert_eq!(r["generations"], 1, "{r}");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (head, body) = &seen[0];
    assert!(head.starts_with("POST /v1/chat/completions"), "{head}");
    assert!(head.contains("Bearer sk-test-key"), "{head}");
    assert_eq!(body["model"], "local-model");
    let prompt = body["messages"][1]["content"].as_str().expect("prompt");
    assert!(prompt.contains("act(i64) -> i64"), "{prompt}");
    let id = r["evolution_id"].as_str().expect("id");
    let record = stored(dir.path(), "proposals", id, 1);
    assert_eq!(record["origin"], "proposer:openai:local-model", "{record}");
}

/// docs/proposers.md: its `sh` commands work when pasted in a checkout.
#[test]
fn the_proposers_guide_commands_work_as_written() {
    let guide = std::fs::read_to_string(root().join("docs/proposers.md")).expect("guide");
    let script = format!("set -eu\n{}\n", crate::support::sh_lines(&guide).join("\n"));
    assert!(script.contains("templates.py"), "guide changed shape");
    let dir = crate::readme::checkout();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", crate::support::path_with_tdev())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}\n{text}");
    // abs has a sign branch among the templates: solved at the first generation bred
    assert!(
        text.contains("solved:     yes") || text.contains("solved"),
        "{text}"
    );
}

#[cfg(feature = "aws")]
#[test]
fn a_bedrock_converse_server_on_loopback_is_asked_and_its_wat_blocks_used() {
    let (port, seen) = model_server(|content| {
        serde_json::json!({
            "output": {"message": {"role": "assistant", "content": [{"text": content}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30},
            "metrics": {"latencyMs": 5}
        })
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args([
            "evolve",
            "--task",
            &abs(),
            "--seed",
            "4",
            "--generations",
            "3",
            "--json",
            "--proposer",
            "bedrock:anthropic.claude-test-v1",
            "--proposer-sync",
        ])
        .current_dir(dir.path())
        .env(
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            format!("http://127.0.0.1:{port}"),
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("tdev");
    assert_eq!(
        code(&out, "evolve"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (&r["solved"], &r["generations"]),
        (&Value::Bool(true), &1.into()),
        "{r}"
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (head, body) = &seen[0];
    // the Converse call, signed (SigV4)
    assert!(
        head.starts_with("POST /model/anthropic.claude-test-v1/converse"),
        "{head}"
    );
    assert!(head.contains("AWS4-HMAC-SHA256"), "{head}");
    let prompt = body["messages"][0]["content"][0]["text"]
        .as_str()
        .expect("prompt");
    assert!(prompt.contains("act(i64) -> i64"), "{prompt}");
    assert!(
        body["system"][0]["text"]
            .as_str()
            .is_some_and(|s| s.contains("WebAssembly")),
        "{body}"
    );
    let id = r["evolution_id"].as_str().expect("id");
    let record = stored(dir.path(), "proposals", id, 1);
    assert_eq!(
        record["origin"], "proposer:bedrock:anthropic.claude-test-v1",
        "{record}"
    );
}

#[test]
fn the_metrics_count_what_became_of_an_evolutions_proposals() {
    let s = crate::server::start(&[], crate::serve::TOKEN);
    let d = s.dir.path();
    let quartic = fixture("tasks/quartic.toml").to_string_lossy().into_owned();
    let t = templates();
    let r = evolve(
        d,
        &[
            "--task",
            &quartic,
            "--seed",
            "3",
            "--generations",
            "3",
            "--population",
            "40",
            "--proposer",
            &t,
            "--proposer-sync",
            "--proposer-env",
            "PATH",
            "--proposer-share",
            "0.25",
        ],
    );
    let id = r["evolution_id"].as_str().expect("id");
    // what the generations counted, summed
    let (mut used, mut rejected) = (0u64, 0u64);
    for g in 1..=3 {
        let p = &stored(d, "fitness_logs", id, g)["proposals"];
        used += p["used"].as_u64().expect("used");
        rejected += p["rejected"].as_u64().expect("rejected");
    }
    assert!(used > 0, "the templates are admitted");
    let au = crate::serve::auth();
    let (status, _, body) = crate::serve::http(
        &s.addr,
        "GET",
        "/metrics",
        &[("Authorization", au.as_str())],
        b"",
    );
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    for (name, want) in [
        ("tdev_evolution_proposals_used", used),
        ("tdev_evolution_proposals_rejected", rejected),
        ("tdev_evolution_proposals_failed", 0),
    ] {
        let line = format!("{name}{{evolution_id=\"{id}\"}} {want}\n");
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
}
