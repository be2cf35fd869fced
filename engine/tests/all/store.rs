//! One storage suite, run against both backends: the local directory and S3 +
//! DynamoDB (a real server on loopback, started by scripts/test.sh).

use engine::AgentId;
use engine::store::{self, BlobStore, Bucket, StateItem};
use engine::words::SafetyFlag;
use std::sync::Arc;

/// Unique bucket and table names on the shared server.
#[cfg(feature = "aws")]
pub fn s3_uri() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run the tests through scripts/test.sh, which starts \
         an S3 and DynamoDB server on loopback"
    );
    let n = N.fetch_add(1, Ordering::SeqCst);
    let tag = format!(
        "{}-{}-{}",
        std::process::id(),
        n,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let uri = format!("s3://evo-{tag}?agents=agents-{tag}&table=state-{tag}");
    store::init(&uri).expect("init");
    uri
}

/// The local directory and S3 + DynamoDB; without the `aws` feature, two directories.
pub fn backends() -> Vec<(String, Arc<dyn BlobStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = store::open(&format!("file://{}", dir.path().display())).expect("fs");
    vec![("file".into(), fs, Some(dir)), second_backend()]
}

#[cfg(feature = "aws")]
fn second_backend() -> (String, Arc<dyn BlobStore>, Option<tempfile::TempDir>) {
    let uri = s3_uri();
    let s3 = store::open(&uri).expect("s3");
    (uri, s3, None)
}

#[cfg(not(feature = "aws"))]
fn second_backend() -> (String, Arc<dyn BlobStore>, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = format!("file://{}", dir.path().display());
    let fs = store::open(&uri).expect("fs");
    (uri, fs, Some(dir))
}

#[test]
fn objects_round_trip_on_both_backends() {
    for (name, s, _keep) in backends() {
        s.put(Bucket::Agents, "source/abc", b"123").expect("put");
        s.put(Bucket::Agents, "quarantine/abc.json", b"{}")
            .expect("put");
        s.put(Bucket::Evolution, "checkpoints/e1/000000.json", b"x")
            .expect("put");
        assert_eq!(
            s.get(Bucket::Agents, "source/abc").expect("get").as_deref(),
            Some(&b"123"[..]),
            "{name}"
        );
        assert_eq!(
            s.get(Bucket::Agents, "source/none").expect("get"),
            None,
            "{name}"
        );
        assert_eq!(
            s.get(Bucket::Evolution, "source/abc").expect("get"),
            None,
            "{name}: buckets are apart"
        );
        assert_eq!(
            s.list(Bucket::Agents, "").expect("list"),
            vec!["quarantine/abc.json", "source/abc"],
            "{name}"
        );
        assert_eq!(
            s.list(Bucket::Agents, "source/").expect("list"),
            vec!["source/abc"],
            "{name}"
        );
        s.put(Bucket::Agents, "source/abc", b"456")
            .expect("overwrite");
        assert_eq!(
            s.get(Bucket::Agents, "source/abc").expect("get").as_deref(),
            Some(&b"456"[..])
        );
        s.delete(Bucket::Agents, "source/abc").expect("delete");
        s.delete(Bucket::Agents, "source/abc")
            .expect("delete twice");
        assert!(
            s.list(Bucket::Agents, "source/").expect("list").is_empty(),
            "{name}"
        );
        let big = vec![7u8; 300_000];
        s.put(Bucket::Agents, "source/big", &big).expect("big");
        assert_eq!(
            s.get(Bucket::Agents, "source/big")
                .expect("get")
                .expect("some"),
            big
        );
        for key in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "",
            "a b",
            "a\0b",
        ] {
            assert!(s.put(Bucket::Agents, key, b"x").is_err(), "{name}: {key:?}");
        }
    }
}

