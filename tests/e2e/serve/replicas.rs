//! Several `tdev serve` on one S3 + DynamoDB store (the server on loopback that
//! scripts/test.sh starts) behave as one service: decisions made through one replica
//! are seen by all, concurrent ones do not lose an update, and an emergency stop
//! through one interrupts the runs of every one.

use super::{TOKEN, call, http, json, ok_json, post_wasm, wasm};
use crate::aws::s3_uri;
use std::time::Duration;

/// Two servers on the store `uri`, with `extra` arguments each.
fn replicas(uri: &str, extra: &[&str]) -> (crate::server::Server, crate::server::Server) {
    let mut args = vec!["--store", uri];
    args.extend(extra);
    (
        crate::server::start(&args, TOKEN),
        crate::server::start(&args, TOKEN),
    )
}

#[test]
fn release_and_purge_through_two_replicas_at_once_have_one_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = s3_uri(dir.path());
    let (a, b) = replicas(&uri, &[]);
    for round in 0..3 {
        // a module quarantined through replica A, seen through B
        let module = wat::parse_str(format!(
            r#"(module (func (export "act") (result i32) (loop (br 0)) i32.const {round}))"#
        ))
        .expect("wat");
        let v = ok_json(post_wasm(&a.addr, "/v1/run", &module));
        assert_eq!(v["quarantined"], true, "{v}");
        let id = v["agent_id"].as_str().expect("id").to_string();
        let seen = ok_json(call(&b.addr, "GET", &format!("/v1/quarantine/{id}")));
        assert_eq!(seen["status"], "quarantined");
        // release through A while B purges
        let release = {
            let (addr, path) = (a.addr.clone(), format!("/v1/quarantine/{id}/release"));
            std::thread::spawn(move || call(&addr, "POST", &path))
        };
        let purge = {
            let (addr, path) = (b.addr.clone(), format!("/v1/quarantine/{id}"));
            std::thread::spawn(move || call(&addr, "DELETE", &path))
        };
        let (released, purged) = (
            release.join().expect("release"),
            purge.join().expect("purge"),
        );
        // the purge always lands; the release lands when it came first, else it is
        // refused, never lost
        assert_eq!(purged.0, 200, "{}", String::from_utf8_lossy(&purged.2));
        let from_a = ok_json(call(&a.addr, "GET", &format!("/v1/quarantine/{id}")));
        let from_b = ok_json(call(&b.addr, "GET", &format!("/v1/quarantine/{id}")));
        assert_eq!(from_a, from_b);
        assert_eq!(from_a["status"], "purged");
        let actions: Vec<&str> = from_a["audit"]
            .as_array()
            .expect("audit")
            .iter()
            .map(|e| e["action"].as_str().expect("action"))
            .collect();
        match released.0 {
            200 => assert_eq!(actions, ["quarantined", "trapped", "released", "purged"]),
            404 => assert_eq!(actions, ["quarantined", "trapped", "purged"]),
            other => panic!("release: {other} {}", String::from_utf8_lossy(&released.2)),
        }
    }
}

#[test]
fn an_emergency_stop_through_one_replica_stops_the_runs_of_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = s3_uri(dir.path());
    let policy = crate::support::write(
        dir.path(),
        "policy.toml",
        "[limits]\nfuel_per_call = 1000000000000000\nwall_clock_ms = 30000\n",
    );
    let (a, b) = replicas(&uri, &["--policy", policy.to_str().expect("path")]);
    let spinning = {
        let addr = b.addr.clone();
        std::thread::spawn(move || post_wasm(&addr, "/v1/run", &wasm("hostile/deadline_spin.wat")))
    };
    std::thread::sleep(Duration::from_millis(500));
    let v = ok_json(call(&a.addr, "POST", "/v1/emergency-stop"));
    assert_eq!(v["stopped"], true);
    // B's run ends with emergency_stop, long before its 30 s wall clock
    let r = json(&spinning.join().expect("run").2);
    assert_eq!(r["outcome"], "emergency_stop", "{r}");
    // B goes on serving
    let au = format!("Bearer {TOKEN}");
    let (st, _, _) = http(
        &b.addr,
        "GET",
        "/v1/quarantine",
        &[("Authorization", &au)],
        b"",
    );
    assert_eq!(st, 200);
}
