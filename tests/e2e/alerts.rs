//! Alerts end to end: a webhook receiver on loopback that checks each request's
//! HMAC-SHA256 signature and answers as told (a failure first, to see the retry), and
//! moto's SNS with a subscribed SQS queue.

use crate::serve::{TOKEN, auth, http, post_wasm};
use crate::support::{code, fixture, fixture_arg, write};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const SECRET: &str = "alert-secret-0123456789";

/// One request the receiver took: its headers (lowercased names) and body.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    headers: Vec<(String, String)>,
    body: String,
    /// The status it was answered with.
    status: u16,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("an alert body is JSON")
    }

    /// Whether `X-Tdev-Signature` is the HMAC-SHA256 of `TIMESTAMP.BODY` under the
    /// shared secret.
    pub(crate) fn signed(&self) -> bool {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(self.header("x-tdev-timestamp").as_bytes());
        mac.update(b".");
        mac.update(self.body.as_bytes());
        let want = format!("sha256={}", runtime::to_hex(&mac.finalize().into_bytes()));
        self.header("x-tdev-signature") == want
    }
}

/// A webhook receiver on loopback: answers the n-th request with `statuses[n]`
/// (200 past the list) and keeps every request.
pub(crate) struct Receiver {
    pub(crate) port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    pub(crate) fn start(statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (keep, statuses) = (seen.clone(), statuses.to_vec());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut headers = Vec::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut all = keep.lock().expect("lock");
                let status = statuses.get(all.len()).copied().unwrap_or(200);
                all.push(Seen {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    status,
                });
                drop(all);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { port, seen }
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Waits (30 s at most) until `n` requests arrived.
    pub(crate) fn wait_for(&self, n: usize) -> Vec<Seen> {
        let t0 = Instant::now();
        while self.seen().len() < n && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.seen()
    }
}

/// An alerts file sending `events` to a webhook on `port`.
pub(crate) fn webhook_config(dir: &Path, port: u16, events: &[&str], extra_rules: &str) -> String {
    let mut text = format!(
        "[[sink]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/alerts\"\n\
         secret_env = \"TDEV_TEST_ALERT_SECRET\"\nattempts = 3\nbackoff_ms = 50\ntimeout_ms = 5000\n"
    );
    for e in events {
        text.push_str(&format!("[[rule]]\nevent = \"{e}\"\nsinks = [\"hook\"]\n"));
    }
    text.push_str(extra_rules);
    write(dir, "alerts.toml", &text)
        .to_string_lossy()
        .into_owned()
}

/// `tdev ARGS` in `dir` with the webhook's secret in the environment.
fn tdev_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tdev"));
    c.args(args)
        .current_dir(dir)
        .env("TDEV_TEST_ALERT_SECRET", SECRET)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("tdev")
}

#[test]
fn a_quarantine_and_a_stop_reach_the_webhook_signed_and_retried_before_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // the first delivery fails (503): the alert is sent again, with the same id
    let rx = Receiver::start(&[503]);
    let cfg = webhook_config(d, rx.port, &["quarantine", "emergency_stop"], "");
    let looping = fixture_arg("hostile/infinite_loop.wat");
    let out = tdev_env(d, &["run", &looping, "--alerts", &cfg], &[]);
    assert_eq!(
        code(&out, "run"),
        4,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // delivered before tdev exited: no waiting here
    let seen = rx.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].status, seen[1].status), (503, 200));
    assert_eq!(
        seen[0].header("x-tdev-delivery"),
        seen[1].header("x-tdev-delivery")
    );
    for s in &seen {
        assert!(s.signed(), "bad signature: {s:?}");
        assert_eq!(s.header("x-tdev-event"), "quarantine");
        assert_eq!(s.header("content-type"), "application/json");
    }
    let alert = seen[1].json();
    assert_eq!(alert["event"], "quarantine", "{alert}");
    assert_eq!(alert["source"], "tdev run", "{alert}");
    assert_eq!(alert["detail"]["name"], "infinite_loop", "{alert}");
    assert_eq!(alert["detail"]["origin"]["source"], "file", "{alert}");
    assert_eq!(alert["id"], seen[1].header("x-tdev-delivery"));
    let reason = alert["detail"]["reason"].as_str().expect("reason");
    assert!(crate::fixtures::is_right("out_of_fuel", reason), "{alert}");
    // a body changed in transit fails the check
    let mut forged = seen[1].clone();
    forged.body = forged.body.replace("infinite_loop", "harmless");
    assert!(!forged.signed());

    // held now: running it again quarantines nothing new, so no alert
    let out = tdev_env(d, &["run", &looping, "--alerts", &cfg], &[]);
    assert_eq!(code(&out, "run held"), 3);
    assert_eq!(rx.seen().len(), 2);

    // the emergency stop, with the file named by TDEV_ALERTS
    let out = tdev_env(
        d,
        &["stop"],
        &[("TDEV_ALERTS", &cfg), ("USER", "ops-on-call")],
    );
    assert_eq!(
        code(&out, "stop"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = rx.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let stop = seen[2].json();
    assert_eq!(stop["event"], "emergency_stop", "{stop}");
    assert_eq!(stop["detail"]["by"], "ops-on-call", "{stop}");
    assert!(seen[2].signed());
}

#[test]
fn a_receiver_that_refuses_is_not_asked_again_and_a_bad_config_stops_the_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let rx = Receiver::start(&[400]);
    let cfg = webhook_config(d, rx.port, &["quarantine"], "");
    let out = tdev_env(
        d,
        &[
            "run",
            &fixture_arg("hostile/wasi_import.wat"),
            "--alerts",
            &cfg,
        ],
        &[],
    );
    assert_eq!(code(&out, "run"), 3);
    assert_eq!(rx.seen().len(), 1, "a 400 is final");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not delivered: HTTP 400"), "{err}");
    // the command refuses to start on a config that cannot work, naming the file
    let bad = write(
        d,
        "bad.toml",
        "[[rule]]\nevent = \"quarantine\"\nsinks = [\"nowhere\"]\n",
    );
    let bad = bad.to_string_lossy().into_owned();
    let out = tdev_env(
        d,
        &[
            "run",
            &fixture_arg("agents/add.wat"),
            "--args",
            "1,2",
            "--alerts",
            &bad,
        ],
        &[],
    );
    assert_eq!(code(&out, "bad config"), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("not defined"),
        "{err}"
    );
    // a missing secret too
    let out = Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args(["stop", "--alerts", &cfg])
        .current_dir(d)
        .env_remove("TDEV_TEST_ALERT_SECRET")
        .output()
        .expect("tdev");
    assert_eq!(code(&out, "no secret"), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("TDEV_TEST_ALERT_SECRET (its secret_env) is not set")
    );
}

