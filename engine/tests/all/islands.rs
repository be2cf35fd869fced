//! Island evolutions without a queue: epochs run in any order that respects their
//! inputs give the same result; a committed epoch is not run again; migrants read from
//! the store are untrusted.

use engine::evolve::islands::{self, EpochEnd, IslandPlan};
use engine::evolve::{EvolveConfig, list};
use engine::store::{self, BlobStore, Bucket};
use engine::task::Task;
use runtime::{Policy, Sandbox};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn store() -> (Arc<dyn BlobStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::open(&format!("file://{}", dir.path().display())).expect("store");
    (s, dir)
}

fn task() -> Task {
    Task::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/sum_range.toml"),
    )
    .expect("task")
}

const PLAN: IslandPlan = IslandPlan {
    islands: 3,
    epoch_generations: 2,
    migrants: 3,
};

fn config() -> EvolveConfig {
    EvolveConfig {
        seed: 5,
        population: 40,
        generations: 6,
        threads: 1,
        ..EvolveConfig::for_task(&task())
    }
}

fn epoch(s: &Arc<dyn BlobStore>, id: &str, island: u32, e: u32) -> EpochEnd {
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    islands::run_epoch(sandbox, s.clone(), id, island, e, Some(1), &|_: Arc<
        AtomicBool,
    >| {})
    .expect("epoch")
}

/// Runs every epoch of every island, in `order` within each round, until all end;
/// the result.
fn run_all(s: &Arc<dyn BlobStore>, id: &str, order: &[u32]) -> islands::IslandResult {
    let mut next: Vec<Option<u32>> = vec![Some(0); PLAN.islands as usize];
    for _round in 0..100 {
        for &i in order {
            let Some(e) = next[i as usize] else { continue };
            match epoch(s, id, i, e) {
                EpochEnd::Committed { next: n, .. } => next[i as usize] = n,
                EpochEnd::Waiting => {}
                EpochEnd::Ended => next[i as usize] = None,
                EpochEnd::Stopped => panic!("stopped"),
            }
        }
        if next.iter().all(Option::is_none) {
            return islands::finish(s.as_ref(), id)
                .expect("finish")
                .expect("a result once every island is done");
        }
    }
    panic!("the islands never ended: {next:?}");
}

#[test]
fn the_order_of_epochs_does_not_change_the_result() {
    let (a, _da) = store();
    let id_a = islands::prepare_islands(a.as_ref(), &task(), &config(), &PLAN).expect("prepare");
    // nothing to finish yet, and an epoch whose neighbour has not run waits
    assert_eq!(islands::finish(a.as_ref(), &id_a).expect("finish"), None);
    assert_eq!(epoch(&a, &id_a, 1, 1), EpochEnd::Waiting);
    let ra = run_all(&a, &id_a, &[0, 1, 2]);
    let (b, _db) = store();
    let id_b = islands::prepare_islands(b.as_ref(), &task(), &config(), &PLAN).expect("prepare");
    let rb = run_all(&b, &id_b, &[2, 1, 0]);
    assert_eq!(
        (&ra.best_agent_id, ra.best_error, ra.epoch, ra.status),
        (&rb.best_agent_id, rb.best_error, rb.epoch, rb.status)
    );
    // a committed epoch is not run again: nothing new is written
    let before = a.list(Bucket::Evolution, "").expect("list");
    let again = epoch(&a, &id_a, 0, 0);
    assert!(matches!(again, EpochEnd::Committed { .. }), "{again:?}");
    assert_eq!(a.list(Bucket::Evolution, "").expect("list"), before);
    // one line in the list, with the result's best agent
    let l = list(a.as_ref()).expect("list");
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].islands, Some(3));
    assert_eq!(l[0].best_agent_id.as_ref(), Some(&ra.best_agent_id));
    // an island or an epoch that the plan does not have is an error
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    for (i, e) in [(3, 0), (0, 3)] {
        assert!(
            islands::run_epoch(sandbox.clone(), a.clone(), &id_a, i, e, Some(1), &|_| {}).is_err()
        );
    }
}

#[test]
fn migrants_that_are_not_agents_of_the_task_are_left_out() {
    let (s, _d) = store();
    let id = islands::prepare_islands(s.as_ref(), &task(), &config(), &PLAN).expect("prepare");
    for i in 0..3 {
        assert!(matches!(epoch(&s, &id, i, 0), EpochEnd::Committed { .. }));
    }
    // island 0's migrants are replaced by a module of another signature, a trap and
    // bytes that are not Wasm; island 1 takes them in and runs on
    let key = format!("islands/{id}/migrants/000000/000.json");
    let wrong_sig =
        wat::parse_str(r#"(module (func (export "act") (result i64) i64.const 1))"#).expect("wat");
    let hostile = serde_json::json!({
        "island": 0, "epoch": 0, "generation": 2,
        "modules": [runtime::to_hex(&wrong_sig), runtime::to_hex(b"\0asm junk"), "zz"],
    });
    s.put(Bucket::Evolution, &key, hostile.to_string().as_bytes())
        .expect("put");
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    // "zz" is not hex: the store is corrupt, and the epoch says so
    let err = islands::run_epoch(sandbox.clone(), s.clone(), &id, 1, 1, Some(1), &|_| {})
        .expect_err("corrupt migrants");
    assert!(err.to_string().contains(&key), "{err}");
    let fixed = serde_json::json!({
        "island": 0, "epoch": 0, "generation": 2,
        "modules": [runtime::to_hex(&wrong_sig), runtime::to_hex(b"\0asm junk")],
    });
    s.put(Bucket::Evolution, &key, fixed.to_string().as_bytes())
        .expect("put");
    assert!(matches!(
        islands::run_epoch(sandbox, s.clone(), &id, 1, 1, Some(1), &|_| {}).expect("epoch"),
        EpochEnd::Committed { .. }
    ));
}

#[test]
fn plans_that_cannot_run_are_refused() {
    let (s, _d) = store();
    let c = config();
    for bad in [
        IslandPlan { islands: 0, ..PLAN },
        IslandPlan {
            islands: 1001,
            ..PLAN
        },
        IslandPlan {
            epoch_generations: 0,
            ..PLAN
        },
        IslandPlan {
            migrants: 39,
            ..PLAN
        },
    ] {
        assert!(
            islands::prepare_islands(s.as_ref(), &task(), &c, &bad).is_err(),
            "{bad:?}"
        );
    }
    assert!(list(s.as_ref()).expect("list").is_empty());
    assert_eq!(PLAN.epochs(6), 3);
    assert_eq!(PLAN.epochs(7), 4);
    assert_eq!(PLAN.limit(3, 7), 7);
    assert_eq!(PLAN.source(0), 2);
}
