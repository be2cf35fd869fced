//! Quarantine records under concurrent writers, on both backends: every trap counted,
//! a purge never undone by a racing run, the history capped.

use engine::quarantine::{Sighting, TrapEvent};
use engine::store::{self, BlobStore};
use engine::words::AuditAction;
use engine::{AgentId, Gate, Guard, Origin, Quarantine, Status};
use runtime::{Input, Policy, Sandbox, Verdict};
use std::sync::{Arc, Barrier};

/// Both backends, with `params` (`trap_history=…`) added to the store URI.
fn backends(params: &str) -> Vec<(String, Arc<dyn BlobStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sep = if params.is_empty() { "" } else { "?" };
    let fs_uri = format!("file://{}{sep}{params}", dir.path().display());
    let fs = store::open(&fs_uri).expect("fs");
    #[cfg(feature = "aws")]
    {
        let mut s3_uri = crate::store::s3_uri();
        if !params.is_empty() {
            s3_uri = format!("{s3_uri}&{params}");
        }
        let s3 = store::open(&s3_uri).expect("s3");
        vec![(fs_uri, fs, Some(dir)), (s3_uri, s3, None)]
    }
    #[cfg(not(feature = "aws"))]
    vec![(fs_uri, fs, Some(dir))]
}

/// A module the default policy rejects (it imports WASI): quarantined statically.
fn rejected_module(tag: u32) -> (Vec<u8>, Verdict) {
    let wasm = wat::parse_str(format!(
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
            (func (export "act") (result i32) i32.const {tag}))"#
    ))
    .expect("wat");
    let verdict = Sandbox::new(Policy::default_policy())
        .expect("sandbox")
        .validate(&wasm);
    assert!(!verdict.admitted);
    (wasm, verdict)
}

/// The id of a verdict, parsed.
fn aid(v: &Verdict) -> AgentId {
    v.agent_id.parse().expect("the runtime's id")
}

/// A quarantine over `s` holding the rejected module `tag`.
fn holding(s: Arc<dyn BlobStore>, tag: u32) -> (Quarantine, Vec<u8>, Verdict) {
    let q = Quarantine::new(s);
    let (wasm, v) = rejected_module(tag);
    q.quarantine(
        &Sighting {
            bytes: &wasm,
            verdict: &v,
            safety_score: v.safety_score,
            policy: &Policy::default_policy(),
            parents: &[],
            origin: &Origin::default(),
        },
        None,
    )
    .expect("quarantine");
    (q, wasm, v)
}

/// Runs `f(0..n)` on `n` threads that start together.
fn race(n: usize, f: impl Fn(usize) + Sync) {
    let start = Barrier::new(n);
    std::thread::scope(|sc| {
        for t in 0..n {
            let (f, start) = (&f, &start);
            sc.spawn(move || {
                start.wait();
                f(t);
            });
        }
    });
}

/// A trap of run `n` recorded against the module under the default policy.
fn record_trap(
    q: &Quarantine,
    wasm: &[u8],
    v: &Verdict,
    n: usize,
) -> engine::Result<engine::Record> {
    q.quarantine(
        &Sighting {
            bytes: wasm,
            verdict: v,
            safety_score: 0.5,
            policy: &Policy::default_policy(),
            parents: &[],
            origin: &Origin::default(),
        },
        Some(trap(n)),
    )
}

fn trap(n: usize) -> TrapEvent {
    TrapEvent::new(runtime::Outcome::OutOfFuel, format!("run {n}"), n as u64, 1)
}

/// An operator's decision, as the tests make them.
fn op() -> engine::Decision {
    engine::Decision {
        by: "op".into(),
        reason: "test".into(),
        via: "test".into(),
    }
}

#[test]
fn racing_trap_updates_are_all_counted() {
    const N: usize = 24;
    for (name, s, _keep) in backends("") {
        let (q, wasm, v) = holding(s, 1);
        race(N, |n| {
            record_trap(&q, &wasm, &v, n).expect("trap update");
        });
        let rec = q.require(&aid(&v)).expect("record");
        assert_eq!(rec.trap_history.len(), N, "{name}: every trap kept");
        let mut fuel: Vec<u64> = rec.trap_history.iter().map(|t| t.fuel_used).collect();
        fuel.sort();
        assert_eq!(fuel, (0..N as u64).collect::<Vec<_>>(), "{name}");
        assert_eq!(rec.traps_total(), N as u64, "{name}");
        assert_eq!(rec.status, Status::Quarantined, "{name}");
    }
}

