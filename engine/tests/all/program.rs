//! Programs with loops in an evolution: the task's fuel budget per case makes a wrong
//! answer, not a safety event; what the policy stops is quarantined, at most
//! `quarantine_per_outcome` records per outcome and generation, every one counted.

use engine::Quarantine;
use engine::evolve::{Evolution, EvolveConfig};
use engine::store::{self, BlobStore, Bucket};
use engine::task::Task;
use runtime::{Policy, Sandbox};
use std::sync::Arc;

fn store() -> (Arc<dyn BlobStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::open(&format!("file://{}", dir.path().display())).expect("store");
    (s, dir)
}

/// `act(n)`: n when n ≥ 0; for a negative n a loop that never ends.
const LOOPS_ON_NEGATIVES: &str = r#"(module (func (export "act") (param i64) (result i64)
    (block (loop
      (br_if 1 (i64.ge_s (local.get 0) (i64.const 0)))
      (local.set 0 (i64.add (local.get 0) (i64.const -1)))
      (br 0)))
    (local.get 0)))"#;

fn identity_task(fuel: Option<u64>) -> Task {
    // None: the default budget
    let budget = fuel.map_or(String::new(), |f| format!("fuel_per_case = {f}\n"));
    Task::parse(
        &format!(
            r#"name = "id"
params = ["i64"]
result = "i64"
error = "exact"
success_threshold = 0.0
{budget}cases = [ {{ args = [3], expect = 3 }}, {{ args = [-2], expect = -2 }},
          {{ args = [7], expect = 7 }}, {{ args = [-9], expect = -9 }} ]"#
        ),
        false,
    )
    .expect("task")
}

/// A fitness log as JSON (a generation with every module culled has an infinite best
/// error, stored as null).
/// The record of generation `g` under `kind` (`fitness_logs`, `checkpoints`, …).
fn record(s: &dyn BlobStore, kind: &str, id: &str, g: u32) -> serde_json::Value {
    let b = s
        .get(Bucket::Evolution, &format!("{kind}/{id}/{g:06}.json"))
        .expect("get")
        .unwrap_or_else(|| panic!("no {kind} record of generation {g}"));
    serde_json::from_slice(&b).expect("json")
}

fn fitness_log(s: &dyn BlobStore, id: &str, g: u32) -> serde_json::Value {
    record(s, "fitness_logs", id, g)
}

#[test]
fn running_out_of_the_budget_is_a_wrong_answer_not_a_quarantine() {
    let (s, _dir) = store();
    let seed = wat::parse_str(LOOPS_ON_NEGATIVES).expect("wat");
    let config = EvolveConfig {
        population: 2,
        generations: 0,
        threads: 1,
        control_flow: true,
        ..Default::default()
    };
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    let mut evo = Evolution::start(
        sandbox,
        s.clone(),
        identity_task(Some(500)),
        config,
        vec![seed],
    )
    .expect("start");
    let summary = evo.run(|_| {}).expect("run");
    let log = fitness_log(s.as_ref(), &summary.evolution_id, 0);
    // the seed answered 2 of 4 cases and ran out of its budget on the other 2: an
    // error of 0.5 (exact metric, worst error 1), counted under out_of_fuel
    assert_eq!(log["culled"]["out_of_fuel"], 1, "{log}");
    assert!(
        summary.best.train_error <= 0.5,
        "the seed is scored, not culled: {:?}",
        summary.best
    );
    // not a safety event: nothing quarantined, no trap-rate flag
    assert!(Quarantine::new(s.clone()).list().expect("list").is_empty());
    assert_eq!(summary.quarantined, 0);
    let snap = record(s.as_ref(), "safety_snapshots", &summary.evolution_id, 0);
    assert_eq!(snap["trap_rate"], 0.0, "{snap}");
}