#[test]
fn conditional_create_lets_one_writer_win() {
    for (name, s, _keep) in backends() {
        assert!(
            s.put_new(Bucket::Evolution, "checkpoints/e/000001.json", b"first")
                .expect("new")
        );
        assert!(
            !s.put_new(Bucket::Evolution, "checkpoints/e/000001.json", b"second")
                .expect("again")
        );
        assert_eq!(
            s.get(Bucket::Evolution, "checkpoints/e/000001.json")
                .expect("get")
                .as_deref(),
            Some(&b"first"[..]),
            "{name}"
        );
        // racing writers: exactly one wins each key
        let wins: usize = std::thread::scope(|sc| {
            (0..4)
                .map(|t| {
                    let s = s.clone();
                    sc.spawn(move || {
                        s.put_new(
                            Bucket::Evolution,
                            "checkpoints/e/000002.json",
                            format!("{t}").as_bytes(),
                        )
                        .expect("race")
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| usize::from(h.join().expect("join")))
                .sum()
        });
        assert_eq!(wins, 1, "{name}");
    }
}

#[test]
fn state_rows_are_written_once() {
    for (name, s, _keep) in backends() {
        let item = |g: u32, fit: f64| StateItem {
            evolution_id: "evo-x".into(),
            generation: g,
            timestamp: format!("2026-11-25T00:00:0{g}.000Z"),
            agent_code: vec![0, 97, 115, 109, g as u8],
            best_agent_id: AgentId::of(&[g as u8]),
            fitness_score: fit,
            parent_ids: vec![AgentId::of(b"p")],
            safety_flags: vec![],
        };
        assert!(s.put_state(&item(1, 0.5)).expect("put"), "{name}");
        assert!(s.put_state(&item(0, 2.0)).expect("put"), "{name}");
        assert!(
            !s.put_state(&item(1, 9.0)).expect("again"),
            "{name}: second write refused"
        );
        let rows = s.get_states("evo-x").expect("get");
        assert_eq!(rows, vec![item(0, 2.0), item(1, 0.5)], "{name}");
        assert!(s.get_states("evo-none").expect("none").is_empty());
    }
}

#[test]
fn copy_moves_everything_between_backends() {
    let b = backends();
    let (from, to) = (&b[0].1, &b[1].1);
    from.put(
        Bucket::Agents,
        &engine::quarantine::source_key(&AgentId::of(b"m")),
        b"m",
    )
    .expect("put");
    from.put(Bucket::Evolution, "checkpoints/evo-c/000000.json", b"{}")
        .expect("put");
    from.put(Bucket::Evolution, "control/stop.json", b"{}")
        .expect("put");
    from.put_state(&StateItem {
        evolution_id: "evo-c".into(),
        generation: 0,
        timestamp: "t".into(),
        agent_code: vec![1],
        best_agent_id: AgentId::of(b"x"),
        fitness_score: 1.0,
        parent_ids: vec![],
        safety_flags: vec![SafetyFlag::SizeBloat],
    })
    .expect("state");
    let r = store::copy(from.as_ref(), to.as_ref()).expect("copy");
    assert_eq!((r.objects, r.states), (2, 1));
    assert_eq!(to.get_states("evo-c").expect("states").len(), 1);
    assert!(
        to.get(Bucket::Evolution, "control/stop.json")
            .expect("get")
            .is_none()
    );
    // a module whose bytes do not match its id is refused
    from.put(Bucket::Agents, "source/00ff", b"tampered")
        .expect("put");
    assert!(store::copy(from.as_ref(), to.as_ref()).is_err());
}

#[cfg(not(feature = "aws"))]
#[test]
fn s3_uris_need_the_aws_feature() {
    let e = store::open("s3://evo-bucket?agents=agents-bucket&table=state")
        .err()
        .expect("refused");
    assert!(matches!(e.kind(), engine::ErrorKind::NoAws { .. }), "{e}");
    assert!(store::init("s3://evo-bucket?agents=agents-bucket&table=state").is_err());
}

#[test]
fn unreachable_endpoints_and_bad_uris_are_clear_errors() {
    for bad in [
        "s3://",
        "s3://ab?agents=xy&table=t",
        "s3://good-bucket?agents=Bad_Bucket&table=tab",
        "s3://good-bucket?agents=other-bucket",
        "s3://good-bucket?agents=other-bucket&table=tab&x=1",
        "ftp://x",
    ] {
        assert!(store::open(bad).is_err(), "{bad}");
    }
}