#[test]
fn an_evolution_that_solves_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let rx = Receiver::start(&[]);
    let cfg = webhook_config(d, rx.port, &["solved"], "");
    let task = fixture("tasks/abs.toml").to_string_lossy().into_owned();
    let out = tdev_env(
        d,
        &[
            "evolve", "--task", &task, "--seed", "2", "--json", "--alerts", &cfg,
        ],
        &[],
    );
    assert_eq!(
        code(&out, "evolve"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["solved"], true, "{r}");
    let seen = rx.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let alert = seen[0].json();
    assert_eq!(alert["event"], "solved");
    assert_eq!(alert["detail"]["evolution_id"], r["evolution_id"]);
    assert_eq!(alert["detail"]["best_agent_id"], r["best"]["agent_id"]);
}

#[test]
fn a_server_sends_limit_hits_over_the_rate_and_its_emergency_stop() {
    let rx = Receiver::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = webhook_config(
        dir.path(),
        rx.port,
        &["emergency_stop"],
        "[[rule]]\nevent = \"limit_rate\"\nper_minute = 2\nsinks = [\"hook\"]\n",
    );
    let s = crate::server::start_with_env(
        &["--alerts", &cfg],
        TOKEN,
        &[("TDEV_TEST_ALERT_SECRET", SECRET)],
    );
    let a = s.addr.as_str();
    // three different modules that spin: three limit hits in a minute, over 2
    for k in 0..3 {
        let spin = wat::parse_str(format!(
            r#"(module (func (export "act") (result i32) (loop $l (br $l)) i32.const {k}))"#
        ))
        .expect("wat");
        let (status, _, _) = post_wasm(a, "/v1/run", &spin);
        assert_eq!(status, 200);
    }
    let seen = rx.wait_for(1);
    assert_eq!(seen.len(), 1, "one limit_rate alert: {seen:?}");
    let alert = seen[0].json();
    assert_eq!(alert["event"], "limit_rate", "{alert}");
    assert_eq!(alert["source"], "tdev serve", "{alert}");
    assert_eq!(alert["detail"]["per_minute"], 2, "{alert}");
    // the emergency stop over the API names the token
    let au = auth();
    let (status, _, _) = http(
        a,
        "POST",
        "/v1/emergency-stop",
        &[("Authorization", au.as_str())],
        b"",
    );
    assert_eq!(status, 200);
    let seen = rx.wait_for(2);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let stop = seen[1].json();
    assert_eq!(stop["event"], "emergency_stop", "{stop}");
    assert_eq!(stop["detail"]["by"], "token default", "{stop}");
    assert!(seen.iter().all(Seen::signed));
}