#[test]
fn history_is_capped_and_counts_stay_exact() {
    const N: usize = 40;
    for (name, s, _keep) in backends("trap_history=8") {
        let (q, wasm, v) = holding(s.clone(), 2);
        race(4, |t| {
            for n in (t..N).step_by(4) {
                let mut e = trap(n);
                if n % 5 == 0 {
                    e.outcome = "deadline".into();
                }
                q.quarantine(
                    &Sighting {
                        bytes: &wasm,
                        verdict: &v,
                        safety_score: 0.5,
                        policy: &Policy::default_policy(),
                        parents: &[],
                        origin: &Origin::default(),
                    },
                    Some(e),
                )
                .expect("trap update");
            }
        });
        let rec = q.require(&aid(&v)).expect("record");
        assert_eq!(rec.trap_history.len(), 8, "{name}: history capped");
        assert_eq!(rec.traps_total(), N as u64, "{name}");
        assert_eq!(rec.trap_counts["deadline"], (N / 5) as u64, "{name}");
        assert_eq!(rec.trap_counts["out_of_fuel"], (N - N / 5) as u64, "{name}");
        let trapped = rec
            .audit
            .iter()
            .filter(|a| a.action == AuditAction::Trapped)
            .count();
        assert_eq!(trapped, 8, "{name}: trapped audit entries capped too");
        assert_eq!(
            rec.audit[0].action,
            AuditAction::Quarantined,
            "{name}: decisions kept"
        );
        // the stored record stays small however many traps it has seen
        let stored = s
            .get(
                store::Bucket::Agents,
                &engine::quarantine::record_key(&aid(&v)),
            )
            .expect("get")
            .expect("record");
        assert!(stored.len() < 8 * 1024, "{name}: {} bytes", stored.len());
        // release and purge decisions are kept whatever the cap
        q.release(&aid(&v), &op()).expect("release");
        record_trap(&q, &wasm, &v, 99).expect("trap");
        let rec = q.purge(&aid(&v), &op()).expect("purge");
        let actions: Vec<&str> = rec
            .audit
            .iter()
            .filter(|a| a.action != AuditAction::Trapped)
            .map(|a| a.action.as_str())
            .collect();
        assert_eq!(actions, ["quarantined", "released", "purged"], "{name}");
        assert_eq!(rec.traps_total(), N as u64 + 1, "{name}");
    }
}

#[test]
fn bad_store_settings_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    for bad in [
        format!("file://{d}?trap_history=-1"),
        format!("file://{d}?trap_history=lots"),
        format!("file://{d}?update_attempts=0"),
        format!("file://{d}?update_ids=0"),
        format!("file://{d}?update_ids=10001"),
        format!("file://{d}?colour=blue"),
        format!("file://{d}?trap_history"),
        "s3://good-bucket?agents=other-bucket&table=tab&update_attempts=0".to_string(),
    ] {
        assert!(store::open(&bad).is_err(), "{bad}");
    }
    let s = store::open(&format!("file://{d}?trap_history=0&update_attempts=3")).expect("ok");
    assert_eq!(s.settings().trap_history, 0);
    assert_eq!(s.settings().update_attempts, 3);
    assert_eq!(
        store::open(&format!("file://{d}"))
            .expect("ok")
            .settings()
            .trap_history,
        32
    );
}

/// A policy under which a looping agent runs out of fuel quickly.
fn small_fuel_policy() -> Policy {
    let mut p = Policy::default_policy();
    p.limits.fuel_per_call = 20_000;
    p
}

/// Admits `wasm` through a fresh gate over `s` and runs it once.
fn admit_and_run(
    sandbox: &Sandbox,
    s: &Arc<dyn BlobStore>,
    wasm: &[u8],
    name: &str,
) -> engine::GuardedRun {
    let guard = Guard::new(sandbox.clone(), Quarantine::new(s.clone()));
    let Gate::Admitted {
        agent, purges_seen, ..
    } = guard.admit(wasm, &Origin::default()).expect("admit")
    else {
        panic!("{name}: not admitted");
    };
    guard
        .run(
            wasm,
            &agent,
            Input::Bytes(vec![]),
            purges_seen,
            &Origin::default(),
        )
        .expect("run")
}

