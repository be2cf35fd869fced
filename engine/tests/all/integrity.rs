//! Issue 16: commits, rollbacks and heads under concurrency and damage, on both
//! backends (the local directory and S3 + DynamoDB on loopback).

use super::store::backends;
use engine::ErrorKind;
use engine::evolve::{self, Evolution, EvolveConfig};
use engine::store::{BlobStore, Bucket, StateItem, Version};
use runtime::{Policy, Sandbox};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn quartic() -> engine::task::Task {
    engine::task::Task::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/quartic.toml"),
    )
    .expect("task")
}

fn sandbox() -> Sandbox {
    Sandbox::new(Policy::default_policy()).expect("sandbox")
}

/// An evolution of quartic run to generation `to` in `s`; its id.
fn evolution(s: &Arc<dyn BlobStore>, seed: u64, to: u32) -> String {
    let task = quartic();
    let config = EvolveConfig {
        seed,
        population: 24,
        generations: to,
        threads: 1,
        ..EvolveConfig::for_task(&task)
    };
    let mut e = Evolution::start(sandbox(), s.clone(), task, config, vec![]).expect("start");
    let summary = e.run(|_| {}).expect("run");
    assert_eq!(
        summary.generations, to,
        "quartic solved early: pick another seed"
    );
    e.id().to_string()
}

fn get(s: &dyn BlobStore, key: &str) -> Option<Vec<u8>> {
    s.get(Bucket::Evolution, key).expect("get")
}

/// The records of generation `g` of `id`, as stored.
fn records(s: &dyn BlobStore, id: &str, g: u32) -> Vec<Option<Vec<u8>>> {
    [
        "checkpoints",
        "generations",
        "fitness_logs",
        "safety_snapshots",
    ]
    .iter()
    .map(|p| get(s, &format!("{p}/{id}/{g:06}.json")))
    .collect()
}

/// The folder of a local backend.
fn dir_of<'a>(name: &str, dir: &'a Option<tempfile::TempDir>) -> Option<&'a Path> {
    (name == "file")
        .then(|| dir.as_ref().map(|d| d.path()))
        .flatten()
}

fn is_conflict(e: &engine::Error) -> bool {
    matches!(e.kind(), ErrorKind::Conflict(_))
}

/// Point 1: of two runs that breed the same generation differently, the one that loses
/// the checkpoint writes nothing the winner owns: the committed generation's records
/// stay the winner's, and the evolution resumes from them.
#[test]
fn a_losing_commit_writes_nothing_the_winner_owns() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 5, 2);
        let mut winner =
            Evolution::resume(sandbox(), s.clone(), &id, Some(3), Some(1)).expect("resume");
        let mut loser =
            Evolution::resume(sandbox(), s.clone(), &id, Some(3), Some(1)).expect("resume");
        // The loser breeds another generation 3: a migrant from another evolution.
        let other = {
            let mut e = Evolution::start(
                sandbox(),
                s.clone(),
                quartic(),
                EvolveConfig {
                    seed: 77,
                    population: 8,
                    generations: 0,
                    threads: 1,
                    ..EvolveConfig::for_task(&quartic())
                },
                vec![],
            )
            .expect("start");
            e.run(|_| {}).expect("run").best_module
        };
        assert_eq!(loser.immigrate(vec![other]).expect("immigrate"), 1);
        winner.run(|_| {}).expect("the winner commits");
        let committed = records(s.as_ref(), &id, 3);
        assert!(committed.iter().all(Option::is_some), "{name}");
        let e = loser.run(|_| {}).expect_err("the loser must not commit");
        assert!(is_conflict(&e), "{name}: {e}");
        assert_eq!(
            records(s.as_ref(), &id, 3),
            committed,
            "{name}: the loser changed the winner's records"
        );
        // and the committed generation is whole: roll back to it and go on
        let mut next =
            Evolution::resume(sandbox(), s.clone(), &id, Some(4), Some(1)).expect("resume");
        next.run(|_| {}).expect("run on");
        evolve::rollback(s.as_ref(), &id, 3).expect("rollback");
        let mut again =
            Evolution::resume(sandbox(), s.clone(), &id, Some(4), Some(1)).expect("resume");
        again.run(|_| {}).expect("run again");
    }
}