#[cfg(feature = "aws")]
#[test]
fn an_alert_reaches_an_sqs_queue_through_sns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let tag = format!(
        "e2e-alerts-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos())
    );
    // a topic and a queue subscribed to it, on moto
    let arns = crate::fleet::boto(
        "import boto3, json, os, sys\n\
         e = os.environ['AWS_ENDPOINT_URL']\n\
         r = os.environ.get('AWS_REGION', 'us-east-1')\n\
         sns = boto3.client('sns', endpoint_url=e, region_name=r)\n\
         sqs = boto3.client('sqs', endpoint_url=e, region_name=r)\n\
         topic = sns.create_topic(Name=sys.argv[1])['TopicArn']\n\
         url = sqs.create_queue(QueueName=sys.argv[1])['QueueUrl']\n\
         arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
         sns.subscribe(TopicArn=topic, Protocol='sqs', Endpoint=arn)\n\
         print(json.dumps({'topic': topic, 'url': url}))\n",
        &[&tag],
    );
    let arns: Value = serde_json::from_str(arns.trim()).expect("arns");
    let topic = arns["topic"].as_str().expect("topic");
    let cfg = write(
        d,
        "sns.toml",
        &format!(
            "[[sink]]\nname = \"pager\"\nkind = \"sns\"\ntopic_arn = \"{topic}\"\n\
             [[rule]]\nevent = \"emergency_stop\"\nsinks = [\"pager\"]\n"
        ),
    );
    let out = tdev_env(
        d,
        &["stop", "--alerts", &cfg.to_string_lossy()],
        &[("USER", "sns-tester")],
    );
    assert_eq!(
        code(&out, "stop"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // what the queue received: SNS's envelope around the alert
    let got = crate::fleet::boto(
        "import boto3, json, os, sys\n\
         sqs = boto3.client('sqs', endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name=os.environ.get('AWS_REGION', 'us-east-1'))\n\
         m = sqs.receive_message(QueueUrl=sys.argv[1], WaitTimeSeconds=5, MaxNumberOfMessages=10).get('Messages', [])\n\
         print(json.dumps([x['Body'] for x in m]))\n",
        &[arns["url"].as_str().expect("url")],
    );
    let bodies: Vec<String> = serde_json::from_str(got.trim()).expect("bodies");
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let envelope: Value = serde_json::from_str(&bodies[0]).expect("envelope");
    assert_eq!(envelope["TopicArn"], topic, "{envelope}");
    assert!(
        envelope["Subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("tdev emergency_stop: emergency stop by sns-tester")),
        "{envelope}"
    );
    let alert: Value =
        serde_json::from_str(envelope["Message"].as_str().expect("message")).expect("the alert");
    assert_eq!(alert["event"], "emergency_stop", "{alert}");
    assert_eq!(alert["detail"]["by"], "sns-tester", "{alert}");
    assert_eq!(
        envelope["MessageAttributes"]["event"]["Value"], "emergency_stop",
        "{envelope}"
    );
}

#[test]
fn an_evolution_sends_its_quarantines_per_generation_and_each_stall_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let rx = Receiver::start(&[]);
    let cfg = webhook_config(
        d,
        rx.port,
        &["quarantine"],
        "[[rule]]\nevent = \"stalled\"\ngenerations = 2\nsinks = [\"hook\"]\n",
    );
    // every module that multiplies i64 scores 0.5: offspring are quarantined each
    // generation
    let p = write(
        d,
        "nomul.toml",
        "[[patterns]]\nname = \"no_mul\"\nscope = \"text\"\nregex = 'i64\\.mul'\nweight = 0.5\n",
    );
    let task = fixture("tasks/abs.toml").to_string_lossy().into_owned();
    let out = tdev_env(
        d,
        &[
            "evolve",
            "--task",
            &task,
            "--policy",
            &p.to_string_lossy(),
            "--population",
            "40",
            "--generations",
            "12",
            "--seed",
            "4",
            "--json",
            "--alerts",
            &cfg,
        ],
        &[],
    );
    assert_eq!(
        code(&out, "evolve"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = r["evolution_id"].as_str().expect("id");
    let alerts: Vec<Value> = rx.seen().iter().map(Seen::json).collect();
    // the quarantine alerts count what the evolution quarantined, a generation each
    let quarantines: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["event"] == "quarantine")
        .collect();
    let counted: u64 = quarantines
        .iter()
        .map(|a| a["detail"]["count"].as_u64().expect("count"))
        .sum();
    assert!(counted > 0, "{alerts:?}");
    assert_eq!(Some(counted), r["quarantined"].as_u64(), "{alerts:?}");
    let mut gens: Vec<u64> = quarantines
        .iter()
        .map(|a| a["detail"]["generation"].as_u64().expect("generation"))
        .collect();
    gens.dedup();
    assert_eq!(gens.len(), quarantines.len(), "one alert per generation");
    // stalled: once per plateau, at the generation two past its last improvement, as
    // the stored fitness logs tell it
    let store =
        engine::store::open(&format!("file://{}", d.join(".tdev").display())).expect("store");
    let logs = engine::evolve::fitness_logs(store.as_ref(), id).expect("logs");
    let (mut best, mut since, mut sent) = (f64::INFINITY, 0u32, false);
    let mut expect = Vec::new();
    for l in &logs {
        if l.best_error < best {
            (best, since, sent) = (l.best_error, l.generation, false);
        } else if !sent && l.generation - since >= 2 {
            expect.push(serde_json::json!(l.generation));
            sent = true;
        }
    }
    let stalls: Vec<Value> = alerts
        .iter()
        .filter(|a| a["event"] == "stalled")
        .map(|a| a["detail"]["generation"].clone())
        .collect();
    assert_eq!(stalls, expect, "{alerts:?}");
    assert!(
        !expect.is_empty(),
        "this seed's run has a plateau (the test checks one)"
    );
}