/// Released modules run through the gate on several threads and trap (which records
/// the trap), while an operator purges the module: the purge stands every time, with
/// its audit entry, and the bytes are gone.
#[test]
fn a_purge_is_never_undone_by_racing_runs() {
    const RUNNERS: usize = 6;
    for (name, s, _keep) in backends("") {
        let rounds = if name.starts_with("file://") { 30 } else { 12 };
        let sandbox = Sandbox::new(small_fuel_policy()).expect("sandbox");
        for round in 0..rounds {
            // a distinct looping module each round
            let wasm = wat::parse_str(format!(
                r#"(module (func (export "act") (result i32)
                    (loop $l (br $l)) i32.const {round}))"#
            ))
            .expect("wat");
            let id = AgentId::of(&wasm);
            // first run: trapped and quarantined; then released by a person
            let first = admit_and_run(&sandbox, &s, &wasm, &name);
            assert!(first.quarantined, "{name}: the trap quarantines it");
            let q = Quarantine::new(s.clone());
            q.release(&id, &op()).expect("release");

            let admitted = Barrier::new(RUNNERS + 1);
            std::thread::scope(|sc| {
                for _ in 0..RUNNERS {
                    let (sandbox, s, wasm, admitted) = (&sandbox, &s, &wasm, &admitted);
                    sc.spawn(move || {
                        let guard = Guard::new(sandbox.clone(), Quarantine::new(s.clone()));
                        let gate = guard.admit(wasm, &Origin::default()).expect("admit");
                        admitted.wait();
                        let Gate::Admitted {
                            agent,
                            purges_seen: seen,
                            ..
                        } = gate
                        else {
                            panic!("released, so admitted");
                        };
                        guard
                            .run(wasm, &agent, Input::Bytes(vec![]), seen, &Origin::default())
                            .expect("run");
                    });
                }
                let (q, id, admitted) = (&q, &id, &admitted);
                sc.spawn(move || {
                    admitted.wait();
                    q.purge(id, &op()).expect("purge");
                });
            });
            let rec = q.require(&id).expect("record");
            assert_eq!(rec.status, Status::Purged, "{name} round {round}");
            assert_eq!(
                rec.audit
                    .iter()
                    .filter(|a| a.action == AuditAction::Purged)
                    .count(),
                1,
                "{name} round {round}: the purge's audit entry"
            );
            assert_eq!(
                rec.trap_history.len(),
                RUNNERS + 1,
                "{name} round {round}: every trap recorded"
            );
            assert_eq!(q.module(&id).expect("module"), None, "{name}: bytes gone");
            // seen again after the purge (a new run): quarantined again
            // (a purged module that passes validation runs)
            let again = admit_and_run(&sandbox, &s, &wasm, &name);
            assert!(again.quarantined, "{name}: held again after a new trap");
            assert!(
                q.module(&id).expect("module").is_some(),
                "{name}: bytes kept"
            );
        }
    }
}

/// A module over the policy's `limits.module_bytes` is quarantined with its size and
/// its `size_cap` finding, but its bytes are not kept; one under the cap keeps them.
#[test]
fn bytes_over_the_module_cap_are_not_kept() {
    for (name, s, _keep) in backends("") {
        let policy = Policy::default_policy();
        let cap = policy.limits.module_bytes as usize;
        let guard = Guard::new(
            Sandbox::new(policy.clone()).expect("sandbox"),
            Quarantine::new(s.clone()),
        );
        // 64 KiB of data: far over the cap, far under any hidden constant
        let big = wat::parse_str(format!(
            r#"(module (memory 1) (data (i32.const 0) "{}{name}")
                (func (export "act") (result i32) i32.const 0))"#,
            "x".repeat(64 << 10)
        ))
        .expect("wat");
        assert!(big.len() > cap);
        let Gate::Rejected { verdict, record } =
            guard.admit(&big, &Origin::default()).expect("admit")
        else {
            panic!("{name}: over the cap, so rejected");
        };
        assert_eq!(record.size_bytes, big.len() as u64, "{name}");
        assert!(
            record.findings.iter().any(|f| f.kind == "size_cap"),
            "{name}: {:?}",
            record.findings
        );
        let q = Quarantine::new(s.clone());
        assert_eq!(q.module(&aid(&verdict)).expect("module"), None, "{name}");
        assert_eq!(
            s.get(
                store::Bucket::Agents,
                &engine::quarantine::source_key(&aid(&verdict))
            )
            .expect("get"),
            None,
            "{name}: nothing stored under source/"
        );
        // a module just under the cap, rejected for another reason, keeps its bytes
        let (small, v) = rejected_module(7);
        assert!(small.len() <= cap);
        let Gate::Rejected { .. } = guard.admit(&small, &Origin::default()).expect("admit") else {
            panic!("{name}: imports WASI, so rejected");
        };
        assert_eq!(q.module(&aid(&v)).expect("module"), Some(small), "{name}");
    }
}