/// Point 3: a rollback made while a run of the evolution is live stands; the run stops
/// at its next commit with a conflict, and the checkpoint it wrote past the new head is
/// moved away with its state row.
#[test]
fn a_rollback_during_a_live_run_stands_and_stops_the_run() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 6, 3);
        let mut live =
            Evolution::resume(sandbox(), s.clone(), &id, Some(6), Some(1)).expect("resume");
        evolve::rollback(s.as_ref(), &id, 1).expect("rollback");
        let e = live.run(|_| {}).expect_err("the live run must stop");
        assert!(is_conflict(&e), "{name}: {e}");
        assert!(e.to_string().contains("rolled back"), "{name}: {e}");
        assert_eq!(evolve::head_generation(s.as_ref(), &id).expect("head"), 1);
        assert!(get(s.as_ref(), &format!("checkpoints/{id}/000004.json")).is_none());
        let rows: Vec<u32> = s
            .get_states(&id)
            .expect("states")
            .iter()
            .map(|r| r.generation)
            .collect();
        assert_eq!(rows, [0, 1], "{name}");
        // the rolled-back evolution resumes from the rollback's head
        let mut again =
            Evolution::resume(sandbox(), s.clone(), &id, Some(4), Some(1)).expect("resume");
        assert_eq!(again.generation(), 1);
        assert_eq!(again.run(|_| {}).expect("run").generations, 4);
        // and a second rollback finds every generation it lists
        evolve::rollback(s.as_ref(), &id, 2).expect("rollback again");
    }
}

/// Point 7: a deleted head is an integrity error naming it, never a fall back to the
/// newest checkpoint.
#[test]
fn a_deleted_head_is_named() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 7, 2);
        let head = format!("checkpoints/{id}/head.json");
        s.delete(Bucket::Evolution, &head).expect("delete");
        let e = evolve::head_generation(s.as_ref(), &id).expect_err("no fall back");
        assert!(matches!(e.kind(), ErrorKind::Corrupt { .. }), "{name}: {e}");
        assert!(e.to_string().contains(&head), "{name}: {e}");
        let e = evolve::list(s.as_ref()).expect_err("the list names it too");
        assert!(e.to_string().contains(&head), "{name}: {e}");
        assert!(Evolution::resume(sandbox(), s.clone(), &id, None, Some(1)).is_err());
    }
}

/// `good` with the first digit after its first `: ` changed: still JSON.
fn one_digit_changed(good: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(good.to_vec()).expect("utf-8");
    assert!(text.contains("\"checksum\": \"sha256:"), "{text}");
    let at = text
        .find(": ")
        .and_then(|i| text[i..].find(|c: char| c.is_ascii_digit()).map(|j| i + j))
        .expect("a digit");
    let mut bad = good.to_vec();
    bad[at] = if bad[at] == b'1' { b'2' } else { b'1' };
    serde_json::from_slice::<serde_json::Value>(&bad).expect("still JSON");
    bad
}

/// Point 7: checkpoints, tasks and records carry a checksum; a change that still
/// parses (a digit) is caught and the key named. A generation's records are also kept
/// in its checkpoint: a damaged one is restored from there by a resume or rollback.
#[test]
fn a_changed_digit_in_a_stored_record_is_caught() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 8, 2);
        for key in [
            format!("checkpoints/{id}/000002.json"),
            format!("checkpoints/{id}/task.json"),
            format!("checkpoints/{id}/config.json"),
        ] {
            let good = get(s.as_ref(), &key).expect("stored");
            s.put(Bucket::Evolution, &key, &one_digit_changed(&good))
                .expect("put");
            let e = match Evolution::resume(sandbox(), s.clone(), &id, None, Some(1)) {
                Ok(_) => panic!("{name}: {key} changed, resumed anyway"),
                Err(e) => e,
            };
            assert!(
                e.to_string().contains(&key) && e.to_string().contains("checksum"),
                "{name}: {key}: {e}"
            );
            s.put(Bucket::Evolution, &key, &good).expect("put back");
        }
        // a fitness log: the logs read up to the head name it
        let log = format!("fitness_logs/{id}/000001.json");
        let good = get(s.as_ref(), &log).expect("stored");
        s.put(Bucket::Evolution, &log, &one_digit_changed(&good))
            .expect("put");
        let e = evolve::fitness_logs(s.as_ref(), &id).expect_err("a changed log");
        assert!(
            e.to_string().contains(&log) && e.to_string().contains("checksum"),
            "{name}: {e}"
        );
        s.put(Bucket::Evolution, &log, &good).expect("put back");
        // the head's generation record: restored from its checkpoint by the resume
        let record = format!("generations/{id}/000002.json");
        let good = get(s.as_ref(), &record).expect("stored");
        s.put(Bucket::Evolution, &record, &one_digit_changed(&good))
            .expect("put");
        Evolution::resume(sandbox(), s.clone(), &id, None, Some(1)).expect("resumed");
        assert_eq!(get(s.as_ref(), &record), Some(good), "{name}: restored");
        Evolution::resume(sandbox(), s.clone(), &id, None, Some(1)).expect("whole again");
    }
}