#[test]
fn policy_stops_quarantine_at_most_the_cap_per_outcome_and_count_the_rest() {
    let (s, _dir) = store();
    // six distinct modules that recurse without end: the policy's stack limit
    let seeds: Vec<Vec<u8>> = (0..6)
        .map(|k| {
            wat::parse_str(format!(
                r#"(module (func $f (export "act") (param i64) (result i64)
                    (i64.add (call $f (i64.add (local.get 0) (i64.const {k}))) (i64.const 1))))"#
            ))
            .expect("wat")
        })
        .collect();
    let config = EvolveConfig {
        population: 6,
        generations: 0,
        threads: 1,
        quarantine_per_outcome: 2,
        ..Default::default()
    };
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    // a budget as large as the policy's fuel: the stack runs out first
    let task = identity_task(Some(10_000_000));
    let mut evo = Evolution::start(sandbox, s.clone(), task, config, seeds).expect("start");
    let summary = evo.run(|_| {}).expect("run");
    let log = fitness_log(s.as_ref(), &summary.evolution_id, 0);
    assert_eq!(log["culled"]["stack_overflow"], 6, "{log}");
    assert_eq!(log["quarantine_withheld"]["stack_overflow"], 4, "{log}");
    assert_eq!(summary.quarantined, 2);
    assert_eq!(summary.quarantine_withheld, 4);
    let records = Quarantine::new(s.clone()).list().expect("list");
    assert_eq!(records.len(), 2);
    // each record says which evolution and generation bred it, and the case that trapped
    let task = identity_task(None);
    for r in &records {
        let o = r.origin.as_ref().expect("origin");
        assert_eq!(o.source, "evolution");
        assert_eq!(
            o.evolution_id.as_deref(),
            Some(summary.evolution_id.as_str())
        );
        assert_eq!(o.generation, Some(0));
        assert_eq!(o.name, format!("{} g0", summary.evolution_id));
        let t = &r.trap_history[0];
        let args = t.input.as_ref().and_then(|i| i.args.clone()).expect("args");
        let first: Vec<String> = task.cases[0]
            .args
            .iter()
            .map(|v| engine::quarantine::value_text(*v))
            .collect();
        assert_eq!(args, first, "the first case traps");
        assert!(
            t.remedy.as_deref().is_some_and(|r| r.contains("recursion")),
            "{t:?}"
        );
    }
    // both counts are in the checkpoint, for `evolutions` and /metrics
    let cp = record(s.as_ref(), "checkpoints", &summary.evolution_id, 0);
    assert_eq!(
        (&cp["quarantined"], &cp["quarantine_withheld"]),
        (&2.into(), &4.into())
    );
}

/// Every shipped task parses, and the program-synthesis tasks are what their seeded
/// generator writes (`scripts/gen_tasks.py --check`), each with a fuel budget and a
/// reference entry.
#[test]
fn the_shipped_tasks_parse_and_are_what_the_generator_writes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut n = 0;
    for entry in std::fs::read_dir(root.join("fixtures/tasks")).expect("tasks") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let t = Task::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(t.fuel_per_case >= 1, "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 16, "{n} tasks");
    let reference: toml::Table = toml::from_str(
        &std::fs::read_to_string(root.join("fixtures/psb-reference.toml")).expect("reference"),
    )
    .expect("reference TOML");
    assert!(
        reference.len() >= 10,
        "{} program-synthesis tasks",
        reference.len()
    );
    for name in reference.keys() {
        let t = Task::from_file(&root.join(format!("fixtures/tasks/{name}.toml")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!t.test_cases.is_empty(), "{name} has held-out cases");
    }
    let python = std::env::var("TDEV_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/gen_tasks.py"))
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a queued job will do: one process writes the task and the
/// configuration under a new id, another reads them and starts the evolution under
/// that id; the run is the one `start` would have made.
#[test]
fn a_prepared_evolution_started_elsewhere_is_the_one_start_makes() {
    let task = Task::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/abs.toml"),
    )
    .expect("task");
    let config = EvolveConfig {
        seed: 7,
        population: 40,
        generations: 4,
        threads: 1,
        ..EvolveConfig::for_task(&task)
    };
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    let (s1, _d1) = store();
    let direct = Evolution::start(sandbox.clone(), s1, task.clone(), config.clone(), vec![])
        .expect("start")
        .run(|_| {})
        .expect("run");
    let (s2, _d2) = store();
    let id = Evolution::prepare(s2.as_ref(), &task, &config).expect("prepare");
    let p = Evolution::stored(s2.as_ref(), &id).expect("stored");
    assert_eq!(
        (
            p.id.as_str(),
            p.task.cases.len(),
            p.config.seed,
            p.config.selection
        ),
        (id.as_str(), task.cases.len(), 7, config.selection)
    );
    let queued = Evolution::start_prepared(sandbox.clone(), s2.clone(), p, vec![])
        .expect("start_prepared")
        .run(|_| {})
        .expect("run");
    assert_eq!(queued.evolution_id, id);
    assert_eq!(
        (
            &queued.best.agent_id,
            queued.generations,
            queued.evaluations
        ),
        (
            &direct.best.agent_id,
            direct.generations,
            direct.evaluations
        )
    );
    // ids are keys of the store: a hostile one is refused, a missing one not found
    assert!(Evolution::stored(s2.as_ref(), "../../etc").is_err());
    assert!(Evolution::stored(s2.as_ref(), "evo-none-000000000000").is_err());
    let mut p = Evolution::stored(s2.as_ref(), &id).expect("stored");
    p.id = "../x".into();
    assert!(Evolution::start_prepared(sandbox, s2, p, vec![]).is_err());
}