/// One long-lived gate (as `tdev serve` keeps) admits a released module, the module is
/// purged, the gate admits it again: the trap of that later run quarantines it again,
/// while a trap of the run admitted before the purge leaves the purge standing.
#[test]
fn a_run_admitted_after_a_purge_quarantines_again_on_a_long_lived_gate() {
    for (name, s, _keep) in backends("") {
        let wasm = wat::parse_str(format!(
            r#"(module (func (export "act") (result i32)
                (loop $l (br $l)) i32.const 0) (func $tag) (export "{}" (func $tag)))"#,
            name.len()
        ))
        .expect("wat");
        let id = AgentId::of(&wasm);
        let guard = Guard::new(
            Sandbox::new(small_fuel_policy()).expect("sandbox"),
            Quarantine::new(s.clone()),
        );
        let q = Quarantine::new(s.clone());
        let Gate::Admitted {
            agent, purges_seen, ..
        } = guard.admit(&wasm, &Origin::default()).expect("admit")
        else {
            panic!("{name}: admitted");
        };
        let run = guard
            .run(
                &wasm,
                &agent,
                Input::Bytes(vec![]),
                purges_seen,
                &Origin::default(),
            )
            .expect("run");
        assert!(run.quarantined, "{name}");
        q.release(&id, &op()).expect("release");
        let Gate::Admitted {
            agent,
            purges_seen: before,
            ..
        } = guard.admit(&wasm, &Origin::default()).expect("admit")
        else {
            panic!("{name}: released, so admitted");
        };
        q.purge(&id, &op()).expect("purge");
        let Gate::Admitted {
            purges_seen: after, ..
        } = guard.admit(&wasm, &Origin::default()).expect("admit")
        else {
            panic!("{name}: purged and valid, so admitted");
        };
        assert_eq!((before, after), (0, 1), "{name}");
        // the run admitted before the purge: counted, the purge stands
        let run = guard
            .run(
                &wasm,
                &agent,
                Input::Bytes(vec![]),
                before,
                &Origin::default(),
            )
            .expect("run");
        assert!(!run.quarantined, "{name}");
        assert_eq!(
            q.require(&id).expect("record").status,
            Status::Purged,
            "{name}"
        );
        // the run admitted after it: quarantined again, with its bytes
        let run = guard
            .run(
                &wasm,
                &agent,
                Input::Bytes(vec![]),
                after,
                &Origin::default(),
            )
            .expect("run");
        assert!(run.quarantined, "{name}: held again");
        let rec = q.require(&id).expect("record");
        assert_eq!(rec.status, Status::Quarantined, "{name}");
        assert_eq!(rec.traps_total(), 3, "{name}");
        assert!(
            q.module(&id).expect("module").is_some(),
            "{name}: bytes kept"
        );
        assert!(
            matches!(
                guard.admit(&wasm, &Origin::default()).expect("admit"),
                Gate::Held { .. }
            ),
            "{name}"
        );
    }
}

/// Something another writer does to the real store.
type Interference = Box<dyn FnOnce(&Arc<dyn BlobStore>) + Send>;

/// The real store, with something done around the conditional writes of quarantine
/// records: `before` runs (once) ahead of the first one, on the real store; `lose`
/// answers are reported lost (`false`, a lost race) after the write was made, as when a
/// retry of a write that succeeded meets its own change.
struct Around {
    inner: Arc<dyn BlobStore>,
    before: std::sync::Mutex<Option<Interference>>,
    after: std::sync::Mutex<Vec<Interference>>,
    lose: std::sync::atomic::AtomicUsize,
}