/// A store that fails its writes under one prefix while `armed` (a process that dies
/// after its checkpoint, before its records are published).
struct FailingPuts {
    inner: Arc<dyn BlobStore>,
    fails: Box<dyn Fn(&str) -> bool + Send + Sync>,
    armed: AtomicBool,
    /// Conditional writes under these keys are made, but answered as lost (a retried
    /// S3 call that meets its own change).
    answers_lost: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

impl FailingPuts {
    fn check(&self, key: &str) -> engine::Result<()> {
        if self.armed.load(Ordering::SeqCst) && (self.fails)(key) {
            return Err(ErrorKind::Conflict(format!("injected failure writing {key}")).into());
        }
        Ok(())
    }
}

impl BlobStore for FailingPuts {
    fn put(&self, b: Bucket, key: &str, bytes: &[u8]) -> engine::Result<()> {
        self.check(key)?;
        self.inner.put(b, key, bytes)
    }
    fn put_new(&self, b: Bucket, key: &str, bytes: &[u8]) -> engine::Result<bool> {
        self.check(key)?;
        let made = self.inner.put_new(b, key, bytes)?;
        Ok(made && !(self.answers_lost)(key))
    }
    fn put_state(&self, item: &StateItem) -> engine::Result<bool> {
        self.inner.put_state(item)
    }
    fn get_states(&self, id: &str) -> engine::Result<Vec<StateItem>> {
        self.inner.get_states(id)
    }
    fn delete_state(&self, id: &str, g: u32) -> engine::Result<()> {
        self.inner.delete_state(id, g)
    }
    fn get(&self, b: Bucket, key: &str) -> engine::Result<Option<Vec<u8>>> {
        self.inner.get(b, key)
    }
    fn get_versioned(&self, b: Bucket, key: &str) -> engine::Result<Option<(Vec<u8>, Version)>> {
        self.inner.get_versioned(b, key)
    }
    fn put_if(&self, b: Bucket, key: &str, bytes: &[u8], v: &Version) -> engine::Result<bool> {
        let made = self.inner.put_if(b, key, bytes, v)?;
        Ok(made && !(self.answers_lost)(key))
    }
    fn list(&self, b: Bucket, prefix: &str) -> engine::Result<Vec<String>> {
        self.inner.list(b, prefix)
    }
    fn delete(&self, b: Bucket, key: &str) -> engine::Result<()> {
        self.inner.delete(b, key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn settings(&self) -> &engine::store::StoreSettings {
        self.inner.settings()
    }
}

/// Point 1: a commit cut short after its checkpoint (its records not yet under their
/// keys) is finished from the checkpoint's copy by the next resume, which then breeds
/// what an uninterrupted run breeds.
#[test]
fn a_commit_cut_short_after_its_checkpoint_is_finished_on_resume() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 9, 2);
        let logs = format!("fitness_logs/{id}/");
        let failing = Arc::new(FailingPuts {
            inner: s.clone(),
            fails: Box::new(move |k| k.starts_with(&logs)),
            armed: AtomicBool::new(true),
            answers_lost: Box::new(|_| false),
        });
        let as_store: Arc<dyn BlobStore> = failing.clone();
        let mut cut =
            Evolution::resume(sandbox(), as_store, &id, Some(3), Some(1)).expect("resume");
        cut.run(|_| {}).expect_err("the publishing fails");
        assert!(get(s.as_ref(), &format!("checkpoints/{id}/000003.json")).is_some());
        assert!(get(s.as_ref(), &format!("fitness_logs/{id}/000003.json")).is_none());
        assert_eq!(evolve::head_generation(s.as_ref(), &id).expect("head"), 2);
        // and a local store's temporary file left by a killed write, an hour old
        let tmp = dir_of(&name, &_dir).map(|d| {
            let p = d.join(format!("evolution/checkpoints/{id}/.tmp-1-1-dead"));
            std::fs::write(&p, b"partial").expect("write");
            let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(hour_ago))
                .expect("age");
            p
        });
        let mut resumed =
            Evolution::resume(sandbox(), s.clone(), &id, Some(5), Some(1)).expect("resume");
        if let Some(p) = tmp {
            assert!(!p.exists(), "{name}: debris left");
        }
        let resumed_end = resumed.run(|_| {}).expect("run");
        let logs = evolve::fitness_logs(s.as_ref(), &id).expect("logs");
        assert_eq!(
            logs.iter().map(|l| l.generation).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
        // the same as a run never cut
        let whole = evolution(&s, 9, 5);
        let whole_logs = evolve::fitness_logs(s.as_ref(), &whole).expect("logs");
        assert_eq!(
            records(s.as_ref(), &id, 5)[1],
            records(s.as_ref(), &whole, 5)[1],
            "{name}: population of generation 5"
        );
        assert_eq!(
            logs.iter()
                .map(|l| l.best_error.to_bits())
                .collect::<Vec<_>>(),
            whole_logs
                .iter()
                .map(|l| l.best_error.to_bits())
                .collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(resumed_end.best.agent_id, {
            let mut e = Evolution::resume(sandbox(), s.clone(), &whole, None, Some(1))
                .expect("resume whole");
            e.run(|_| {}).expect("run").best.agent_id
        });
    }
}

fn sum_range() -> engine::task::Task {
    engine::task::Task::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/sum_range.toml"),
    )
    .expect("task")
}

