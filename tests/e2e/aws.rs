//! The AWS backend end to end, against the S3 + DynamoDB server on loopback that
//! scripts/test.sh starts (AWS_ENDPOINT_URL and credentials come from it).

use crate::evolve::{spawn_evolve, task};
use crate::fixtures::is_right;
use crate::support::{Reaped, code, evolve, fixture_arg, json, tdev};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a test waits for the store server or a process: a watchdog against a
/// hang, not a speed bound.
const WATCHDOG: Duration = Duration::from_secs(300);

static N: AtomicU32 = AtomicU32::new(0);

pub(crate) fn s3_uri(dir: &std::path::Path) -> String {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run the tests through scripts/test.sh"
    );
    let tag = format!(
        "e2e-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let uri = format!("s3://evo-{tag}?agents=agents-{tag}&table=state-{tag}");
    let out = tdev(dir, &["store", "init", "--store", &uri]);
    assert_eq!(
        code(&out, "init"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("created"), "{text}");
    // a second init checks what is there
    let again = tdev(dir, &["store", "init", "--store", &uri]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("present"));
    uri
}

#[test]
fn evolve_resume_rollback_and_copy_on_s3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let uri = s3_uri(d);
    let sum = task("sum_range");
    // SIGKILL a long run, then resume it from S3
    let mut child = spawn_evolve(
        d,
        &[
            "--task",
            &sum,
            "--seed",
            "9",
            "--population",
            "40",
            "--generations",
            "100000",
            "--store",
            &uri,
        ],
    );
    let t = Instant::now();
    let id = loop {
        let list = json(&tdev(d, &["evolutions", "--store", &uri, "--json"]), "list");
        if let Some(e) = list["evolutions"].as_array().and_then(|a| a.first())
            && e["head_generation"].as_u64().unwrap_or(0) >= 2
        {
            break e["evolution_id"].as_str().expect("id").to_string();
        }
        assert!(t.elapsed() < WATCHDOG, "no generation committed");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill();
    let list = json(&tdev(d, &["evolutions", "--store", &uri, "--json"]), "list");
    let head = list["evolutions"][0]["head_generation"]
        .as_u64()
        .expect("head");
    let target = (head + 2).to_string();
    let r = evolve(
        d,
        &["--resume", &id, "--generations", &target, "--store", &uri],
    );
    assert_eq!(r["generations"].as_u64(), Some(head + 2));
    // roll back and resume again
    assert_eq!(
        code(
            &tdev(d, &["rollback", &id, "--generation", "1", "--store", &uri]),
            "rollback"
        ),
        0
    );
    let list = json(&tdev(d, &["evolutions", "--store", &uri, "--json"]), "list");
    assert_eq!(list["evolutions"][0]["head_generation"], 1);
    let r = evolve(d, &["--resume", &id, "--generations", "3", "--store", &uri]);
    assert_eq!(r["generations"], 3);
    // copy the whole store to a local directory: the evolution resumes there
    let local = format!("file://{}", d.join("copy").display());
    let out = tdev(d, &["store", "copy", "--from", &uri, "--to", &local]);
    assert_eq!(
        code(&out, "copy"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = json(
        &tdev(d, &["evolutions", "--store", &local, "--json"]),
        "local list",
    );
    assert_eq!(list["evolutions"][0]["evolution_id"], id.as_str());
    let r = evolve(
        d,
        &["--resume", &id, "--generations", "4", "--store", &local],
    );
    assert_eq!(r["generations"], 4);
    // the state table has a row per committed generation, with the best module
    let states = std::fs::read_dir(d.join("copy/state").join(&id))
        .expect("state rows")
        .count();
    assert!(states >= 4, "{states} state rows");
}

/// Runs the endless loop on the store at `uri`: its path and its id, quarantined.
fn quarantined_spin(d: &std::path::Path, uri: &str) -> (String, String) {
    let spin = fixture_arg("hostile/infinite_loop.wat");
    let r = json(&tdev(d, &["run", &spin, "--store", uri, "--json"]), "run");
    assert_eq!(r["quarantined"], true);
    (spin, r["agent_id"].as_str().expect("id").to_string())
}

#[test]
fn quarantine_on_s3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let uri = s3_uri(d);
    let (_, id) = quarantined_spin(d, &uri);
    let l = json(
        &tdev(d, &["quarantine", "list", "--store", &uri, "--json"]),
        "list",
    );
    assert_eq!(l["quarantine"][0]["agent_id"], id.as_str());
    let s = json(
        &tdev(d, &["quarantine", "show", &id, "--store", &uri, "--json"]),
        "show",
    );
    assert!(
        is_right(
            "out_of_fuel",
            s["trap_history"][0]["outcome"].as_str().unwrap_or("")
        ),
        "{s}"
    );
    assert!(s["wat"].as_str().expect("wat").contains("loop"));
    assert_eq!(
        code(
            &tdev(d, &["quarantine", "release", &id, "--store", &uri]),
            "release"
        ),
        0
    );
    assert_eq!(
        code(
            &tdev(d, &["quarantine", "purge", &id, "--store", &uri]),
            "purge"
        ),
        0
    );
    let l = json(
        &tdev(d, &["quarantine", "list", "--store", &uri, "--json"]),
        "list",
    );
    assert_eq!(l["quarantine"], serde_json::json!([]));
    // nothing was written to the local default store
    assert!(!d.join(".tdev/agents/quarantine").exists());
}

#[test]
fn concurrent_trapping_runs_are_all_counted_on_s3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // the record keeps the latest 3 traps and counts all of them
    let uri = format!("{}&trap_history=3", s3_uri(d));
    let (spin, id) = quarantined_spin(d, &uri);
    assert_eq!(
        code(
            &tdev(d, &["quarantine", "release", &id, "--store", &uri]),
            "release"
        ),
        0
    );
    // released: it runs again, and each trap goes into its record, all at once
    const RUNS: usize = 8;
    let children: Vec<_> = (0..RUNS)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_tdev"))
                .args(["run", &spin, "--store", &uri, "--json"])
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let s = json(
        &tdev(d, &["quarantine", "show", &id, "--store", &uri, "--json"]),
        "show",
    );
    assert_eq!(s["status"], "released");
    // an endless loop runs out of fuel, or on a loaded machine out of wall clock
    let counted = ["out_of_fuel", "deadline"]
        .iter()
        .map(|w| s["trap_counts"][w].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert_eq!(counted, RUNS as u64 + 1, "{s}");
    assert_eq!(s["trap_history"].as_array().expect("history").len(), 3);
    let l = json(
        &tdev(d, &["quarantine", "list", "--store", &uri, "--json"]),
        "list",
    );
    assert_eq!(l["quarantine"][0]["traps"], RUNS as u64 + 1);
    let audit: Vec<&str> = s["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .filter(|a| *a != "trapped")
        .collect();
    assert_eq!(audit, ["quarantined", "released"]);
}

#[test]
fn unreachable_endpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args([
            "store",
            "init",
            "--store",
            "s3://evo-x?agents=agents-x&table=state-x",
        ])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tdev");
    // the SDK's retries end; the watchdog only keeps a hang from stalling the suite
    let out = Reaped::new(child).finish(WATCHDOG, "store init on a closed port");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("remote store") && err.contains("evo-x"),
        "{err}"
    );
    // a URI missing its table is refused before any network call
    let out = tdev(
        dir.path(),
        &[
            "quarantine",
            "list",
            "--store",
            "s3://evo-x?agents=agents-x",
        ],
    );
    assert_eq!(code(&out, "bad uri"), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("table"));
}

#[test]
fn api_serves_an_s3_store() {
    use crate::serve::{auth, http, ok_json, post_wasm, serve, wasm};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let uri = s3_uri(d);
    let r = evolve(
        d,
        &[
            "--task",
            &task("sum_range"),
            "--seed",
            "4",
            "--population",
            "30",
            "--generations",
            "3",
            "--store",
            &uri,
        ],
    );
    let id = r["evolution_id"].as_str().expect("id").to_string();
    let s = serve(&["--store", &uri]);
    let au = auth();
    let h = [("Authorization", au.as_str())];
    let body = |path: &str, method: &str| {
        let (st, _, b) = http(&s.addr, method, path, &h, b"");
        assert_eq!(st, 200, "{method} {path}: {}", String::from_utf8_lossy(&b));
        serde_json::from_slice::<serde_json::Value>(&b).expect("JSON")
    };
    let list = body("/v1/evolutions", "GET");
    assert_eq!(list["evolutions"][0]["evolution_id"], id.as_str());
    assert_eq!(list["evolutions"][0]["head_generation"], 3);
    let one = body(&format!("/v1/evolutions/{id}"), "GET");
    assert_eq!(one["generations"].as_array().expect("gens").len(), 4);
    let rb = body(
        &format!("/v1/evolutions/{id}/rollback?generation=1"),
        "POST",
    );
    assert_eq!(rb["head_generation"], 1);
    assert_eq!(
        body("/v1/evolutions", "GET")["evolutions"][0]["head_generation"],
        1
    );
    // a hostile run is quarantined in the S3 store and reviewable there
    let v = ok_json(post_wasm(
        &s.addr,
        "/v1/run",
        &wasm("hostile/infinite_loop.wat"),
    ));
    assert_eq!(v["quarantined"], true);
    let qid = v["agent_id"].as_str().expect("id");
    let q = body(&format!("/v1/quarantine/{qid}"), "GET");
    assert_eq!(q["trap_history"][0]["outcome"], v["outcome"], "{q}");
    let cli = json(
        &tdev(d, &["quarantine", "list", "--store", &uri, "--json"]),
        "list",
    );
    assert_eq!(cli["quarantine"][0]["agent_id"], qid);
    assert!(!s.dir.path().join(".tdev").exists(), "nothing local");
    assert_eq!(body("/v1/emergency-stop", "POST")["stopped"], true);
}
