//! The fleet end to end: `tdev queue`, `tdev submit` and `tdev worker` processes on the
//! SQS, S3 and DynamoDB server on loopback that scripts/test.sh starts.

use crate::aws::s3_uri;
use crate::evolve::task;
use crate::support::{Reaped, code, evolve, json, tdev, tdev_json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A watchdog against a hang, not a speed bound.
const WATCHDOG: Duration = Duration::from_secs(300);

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh queue (`max_receives` deliveries before its dead-letter queue): its URL and
/// the dead-letter queue's.
fn queue(d: &Path, max_receives: u32) -> (String, String) {
    let name = format!(
        "e2e-fleet-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos())
    );
    let v = tdev_json(
        d,
        &[
            "queue",
            "create",
            &name,
            "--max-receives",
            &max_receives.to_string(),
            "--json",
        ],
        0,
    );
    let url = |k: &str| v[k].as_str().expect("url").to_string();
    (url("queue_url"), url("dead_letter_url"))
}

/// `tdev worker --json ARGS` in the background, its job lines piped.
fn spawn_worker(d: &Path, args: &[&str]) -> Reaped {
    spawn_worker_env(d, args, &[])
}

/// As [`spawn_worker`], with more variables in its environment.
fn spawn_worker_env(d: &Path, args: &[&str], env: &[(&str, &str)]) -> Reaped {
    let child = Command::new(env!("CARGO_BIN_EXE_tdev"))
        .envs(env.iter().copied())
        .arg("worker")
        .args(args)
        .arg("--json")
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    Reaped::new(child)
}

/// Waits for a worker to end by itself (`--idle-exit`, `--max-jobs`); checks it
/// exited 0 and returns what it printed.
fn finished(w: Reaped) -> std::process::Output {
    let out = w.finish(WATCHDOG, "a worker");
    assert_eq!(
        code(&out, "worker"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The job lines a worker printed.
fn job_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The one entry of `tdev evolutions --json` on `store`.
fn entry(d: &Path, store: &str, id: &str) -> serde_json::Value {
    let list = tdev_json(d, &["evolutions", "--store", store, "--json"], 0);
    let all = list["evolutions"].as_array().expect("evolutions").clone();
    let mut matching = all.into_iter().filter(|e| e["evolution_id"] == id);
    let e = matching.next().unwrap_or_else(|| panic!("{id} not listed"));
    assert!(matching.next().is_none(), "{id} listed twice");
    e
}

fn submit(d: &Path, args: &[&str]) -> String {
    let mut all = vec!["submit"];
    all.extend(args);
    all.push("--json");
    let v = tdev_json(d, &all, 0);
    v["evolution_id"]
        .as_str()
        .expect("evolution_id")
        .to_string()
}

#[test]
fn a_submitted_evolution_is_the_one_evolve_breeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let uri = s3_uri(d);
    let (q, _dead) = queue(d, 3);
    let sum = task("sum_range");
    let params = ["--seed", "3", "--population", "60", "--generations", "8"];
    let mut args = vec![
        "--task",
        sum.as_str(),
        "--queue",
        q.as_str(),
        "--store",
        &uri,
    ];
    args.extend(params);
    let id = submit(d, &args);
    // submit returns at once: the evolution waits on the queue
    let e = entry(d, &uri, &id);
    assert_eq!(e["status"], "queued", "{e}");
    assert_eq!(e["best_agent_id"], serde_json::Value::Null);
    let out = finished(spawn_worker(
        d,
        &["--queue", &q, "--store", &uri, "--max-jobs", "1"],
    ));
    let lines = job_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "evolved", "{lines:?}");
    assert_eq!(lines[0]["job"]["kind"], "evolution");
    assert_eq!(lines[0]["job"]["evolution_id"], id.as_str());
    // the same run as `tdev evolve` with the same parameters, on another store
    let mut local = vec!["--task", sum.as_str(), "--store", "file://alone"];
    local.extend(params);
    let alone = evolve(d, &local);
    let e = entry(d, &uri, &id);
    assert_eq!(e["best_agent_id"], alone["best"]["agent_id"], "{e}");
    assert_eq!(e["head_generation"], alone["generations"]);
    assert_eq!(lines[0]["best_agent_id"], alone["best"]["agent_id"]);
    let status = if alone["solved"] == true {
        "solved"
    } else {
        "finished"
    };
    assert_eq!(e["status"], status);
    // the job is gone from the queue
    let depth = tdev_json(d, &["queue", "status", "--queue", &q, "--json"], 0);
    assert_eq!(
        (depth["waiting"].as_u64(), depth["in_flight"].as_u64()),
        (Some(0), Some(0)),
        "{depth}"
    );
}

/// Runs a Python snippet with boto3 (from the moto server's venv) against the
/// loopback endpoint.
pub(crate) fn boto(script: &str, args: &[&str]) -> String {
    let python = std::env::var("TDEV_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const BOTO: &str = "import boto3, os, sys\n\
s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n";

/// The evolution bucket of an `s3://BUCKET?…` store URI.
fn bucket(uri: &str) -> &str {
    uri.trim_start_matches("s3://")
        .split('?')
        .next()
        .expect("bucket")
}

#[test]
fn three_workers_one_killed_breed_what_one_worker_breeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sum = task("sum_range");
    let plan = [
        "--seed",
        "11",
        "--population",
        "200",
        "--generations",
        "24",
        "--islands",
        "3",
        "--epoch-generations",
        "4",
        "--migrants",
        "3",
        // a hard threshold: every epoch runs
        "--selection",
        "tournament",
    ];
    let run = |uri: &str, q: &str| {
        let mut args = vec!["--task", sum.as_str(), "--queue", q, "--store", uri];
        args.extend(plan);
        submit(d, &args)
    };
    // one worker alone
    let uri1 = s3_uri(d);
    let (q1, _) = queue(d, 5);
    let id1 = run(&uri1, &q1);
    finished(spawn_worker(
        d,
        &[
            "--queue",
            &q1,
            "--store",
            &uri1,
            "--idle-exit",
            "6",
            "--retry-delay",
            "1",
        ],
    ));
    let alone = entry(d, &uri1, &id1);
    assert!(
        matches!(alone["status"].as_str(), Some("solved" | "finished")),
        "{alone}"
    );
    assert_eq!(alone["islands"], 3);

    // three workers, one killed while it holds a job
    let uri = s3_uri(d);
    boto(
        &format!(
            "{BOTO}s3.put_bucket_versioning(Bucket=sys.argv[1], \
             VersioningConfiguration={{'Status': 'Enabled'}})"
        ),
        &[bucket(&uri)],
    );
    let (q, _) = queue(d, 5);
    let id = run(&uri, &q);
    let worker_args = [
        "--queue",
        q.as_str(),
        "--store",
        uri.as_str(),
        "--idle-exit",
        "8",
        "--visibility",
        "3",
        "--retry-delay",
        "1",
        "--threads",
        "1",
    ];
    // The doomed worker starts alone and is killed once it has committed its island's
    // generation 0: it is then inside that island's first epoch (4 more generations).
    let mut doomed = spawn_worker(d, &worker_args);
    let t = Instant::now();
    loop {
        let list = json(&tdev(d, &["evolutions", "--store", &uri, "--json"]), "list");
        if list["evolutions"][0]["status"] == "running" {
            break;
        }
        assert!(t.elapsed() < WATCHDOG, "no generation committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    doomed.kill();
    let others: Vec<Reaped> = (0..2).map(|_| spawn_worker(d, &worker_args)).collect();
    let mut lines = Vec::new();
    for w in others {
        let out = finished(w);
        lines.extend(job_lines(&out));
    }
    let fleet = entry(d, &uri, &id);
    assert_eq!(
        fleet["best_agent_id"], alone["best_agent_id"],
        "{fleet} vs {alone}"
    );
    assert_eq!(fleet["best_error"], alone["best_error"]);
    assert_eq!(fleet["status"], alone["status"]);
    assert_eq!(fleet["head_generation"], alone["head_generation"]);
    // the killed worker's job came back and was done by another
    assert!(
        lines.iter().any(|l| l["receive_count"].as_u64() >= Some(2)),
        "no job was delivered twice: {lines:?}"
    );
    // every epoch of every island committed once, in one line of one worker
    let mut committed: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["outcome"] == "committed") {
        let key = (
            l["job"]["island"].as_u64().expect("island"),
            l["job"]["epoch"].as_u64().expect("epoch"),
        );
        *committed.entry(key).or_default() += 1;
    }
    assert!(!committed.is_empty());
    // no generation record was written twice (the bucket keeps every version)
    let versions = boto(
        &format!(
            "{BOTO}p = s3.get_paginator('list_object_versions')\n\
             for page in p.paginate(Bucket=sys.argv[1], Prefix='generations/'):\n    \
             for v in page.get('Versions', []): print(v['Key'])"
        ),
        &[bucket(&uri)],
    );
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for k in versions.lines() {
        *counts.entry(k).or_default() += 1;
    }
    assert!(counts.len() >= 3 * 5, "{counts:?}");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
}

#[test]
fn a_poison_job_lands_in_the_dead_letter_queue_and_shows_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (q, dead) = queue(d, 2);
    let store = format!("file://{}", d.join("shared").display());
    let abs = task("abs");
    let id = submit(d, &["--task", &abs, "--queue", &q, "--store", &store]);
    // the task the job points at is broken
    std::fs::write(
        d.join("shared/evolution/checkpoints")
            .join(&id)
            .join("task.json"),
        b"{ not json",
    )
    .expect("break the task");
    // each failed delivery is an alert
    let rx = crate::alerts::Receiver::start(&[]);
    let cfg = crate::alerts::webhook_config(d, rx.port, &["failed"], "");
    let out = finished(spawn_worker_env(
        d,
        &[
            "--queue",
            &q,
            "--store",
            &store,
            "--idle-exit",
            "5",
            "--retry-delay",
            "0",
            "--alerts",
            &cfg,
        ],
        &[("TDEV_TEST_ALERT_SECRET", crate::alerts::SECRET)],
    ));
    let lines = job_lines(&out);
    assert_eq!(
        lines.len(),
        2,
        "tried as often as the queue allows: {lines:?}"
    );
    assert!(lines.iter().all(|l| l["outcome"] == "failed"), "{lines:?}");
    let alerts: Vec<serde_json::Value> = rx.seen().iter().map(crate::alerts::Seen::json).collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    for (n, a) in alerts.iter().enumerate() {
        assert_eq!(a["event"], "failed", "{a}");
        assert_eq!(a["source"], "tdev worker", "{a}");
        assert_eq!(a["detail"]["evolution_id"], id.as_str(), "{a}");
        assert_eq!(a["detail"]["receive_count"], n + 1, "{a}");
        assert!(
            a["detail"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("task.json")),
            "{a}"
        );
    }
    let e = entry(d, &store, &id);
    assert_eq!(e["status"], "failed", "{e}");
    let error = e["error"].as_str().expect("error");
    assert!(error.contains("task.json"), "{error}");
    // the job is on the dead-letter queue, not on the queue
    let t = Instant::now();
    loop {
        let on_dead = tdev_json(d, &["queue", "status", "--queue", &dead, "--json"], 0);
        let left = tdev_json(d, &["queue", "status", "--queue", &q, "--json"], 0);
        if on_dead["waiting"] == 1 && left["waiting"] == 0 && left["in_flight"] == 0 {
            break;
        }
        // SQS moves a job at the delivery after the last one allowed
        let _ = tdev(
            d,
            &[
                "worker",
                "--queue",
                &q,
                "--store",
                &store,
                "--max-jobs",
                "1",
                "--idle-exit",
                "1",
            ],
        );
        assert!(t.elapsed() < WATCHDOG, "{on_dead} {left}");
    }
}

#[test]
fn a_stop_halts_the_workers_and_leaves_the_job_until_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (q, _dead) = queue(d, 5);
    let store = format!("file://{}", d.join("shared").display());
    let sum = task("sum_range");
    let id = submit(
        d,
        &[
            "--task",
            &sum,
            "--queue",
            &q,
            "--store",
            &store,
            "--seed",
            "2",
            "--population",
            "100",
            "--generations",
            "100000",
        ],
    );
    let mut worker = spawn_worker(d, &["--queue", &q, "--store", &store, "--retry-delay", "1"]);
    let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        let t = Instant::now();
        loop {
            let e = entry(d, &store, &id);
            if ok(&e) {
                return e;
            }
            assert!(t.elapsed() < WATCHDOG, "{what}: {e}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("a generation", &|e| {
        e["head_generation"].as_u64() >= Some(1)
    });
    assert_eq!(code(&tdev(d, &["stop", "--store", &store]), "stop"), 0);
    let t = Instant::now();
    let stopped = wait_for("the stop", &|e| e["status"] == "stopped");
    eprintln!(
        "the worker's evolution stopped {:?} after `tdev stop`",
        t.elapsed()
    );
    // the job is back on the queue, and no worker takes it while the store is stopped
    std::thread::sleep(Duration::from_secs(3));
    let still = entry(d, &store, &id);
    assert_eq!(still["head_generation"], stopped["head_generation"]);
    assert_eq!(still["status"], "stopped");
    let depth = tdev_json(d, &["queue", "status", "--queue", &q, "--json"], 0);
    assert_eq!(
        (depth["waiting"].as_u64(), depth["in_flight"].as_u64()),
        (Some(1), Some(0)),
        "{depth}"
    );
    // after a resume the worker carries on from the head
    assert_eq!(code(&tdev(d, &["resume", "--store", &store]), "resume"), 0);
    let head = stopped["head_generation"].as_u64().expect("head");
    wait_for("the resumed run", &|e| {
        e["status"] == "running" && e["head_generation"].as_u64() > Some(head)
    });
    worker.kill();
}

#[test]
fn an_island_evolution_rolls_back_as_one_and_breeds_the_same_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (q, _dead) = queue(d, 5);
    let store = format!("file://{}", d.join("shared").display());
    let sum = task("sum_range");
    let id = submit(
        d,
        &[
            "--task",
            &sum,
            "--queue",
            &q,
            "--store",
            &store,
            "--seed",
            "4",
            "--population",
            "60",
            "--generations",
            "12",
            "--islands",
            "2",
            "--epoch-generations",
            "4",
            "--migrants",
            "2",
            "--selection",
            "tournament",
        ],
    );
    let work = || {
        finished(spawn_worker(
            d,
            &[
                "--queue",
                &q,
                "--store",
                &store,
                "--idle-exit",
                "4",
                "--retry-delay",
                "1",
            ],
        ));
    };
    work();
    let first = entry(d, &store, &id);
    assert_eq!(first["status"], "finished", "{first}");
    assert_eq!(first["head_generation"], 12);
    let rollback = |args: &[&str]| {
        let mut all = vec!["rollback"];
        all.extend(args);
        all.extend(["--store", store.as_str(), "--queue", q.as_str()]);
        tdev(d, &all)
    };
    // refused while workers may run it, mid-epoch, and for one island alone
    let out = rollback(&[&id, "--generation", "4"]);
    assert_eq!(code(&out, "rollback while running"), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("tdev stop"));
    assert_eq!(code(&tdev(d, &["stop", "--store", &store]), "stop"), 0);
    assert_eq!(code(&rollback(&[&id, "--generation", "3"]), "mid-epoch"), 1);
    let one = format!("{id}.island-000");
    let out = rollback(&[&one, "--generation", "4"]);
    assert_eq!(code(&out, "one island"), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("every island"));
    let out = rollback(&[&id, "--generation", "4"]);
    assert_eq!(
        code(&out, "rollback"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = entry(d, &store, &id);
    assert_eq!(back["head_generation"], 4, "{back}");
    assert_eq!(back["status"], "running");
    // the epochs after it run again, to the same end
    assert_eq!(code(&tdev(d, &["resume", "--store", &store]), "resume"), 0);
    work();
    let again = entry(d, &store, &id);
    assert_eq!(again, first);
}