/// Point 8: the counts of an evolution resumed twice are those of an uninterrupted run
/// (a resumed process does not count again what the evolution evaluated before).
#[test]
fn counts_after_resumes_equal_an_uninterrupted_runs() {
    for (name, s, _dir) in backends() {
        let start = |to: u32| {
            let task = sum_range();
            let config = EvolveConfig {
                seed: 11,
                population: 30,
                generations: to,
                threads: 1,
                ..EvolveConfig::for_task(&task)
            };
            Evolution::start(sandbox(), s.clone(), task, config, vec![]).expect("start")
        };
        let whole = start(8).run(|_| {}).expect("run");
        let mut first = start(2);
        let id = first.id().to_string();
        first.run(|_| {}).expect("run");
        Evolution::resume(sandbox(), s.clone(), &id, Some(5), Some(1))
            .expect("resume")
            .run(|_| {})
            .expect("run");
        let resumed = Evolution::resume(sandbox(), s.clone(), &id, Some(8), Some(2))
            .expect("resume")
            .run(|_| {})
            .expect("run");
        assert_eq!(resumed.generations, whole.generations, "{name}");
        assert_eq!(resumed.best.agent_id, whole.best.agent_id, "{name}");
        assert_eq!(
            resumed.evaluations, whole.evaluations,
            "{name}: evaluations"
        );
        assert_eq!(resumed.culled, whole.culled, "{name}: culled");
        assert_eq!(resumed.quarantined, whole.quarantined, "{name}");
        assert_eq!(resumed.valid_share, whole.valid_share, "{name}");
    }
}

/// Point 6: an evolution runs under the policy it started under; a resume under
/// another is refused before anything is written, one under the same goes on.
#[test]
fn a_resume_under_another_policy_is_refused() {
    for (name, s, _dir) in backends() {
        let tight = Policy::from_toml("[limits]\nfuel_per_call = 500\n").expect("policy");
        let task = sum_range();
        let config = EvolveConfig {
            seed: 4,
            population: 20,
            generations: 2,
            threads: 1,
            ..EvolveConfig::for_task(&task)
        };
        let tight_box = Sandbox::new(tight.clone()).expect("sandbox");
        let mut e =
            Evolution::start(tight_box.clone(), s.clone(), task, config, vec![]).expect("start");
        let id = e.id().to_string();
        e.run(|_| {}).expect("run");
        let stored = Evolution::stored_policy(s.as_ref(), &id)
            .expect("read")
            .expect("stored");
        assert_eq!(stored.limits.fuel_per_call, 500, "{name}");
        let e = match Evolution::resume(sandbox(), s.clone(), &id, Some(3), Some(1)) {
            Ok(_) => panic!("{name}: resumed under another policy"),
            Err(e) => e,
        };
        assert!(
            matches!(e.kind(), ErrorKind::PolicyDiffers { .. }),
            "{name}: {e}"
        );
        assert!(e.to_string().contains("policy.json"), "{name}: {e}");
        assert_eq!(evolve::head_generation(s.as_ref(), &id).expect("head"), 2);
        let stored_box = Sandbox::new(stored).expect("sandbox");
        let mut again =
            Evolution::resume(stored_box, s.clone(), &id, Some(3), Some(1)).expect("resume");
        assert_eq!(again.run(|_| {}).expect("run").generations, 3, "{name}");
    }
}

