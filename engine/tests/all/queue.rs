//! The SQS work queue against the server on loopback that scripts/test.sh starts.

use engine::queue::{Depth, MAX_JOB_BYTES, Queue, Received};
use std::time::{Duration, Instant};

/// A queue and its dead-letter queue of a fresh name.
fn queues(max_receives: u32) -> (Queue, Queue) {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run the tests through scripts/test.sh"
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let name = format!("tdev-test-{}-{nanos}", std::process::id());
    Queue::create(&name, max_receives, Duration::from_secs(30)).expect("create queues")
}

/// Receives until a job comes (a watchdog, not a speed bound).
fn next(q: &Queue, visibility: Duration) -> Received {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = q
            .receive(Duration::from_secs(1), visibility)
            .expect("receive")
        {
            return r;
        }
        assert!(Instant::now() < until, "no job on {}", q.url());
    }
}

#[test]
fn a_job_is_held_by_one_worker_until_deleted() {
    let (q, _dead) = queues(5);
    let id = q.send(r#"{"kind":"test"}"#, Duration::ZERO).expect("send");
    let r = next(&q, Duration::from_secs(30));
    assert_eq!(
        (r.body.as_str(), r.message_id.as_str(), r.receive_count),
        (r#"{"kind":"test"}"#, id.as_str(), 1)
    );
    // held: another worker gets nothing
    assert!(
        q.receive(Duration::ZERO, Duration::from_secs(30))
            .expect("receive")
            .is_none()
    );
    q.extend(&r.receipt, Duration::from_secs(60))
        .expect("extend");
    assert_eq!(
        q.depth().expect("depth"),
        Depth {
            waiting: 0,
            in_flight: 1,
            delayed: 0
        }
    );
    q.delete(&r.receipt).expect("delete");
    assert_eq!(
        q.depth().expect("depth"),
        Depth {
            waiting: 0,
            in_flight: 0,
            delayed: 0
        }
    );
}

#[test]
fn a_job_whose_worker_vanishes_comes_back_then_goes_to_the_dead_letter_queue() {
    let (q, dead) = queues(2);
    let id = q.send("poison", Duration::ZERO).expect("send");
    // two deliveries whose holder never deletes: each comes back when its hold ends
    for count in 1..=2 {
        let r = next(&q, Duration::from_secs(1));
        assert_eq!(
            (r.message_id.as_str(), r.receive_count),
            (id.as_str(), count)
        );
    }
    // a third receive moves it to the dead-letter queue instead
    let until = Instant::now() + Duration::from_secs(60);
    let on_dead = loop {
        assert!(
            q.receive(Duration::from_secs(1), Duration::from_secs(1))
                .expect("receive")
                .is_none()
        );
        if let Some(r) = dead
            .receive(Duration::ZERO, Duration::from_secs(30))
            .expect("receive dead")
        {
            break r;
        }
        assert!(
            Instant::now() < until,
            "never reached the dead-letter queue"
        );
    };
    assert_eq!(on_dead.body, "poison");
}

#[test]
fn a_delayed_job_waits() {
    let (q, _dead) = queues(5);
    q.send("later", Duration::from_secs(2)).expect("send");
    let d = q.depth().expect("depth");
    assert_eq!((d.waiting, d.delayed), (0, 1), "{d:?}");
    assert_eq!(next(&q, Duration::from_secs(30)).body, "later");
}

#[test]
fn bad_urls_and_oversized_jobs_are_clear_errors() {
    for url in ["sqs://queue", "queue", "https://x/ q", ""] {
        let e = Queue::open(url)
            .err()
            .unwrap_or_else(|| panic!("{url:?} opened"));
        assert!(e.to_string().contains("URL"), "{url:?}: {e}");
    }
    let (q, _dead) = queues(5);
    let e = q
        .send(&"x".repeat(MAX_JOB_BYTES + 1), Duration::ZERO)
        .expect_err("oversized");
    assert!(e.to_string().contains("over"), "{e}");
    // a queue that does not exist
    let gone = Queue::open(&format!("{}-gone", q.url())).expect("open");
    assert!(gone.send("x", Duration::ZERO).is_err());
}

#[test]
fn a_body_that_is_not_a_job_fails_each_delivery_then_goes_to_the_dead_letter_queue() {
    use engine::fleet::{Handled, Step, Worker, WorkerConfig};
    let (q, dead) = queues(2);
    let url = q.url().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine::store::open(&format!("file://{}", dir.path().display())).expect("store");
    q.send(
        r#"{"kind":"evolution","evolution_id":"../../etc"}"#,
        Duration::ZERO,
    )
    .expect("send");
    q.send("not json", Duration::ZERO).expect("send");
    let sandbox = runtime::Sandbox::new(runtime::Policy::default_policy()).expect("sandbox");
    let worker = Worker::new(
        sandbox,
        store.clone(),
        Queue::open(&url).expect("open"),
        WorkerConfig {
            wait: Duration::from_secs(1),
            retry_delay: Duration::ZERO,
            ..WorkerConfig::default()
        },
    )
    .expect("worker");
    let until = Instant::now() + Duration::from_secs(120);
    let mut failures: Vec<(Option<engine::fleet::Job>, String)> = Vec::new();
    loop {
        match worker.step().expect("step") {
            Step::Job(r) => match r.handled {
                Handled::Failed(e) => failures.push((r.job, e)),
                other => panic!("{other:?}"),
            },
            Step::Idle => {
                if dead.depth().expect("depth").waiting == 2 {
                    break;
                }
            }
            Step::Halted(_) => panic!("halted"),
        }
        assert!(Instant::now() < until, "{failures:?}");
    }
    // each job failed once per delivery the queue allows, with its reason
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(
        failures
            .iter()
            .any(|(j, e)| j.is_none() && e.starts_with("not a job"))
    );
    assert!(
        failures
            .iter()
            .any(|(j, e)| j.is_some() && e.contains("../../etc"))
    );
    // nothing was written for them
    assert!(
        store
            .list(engine::store::Bucket::Evolution, "")
            .expect("list")
            .is_empty()
    );
    let left = q.depth().expect("depth");
    assert_eq!((left.waiting, left.in_flight), (0, 0));
}