impl Around {
    fn new(inner: Arc<dyn BlobStore>) -> Around {
        Around {
            inner,
            before: std::sync::Mutex::new(None),
            after: std::sync::Mutex::new(Vec::new()),
            lose: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn run_before(&self, key: &str) {
        if key.starts_with("quarantine/")
            && let Some(f) = self.before.lock().expect("lock").take()
        {
            f(&self.inner);
        }
    }

    /// The answer to give for a write that was made (`written`).
    fn answer(&self, key: &str, written: bool) -> bool {
        if !written || !key.starts_with("quarantine/") {
            return written;
        }
        if let Some(f) = self.after.lock().expect("lock").pop() {
            f(&self.inner);
        }
        let lost = self
            .lose
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        !lost
    }
}

impl BlobStore for Around {
    fn put(&self, b: store::Bucket, key: &str, bytes: &[u8]) -> engine::Result<()> {
        self.inner.put(b, key, bytes)
    }
    fn put_new(&self, b: store::Bucket, key: &str, bytes: &[u8]) -> engine::Result<bool> {
        self.run_before(key);
        let written = self.inner.put_new(b, key, bytes)?;
        Ok(self.answer(key, written))
    }
    fn put_state(&self, item: &store::StateItem) -> engine::Result<bool> {
        self.inner.put_state(item)
    }
    fn get_states(&self, id: &str) -> engine::Result<Vec<store::StateItem>> {
        self.inner.get_states(id)
    }
    fn delete_state(&self, id: &str, g: u32) -> engine::Result<()> {
        self.inner.delete_state(id, g)
    }
    fn get(&self, b: store::Bucket, key: &str) -> engine::Result<Option<Vec<u8>>> {
        self.inner.get(b, key)
    }
    fn get_versioned(
        &self,
        b: store::Bucket,
        key: &str,
    ) -> engine::Result<Option<(Vec<u8>, store::Version)>> {
        self.inner.get_versioned(b, key)
    }
    fn put_if(
        &self,
        b: store::Bucket,
        key: &str,
        bytes: &[u8],
        v: &store::Version,
    ) -> engine::Result<bool> {
        self.run_before(key);
        let written = self.inner.put_if(b, key, bytes, v)?;
        Ok(self.answer(key, written))
    }
    fn list(&self, b: store::Bucket, prefix: &str) -> engine::Result<Vec<String>> {
        self.inner.list(b, prefix)
    }
    fn delete(&self, b: store::Bucket, key: &str) -> engine::Result<()> {
        self.inner.delete(b, key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn settings(&self) -> &store::StoreSettings {
        self.inner.settings()
    }
}

/// A purged module is seen again; the first attempt to quarantine it stores its bytes
/// and then loses its write to a second purge, which deletes them: the attempt that
/// succeeds stores them again, so the quarantined record has its bytes.
#[test]
fn bytes_are_stored_again_after_a_purge_wins_the_race() {
    for (name, s, _keep) in backends("") {
        let (wasm, v) = rejected_module(11);
        let policy = Policy::default_policy();
        let q = Quarantine::new(s.clone());
        q.quarantine(
            &Sighting {
                bytes: &wasm,
                verdict: &v,
                safety_score: v.safety_score,
                policy: &policy,
                parents: &[],
                origin: &Origin::default(),
            },
            None,
        )
        .expect("quarantine");
        q.purge(&aid(&v), &op()).expect("purge");
        assert_eq!(q.module(&aid(&v)).expect("module"), None);

        let around = Arc::new(Around::new(s.clone()));
        let id = aid(&v);
        *around.before.lock().expect("lock") = Some(Box::new(move |inner: &Arc<dyn BlobStore>| {
            Quarantine::new(inner.clone())
                .purge(&id, &op())
                .expect("racing purge");
        }));
        let rec = Quarantine::new(around.clone())
            .quarantine(
                &Sighting {
                    bytes: &wasm,
                    verdict: &v,
                    safety_score: v.safety_score,
                    policy: &policy,
                    parents: &[],
                    origin: &Origin::default(),
                },
                None,
            )
            .expect("seen again");
        assert!(
            around.before.lock().expect("lock").is_none(),
            "{name}: the purge ran"
        );
        assert_eq!(rec.status, Status::Quarantined, "{name}");
        assert_eq!(rec.purges, 2, "{name}");
        assert_eq!(
            q.module(&aid(&v)).expect("module"),
            Some(wasm.clone()),
            "{name}: a quarantined record has its bytes"
        );
    }
}

/// Writes that were made but answered as lost (an SDK retry of a write that succeeded
/// gets 412 from its own change) are not made twice: a new record with a trap, a trap,
/// a release and a purge each count once, also when another writer changed the record
/// between the write and its lost answer.
#[test]
fn a_write_answered_as_lost_is_not_made_twice() {
    for (name, s, _keep) in backends("") {
        let (wasm, v) = rejected_module(12);
        let policy = Policy::default_policy();
        let around = Arc::new(Around::new(s.clone()));
        let q = Quarantine::new(around.clone());
        let lose = |n| around.lose.store(n, std::sync::atomic::Ordering::SeqCst);

        lose(1); // the create of the record
        let rec = q
            .quarantine(
                &Sighting {
                    bytes: &wasm,
                    verdict: &v,
                    safety_score: 0.5,
                    policy: &policy,
                    parents: &[],
                    origin: &Origin::default(),
                },
                Some(trap(0)),
            )
            .expect("quarantine");
        assert_eq!(rec.traps_total(), 1, "{name}: create");
        lose(1); // a trap
        let rec = q
            .quarantine(
                &Sighting {
                    bytes: &wasm,
                    verdict: &v,
                    safety_score: 0.5,
                    policy: &policy,
                    parents: &[],
                    origin: &Origin::default(),
                },
                Some(trap(1)),
            )
            .expect("trap");
        assert_eq!(rec.traps_total(), 2, "{name}: trap");
        assert_eq!(rec.trap_history.len(), 2, "{name}");
        // a trap whose write lands, then another writer's trap, then the lost answer
        let (w2, v2) = (wasm.clone(), v.clone());
        around
            .after
            .lock()
            .expect("lock")
            .push(Box::new(move |inner: &Arc<dyn BlobStore>| {
                Quarantine::new(inner.clone())
                    .quarantine(
                        &Sighting {
                            bytes: &w2,
                            verdict: &v2,
                            safety_score: 0.5,
                            policy: &Policy::default_policy(),
                            parents: &[],
                            origin: &Origin::default(),
                        },
                        Some(trap(3)),
                    )
                    .expect("other writer");
            }));
        lose(1);
        q.quarantine(
            &Sighting {
                bytes: &wasm,
                verdict: &v,
                safety_score: 0.5,
                policy: &policy,
                parents: &[],
                origin: &Origin::default(),
            },
            Some(trap(2)),
        )
        .expect("trap");
        let rec = q.require(&aid(&v)).expect("record");
        assert_eq!(rec.traps_total(), 4, "{name}: traps 0..=3 once each");
        lose(1);
        q.release(&aid(&v), &op()).expect("release");
        lose(1);
        let rec = q.purge(&aid(&v), &op()).expect("purge");
        assert_eq!(rec.purges, 1, "{name}: purged once");
        let count = |a: AuditAction| rec.audit.iter().filter(|e| e.action == a).count();
        assert_eq!(
            (count(AuditAction::Released), count(AuditAction::Purged)),
            (1, 1),
            "{name}"
        );
        assert_eq!(around.lose.load(std::sync::atomic::Ordering::SeqCst), 0);
        let stored = Quarantine::new(s.clone())
            .require(&aid(&v))
            .expect("record");
        assert_eq!(stored, rec, "{name}");
        assert!(stored.updates.len() <= s.settings().update_ids, "{name}");
    }
}

/// The ids of changes a record keeps are capped by the store's `update_ids`.
#[test]
fn update_ids_are_capped() {
    for (name, s, _keep) in backends("update_ids=3") {
        let (wasm, v) = rejected_module(13);
        let q = Quarantine::new(s);
        for n in 0..6 {
            record_trap(&q, &wasm, &v, n).expect("trap");
        }
        let rec = q.require(&aid(&v)).expect("record");
        assert_eq!(rec.updates.len(), 3, "{name}");
        assert_eq!(rec.traps_total(), 6, "{name}");
    }
}