/// Point 8: an evolution stopped before its generation 0 was committed is listed, and
/// `resume` starts it from its stored setup and seeds: the same run as one never
/// stopped.
#[test]
fn an_evolution_stopped_before_generation_0_resumes_as_it_would_have_run() {
    for (name, s, _dir) in backends() {
        let task = sum_range();
        let config = EvolveConfig {
            seed: 12,
            population: 20,
            generations: 3,
            threads: 1,
            ..EvolveConfig::for_task(&task)
        };
        // a seed module: the best of another evolution
        let seed = {
            let mut e = Evolution::start(
                sandbox(),
                s.clone(),
                task.clone(),
                EvolveConfig {
                    seed: 99,
                    generations: 0,
                    ..config.clone()
                },
                vec![],
            )
            .expect("start");
            e.run(|_| {}).expect("run").best_module
        };
        let whole = Evolution::start(
            sandbox(),
            s.clone(),
            task.clone(),
            config.clone(),
            vec![seed.clone()],
        )
        .expect("start")
        .run(|_| {})
        .expect("run");
        let failing: Arc<dyn BlobStore> = Arc::new(FailingPuts {
            inner: s.clone(),
            fails: Box::new(|k| k.starts_with("checkpoints/") && k.ends_with("/000000.json")),
            armed: AtomicBool::new(true),
            answers_lost: Box::new(|_| false),
        });
        let before: Vec<String> = evolve::list(s.as_ref())
            .expect("list")
            .into_iter()
            .map(|e| e.evolution_id)
            .collect();
        assert!(
            Evolution::start(sandbox(), failing, task, config, vec![seed]).is_err(),
            "{name}"
        );
        let orphan = evolve::list(s.as_ref())
            .expect("list")
            .into_iter()
            .find(|e| !before.contains(&e.evolution_id))
            .unwrap_or_else(|| panic!("{name}: the stopped evolution is not listed"));
        let resumed = Evolution::resume(sandbox(), s.clone(), &orphan.evolution_id, None, None)
            .expect("resume")
            .run(|_| {})
            .expect("run");
        assert_eq!(resumed.generations, whole.generations, "{name}");
        assert_eq!(resumed.best.agent_id, whole.best.agent_id, "{name}");
        assert_eq!(resumed.evaluations, whole.evaluations, "{name}");
    }
}

/// A generation in which no member has an error below 1e29 has no mean error (and so
/// no median): its log and its checkpoint's history store that as `inf`, which must
/// read back, so the evolution lists, shows its logs and resumes.
#[test]
fn a_generation_without_a_mean_error_reads_back_and_resumes() {
    for (name, s, _dir) in backends() {
        let task = engine::task::Task::parse(
            "name = \"far\"\nparams = [\"f64\"]\nresult = \"f64\"\nerror = \"abs\"\n\
             success_threshold = 0.0\n\
             cases = [{ args = [1.0], expect = 1e300 }, { args = [2.0], expect = -1e300 }]\n",
            false,
        )
        .expect("task");
        let config = EvolveConfig {
            seed: 3,
            population: 6,
            generations: 1,
            threads: 1,
            ..EvolveConfig::for_task(&task)
        };
        let mut e = Evolution::start(sandbox(), s.clone(), task, config, vec![]).expect("start");
        let id = e.id().to_string();
        let summary = e.run(|_| {}).expect("run");
        assert!(
            summary.history.iter().all(|(_, mean)| mean.is_infinite()),
            "{name}: the test needs generations without a mean: {:?}",
            summary.history
        );
        let logs = evolve::fitness_logs(s.as_ref(), &id).expect("the logs read back");
        assert!(logs.iter().all(|l| l.mean_error.is_infinite()), "{name}");
        assert!(
            evolve::list(s.as_ref())
                .expect("list")
                .iter()
                .any(|e| e.evolution_id == id)
        );
        let mut again =
            Evolution::resume(sandbox(), s.clone(), &id, Some(2), Some(1)).expect("resume");
        assert_eq!(again.run(|_| {}).expect("run on").generations, 2, "{name}");
    }
}

/// Point 7: `store copy` checks the checksum of every record it copies.
#[test]
fn a_copy_refuses_a_record_whose_checksum_does_not_match() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 13, 1);
        let key = format!("checkpoints/{id}/000001.json");
        let good = get(s.as_ref(), &key).expect("stored");
        s.put(Bucket::Evolution, &key, &one_digit_changed(&good))
            .expect("put");
        let to_dir = tempfile::tempdir().expect("tempdir");
        let to =
            engine::store::open(&format!("file://{}", to_dir.path().display())).expect("store");
        let e = engine::store::copy(s.as_ref(), to.as_ref()).expect_err("a changed record");
        assert!(
            e.to_string().contains(&key) && e.to_string().contains("checksum"),
            "{name}: {e}"
        );
        s.put(Bucket::Evolution, &key, &good).expect("put back");
        engine::store::copy(s.as_ref(), to.as_ref()).expect("a sound store copies");
    }
}

/// The fitness logs up to the head do not read a damaged log past it (an abandoned
/// branch's).
#[test]
fn a_damaged_log_past_the_head_is_not_read() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 14, 3);
        evolve::rollback(s.as_ref(), &id, 1).expect("rollback");
        let key = format!("fitness_logs/{id}/000003.json");
        s.put(Bucket::Evolution, &key, b"{ cut").expect("put");
        let logs = evolve::fitness_logs(s.as_ref(), &id).expect("logs up to the head");
        assert_eq!(logs.len(), 2, "{name}");
    }
}

/// A move of the head that was made but answered as lost (a retried S3 call meeting its
/// own change) is the run's own: it carries on, and ends as an uninterrupted run does.
#[test]
fn a_head_move_answered_as_lost_is_still_the_runs_own() {
    for (name, s, _dir) in backends() {
        let plain = evolution(&s, 21, 3);
        let lossy: Arc<dyn BlobStore> = Arc::new(FailingPuts {
            inner: s.clone(),
            fails: Box::new(|_| false),
            armed: AtomicBool::new(false),
            answers_lost: Box::new(|k| k.starts_with("heads/") || k.ends_with("head.json")),
        });
        let id = evolution(&lossy, 21, 3);
        assert_eq!(
            evolve::head_generation(s.as_ref(), &id).expect("head"),
            3,
            "{name}"
        );
        let a = evolve::fitness_logs(s.as_ref(), &plain).expect("logs");
        let b = evolve::fitness_logs(s.as_ref(), &id).expect("logs");
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{name}");
    }
}

/// A hook: before the first call of operation `op` on a key `matches` accepts.
type Hook = (
    &'static str,
    Box<dyn Fn(&str) -> bool + Send + Sync>,
    Box<dyn FnOnce() + Send>,
);

/// A store that runs another process's steps (hooks) just before some of its calls.
struct Hooked {
    inner: Arc<dyn BlobStore>,
    hooks: std::sync::Mutex<Vec<Hook>>,
}

impl Hooked {
    fn before(&self, op: &str, key: &str) {
        let hook = {
            let mut hooks = self.hooks.lock().expect("hooks");
            let at = hooks.iter().position(|(o, m, _)| *o == op && m(key));
            at.map(|i| hooks.remove(i))
        };
        if let Some((_, _, run)) = hook {
            run();
        }
    }
}

impl BlobStore for Hooked {
    fn put(&self, b: Bucket, key: &str, bytes: &[u8]) -> engine::Result<()> {
        self.before("put", key);
        self.inner.put(b, key, bytes)
    }
    fn put_new(&self, b: Bucket, key: &str, bytes: &[u8]) -> engine::Result<bool> {
        self.before("put_new", key);
        self.inner.put_new(b, key, bytes)
    }
    fn put_state(&self, item: &StateItem) -> engine::Result<bool> {
        self.before("put_state", &item.generation.to_string());
        self.inner.put_state(item)
    }
    fn get_states(&self, id: &str) -> engine::Result<Vec<StateItem>> {
        self.inner.get_states(id)
    }
    fn delete_state(&self, id: &str, g: u32) -> engine::Result<()> {
        self.before("delete_state", &g.to_string());
        self.inner.delete_state(id, g)
    }
    fn get(&self, b: Bucket, key: &str) -> engine::Result<Option<Vec<u8>>> {
        self.inner.get(b, key)
    }
    fn get_versioned(&self, b: Bucket, key: &str) -> engine::Result<Option<(Vec<u8>, Version)>> {
        self.inner.get_versioned(b, key)
    }
    fn put_if(&self, b: Bucket, key: &str, bytes: &[u8], v: &Version) -> engine::Result<bool> {
        self.before("put_if", key);
        self.inner.put_if(b, key, bytes, v)
    }
    fn list(&self, b: Bucket, prefix: &str) -> engine::Result<Vec<String>> {
        self.inner.list(b, prefix)
    }
    fn delete(&self, b: Bucket, key: &str) -> engine::Result<()> {
        self.before("delete", key);
        self.inner.delete(b, key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn settings(&self) -> &engine::store::StoreSettings {
        self.inner.settings()
    }
}

/// A run that lost the head to a rollback, while a resumed twin adopted the checkpoint
/// it created and moved the head onto it, leaves that checkpoint and its state row in
/// place: the evolution stays whole and resumes.
#[test]
fn a_checkpoint_a_twin_adopted_stays_when_its_creator_lost_the_head() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 31, 2);
        let cp3 = format!("checkpoints/{id}/000003.json");
        let (rolls, twin) = (s.clone(), s.clone());
        let (rid, tid) = (id.clone(), id.clone());
        let hooked: Arc<dyn BlobStore> = Arc::new(Hooked {
            inner: s.clone(),
            hooks: std::sync::Mutex::new(vec![
                // a rollback to 2 lands just before this run creates checkpoint 3
                (
                    "put_new",
                    Box::new(move |k| k == cp3),
                    Box::new(move || evolve::rollback(rolls.as_ref(), &rid, 2).expect("rollback")),
                ),
                // and a twin resumed from 2 commits 3 as this run abandons it
                (
                    "delete_state",
                    Box::new(|k| k == "3"),
                    Box::new(move || {
                        let mut t = Evolution::resume(sandbox(), twin, &tid, Some(3), Some(1))
                            .expect("twin resumes");
                        t.run(|_| {}).expect("twin commits 3");
                    }),
                ),
            ]),
        });
        let mut lost = Evolution::resume(sandbox(), hooked, &id, Some(3), Some(1)).expect("resume");
        let e = lost.run(|_| {}).expect_err("it lost the head");
        assert!(is_conflict(&e), "{name}: {e}");
        assert_eq!(
            evolve::head_generation(s.as_ref(), &id).expect("head"),
            3,
            "{name}"
        );
        assert!(
            records(s.as_ref(), &id, 3).iter().all(Option::is_some),
            "{name}"
        );
        let rows = s.get_states(&id).expect("rows");
        assert!(rows.iter().any(|r| r.generation == 3), "{name}: row 3 gone");
        let mut next = Evolution::resume(sandbox(), s.clone(), &id, Some(4), Some(1))
            .expect("the evolution resumes");
        next.run(|_| {}).expect("run");
    }
}

/// A damaged generation record below the head is read from its checkpoint's copy when
/// a resume gathers the modules evaluated so far: the resume goes on.
#[test]
fn a_damaged_record_below_the_head_is_read_from_its_checkpoint_on_resume() {
    for (name, s, _dir) in backends() {
        let id = evolution(&s, 33, 3);
        let key = format!("generations/{id}/000001.json");
        let good = get(s.as_ref(), &key).expect("record");
        s.put(Bucket::Evolution, &key, &one_digit_changed(&good))
            .expect("put");
        let mut e = Evolution::resume(sandbox(), s.clone(), &id, Some(4), Some(1))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        e.run(|_| {}).expect("run");
        assert_eq!(evolve::head_generation(s.as_ref(), &id).expect("head"), 4);
    }
}
