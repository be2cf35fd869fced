//! Records written before the engine's records were typed (the fixtures under
//! `engine/tests/fixtures/store-v1`, written by the code of that time) are read, listed
//! and resumed by today's code, and what it writes now has the same fields.

use engine::evolve::{self, Evolution};
use engine::records::{
    Checkpoint, GenerationRecord, GenerationStats, Head, Metadata, Performance, SafetySnapshot,
    Stopped,
};
use engine::store::{self, BlobStore, Bucket, StateItem};
use engine::{AgentId, Quarantine};
use runtime::{Policy, Sandbox};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// A copy of the fixture store in a temporary directory.
fn old_store() -> (Arc<dyn BlobStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixtures(), dir.path());
    let s = store::open(&format!("file://{}", dir.path().display())).expect("store");
    (s, dir)
}

fn json(s: &dyn BlobStore, bucket: Bucket, key: &str) -> Value {
    let b = s
        .get(bucket, key)
        .expect("get")
        .unwrap_or_else(|| panic!("{key} missing"));
    serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// The field names of an object, with those of nested objects as `outer.inner`.
fn fields(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Value::Object(m) = v {
        for (k, inner) in m {
            out.insert(k.clone());
            for f in fields(inner) {
                if inner.is_object()
                    && !k.ends_with("culled")
                    && k != "outcomes"
                    && k != "trap_counts"
                {
                    out.insert(format!("{k}.{f}"));
                }
            }
        }
    }
    out
}

fn old_list() -> Vec<Value> {
    let b = std::fs::read(fixtures().join("list.json")).expect("list.json");
    serde_json::from_slice(&b).expect("list")
}

#[test]
fn old_records_parse_as_the_typed_records() {
    let (s, _dir) = old_store();
    let mut kinds = BTreeSet::new();
    for key in s.list(Bucket::Evolution, "").expect("list") {
        let b = s.get(Bucket::Evolution, &key).expect("get").expect("some");
        let name = key.rsplit('/').next().unwrap_or_default();
        let kind = key.split('/').next().unwrap_or_default();
        let parsed = match (kind, name) {
            ("checkpoints", "head.json") => serde_json::from_slice::<Head>(&b).map(|_| ()),
            ("checkpoints", "stopped.json") => serde_json::from_slice::<Stopped>(&b).map(|_| ()),
            ("checkpoints", "task.json") => {
                engine::task::Task::parse(std::str::from_utf8(&b).expect("utf8"), true)
                    .map(|_| ())
                    .map_err(|e| panic!("{key}: {e}"))
            }
            ("checkpoints", "config.json") => {
                serde_json::from_slice::<evolve::EvolveConfig>(&b).map(|_| ())
            }
            ("checkpoints", _) => serde_json::from_slice::<Checkpoint>(&b).map(|_| ()),
            ("generations", _) => serde_json::from_slice::<GenerationRecord>(&b).map(|_| ()),
            ("fitness_logs", _) => serde_json::from_slice::<GenerationStats>(&b).map(|_| ()),
            ("safety_snapshots", _) => serde_json::from_slice::<SafetySnapshot>(&b).map(|_| ()),
            _ => continue,
        };
        parsed.unwrap_or_else(|e| panic!("{key}: {e}"));
        kinds.insert(format!("{kind}/{name}").replace(|c: char| c.is_ascii_digit(), "0"));
    }
    assert!(kinds.len() >= 8, "{kinds:?}");
    for key in s.list(Bucket::Agents, "").expect("list") {
        let b = s.get(Bucket::Agents, &key).expect("get").expect("some");
        let parsed = if key.starts_with("metadata/") {
            serde_json::from_slice::<Metadata>(&b).map(|_| ())
        } else if key.starts_with("performance/") {
            serde_json::from_slice::<Performance>(&b).map(|_| ())
        } else if key.starts_with("quarantine/") {
            serde_json::from_slice::<engine::Record>(&b).map(|_| ())
        } else {
            continue;
        };
        parsed.unwrap_or_else(|e| panic!("{key}: {e}"));
        kinds.insert(key.split('/').next().unwrap_or_default().to_string());
    }
    for k in ["metadata", "performance", "quarantine"] {
        assert!(kinds.contains(k), "{kinds:?}");
    }
    // the state rows of the file store
    for e in old_list() {
        let id = e["evolution_id"].as_str().expect("id");
        let rows: Vec<StateItem> = s.get_states(id).expect("states");
        assert!(!rows.is_empty(), "{id}");
    }
    // quarantine records: one released, one purged
    let q = Quarantine::new(s.clone());
    let listed = q.list().expect("quarantine list");
    assert_eq!(listed.len(), 1, "the purged record is not listed");
    assert_eq!(listed[0].status, engine::Status::Released);
    let actions: Vec<&str> = listed[0].audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["quarantined", "released"]);
}

#[test]
fn old_evolutions_list_as_before() {
    let (s, _dir) = old_store();
    let listed = evolve::list(s.as_ref()).expect("list");
    let mut now = serde_json::to_value(&listed).expect("json");
    // Entries have gained the head's best agent (the checkpoint's): the rest is as it
    // was.
    for (entry, e) in now.as_array_mut().expect("array").iter_mut().zip(&listed) {
        let id = entry
            .as_object_mut()
            .expect("object")
            .remove("best_agent_id")
            .expect("best_agent_id");
        let head = engine::evolve::head_generation(s.as_ref(), &e.evolution_id).expect("head");
        let cp: Checkpoint = serde_json::from_slice(
            &s.get(
                Bucket::Evolution,
                &format!("checkpoints/{}/{head:06}.json", e.evolution_id),
            )
            .expect("get")
            .expect("checkpoint"),
        )
        .expect("checkpoint");
        assert_eq!(id, serde_json::to_value(&cp.best.agent_id).expect("id"));
    }
    assert_eq!(now, Value::Array(old_list()));
    let statuses: BTreeSet<String> = old_list()
        .iter()
        .filter_map(|e| e["status"].as_str().map(str::to_string))
        .collect();
    assert!(statuses.contains("stopped"), "{statuses:?}");
}

#[test]
fn old_evolutions_resume_and_write_records_of_the_same_fields() {
    let (s, _dir) = old_store();
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    for e in old_list() {
        let id = e["evolution_id"].as_str().expect("id");
        let head = e["head_generation"].as_u64().expect("head") as u32;
        let old = |prefix: &str| {
            json(
                s.as_ref(),
                Bucket::Evolution,
                &format!("{prefix}/{id}/{head:06}.json"),
            )
        };
        let (cp, generation, log, snap) = (
            old("checkpoints"),
            old("generations"),
            old("fitness_logs"),
            old("safety_snapshots"),
        );
        let mut evo = Evolution::resume(sandbox.clone(), s.clone(), id, Some(head + 1), Some(1))
            .unwrap_or_else(|e| panic!("{id}: {e:#}"));
        assert_eq!(evo.generation(), head, "{id}");
        if e["status"] == "solved" {
            continue;
        }
        let summary = evo.run(|_| {}).expect("run");
        assert_eq!(summary.generations, head + 1, "{id}");
        let new = |prefix: &str| {
            json(
                s.as_ref(),
                Bucket::Evolution,
                &format!("{prefix}/{id}/{:06}.json", head + 1),
            )
        };
        for (what, before, after) in [
            ("checkpoint", &cp, new("checkpoints")),
            ("generation", &generation, new("generations")),
            ("fitness log", &log, new("fitness_logs")),
            ("safety snapshot", &snap, new("safety_snapshots")),
        ] {
            let mut want = fields(before);
            // the fitness log has gained the generation's median error
            if what == "fitness log" {
                want.insert("median_error".to_string());
            }
            // every record has gained its checksum, the checkpoint the digests of
            // the records it commits
            want.insert("checksum".to_string());
            // and a generation the modules it evaluated first
            if what == "generation" {
                want.insert("evaluated".to_string());
            }
            if what == "checkpoint" {
                for k in [
                    "",
                    ".fitness_log",
                    ".generation",
                    ".safety_snapshot",
                    ".text",
                ] {
                    want.insert(format!("records{k}"));
                }
            }
            assert_eq!(want, fields(&after), "{id}: {what}");
        }
        let member = |v: &Value| fields(&v["population"][0]);
        assert_eq!(member(&generation), member(&new("generations")), "{id}");
        // the head has gained the random id of the commit that wrote it
        let mut written_head = json(
            s.as_ref(),
            Bucket::Evolution,
            &format!("checkpoints/{id}/head.json"),
        );
        let writer = written_head
            .as_object_mut()
            .and_then(|o| o.remove("writer"))
            .expect("writer");
        assert!(writer.as_str().is_some_and(|w| w.len() == 32), "{writer}");
        assert_eq!(written_head, serde_json::json!({ "generation": head + 1 }));
        // the best module's metadata and performance, as before
        let best: AgentId = summary.best.agent_id.clone();
        for prefix in ["metadata", "performance"] {
            let key = format!("{prefix}/{}.json", best.hex());
            let Some(b) = s.get(Bucket::Agents, &key).expect("get") else {
                continue;
            };
            let after: Value = serde_json::from_slice(&b).expect("json");
            let before = s
                .list(Bucket::Agents, &format!("{prefix}/"))
                .expect("list")
                .into_iter()
                .find(|k| *k != key)
                .map(|k| json(s.as_ref(), Bucket::Agents, &k))
                .expect("an old one");
            assert_eq!(fields(&before), fields(&after), "{prefix}");
        }
    }
}

/// A new run of the first fixture's task and configuration stores the same task,
/// configuration, generation 0 and fitness log as the untyped records did.
#[test]
fn a_new_run_stores_generation_zero_as_before() {
    let (old, _old_dir) = old_store();
    let old_id = old_list()[0]["evolution_id"]
        .as_str()
        .expect("id")
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::open(&format!("file://{}", dir.path().display())).expect("store");
    let task = engine::task::Task::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/quartic.toml"),
    )
    .expect("task");
    let config = evolve::EvolveConfig {
        population: 8,
        generations: 2,
        threads: 1,
        ..Default::default()
    };
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    let evo = Evolution::start(sandbox, s.clone(), task, config, vec![]).expect("start");
    let id = evo.id().to_string();
    for key in ["task.json", "config.json", "000000.json"] {
        let before = json(
            old.as_ref(),
            Bucket::Evolution,
            &format!("checkpoints/{old_id}/{key}"),
        );
        let mut after = json(
            s.as_ref(),
            Bucket::Evolution,
            &format!("checkpoints/{id}/{key}"),
        );
        if key == "000000.json" {
            // what differs between two runs: their ids and times
            after["evolution_id"] = before["evolution_id"].clone();
            after["written_at"] = before["written_at"].clone();
        }
        // keys added since (program evolution): each with its default, the old ones as
        // they were
        let added: &[(&str, Value)] = match key {
            "task.json" => &[("fuel_per_case", serde_json::json!(10_000))],
            "config.json" => &[
                ("control_flow", serde_json::json!(true)),
                ("selection", serde_json::json!("tournament")),
                ("downsample", serde_json::json!(0.25)),
                ("quarantine_per_outcome", serde_json::json!(16)),
            ],
            _ => &[],
        };
        for (k, v) in added {
            let obj = after.as_object_mut().expect("an object");
            assert_eq!(obj.remove(*k).as_ref(), Some(v), "{key}: {k}");
        }
        remove_sealing(&mut after, key);
        assert_eq!(before, after, "{key}");
    }
    for prefix in ["generations", "fitness_logs", "safety_snapshots"] {
        let before = json(
            old.as_ref(),
            Bucket::Evolution,
            &format!("{prefix}/{old_id}/000000.json"),
        );
        let mut after = json(
            s.as_ref(),
            Bucket::Evolution,
            &format!("{prefix}/{id}/000000.json"),
        );
        if prefix == "fitness_logs" {
            // added since: the median error, not swayed by the penalties that make the
            // mean 1e27 here
            let median = after
                .as_object_mut()
                .expect("an object")
                .remove("median_error")
                .and_then(|m| m.as_f64())
                .expect("median_error");
            assert!(median < 1e29 && median >= after["best_error"].as_f64().expect("best"));
        }
        remove_sealing(&mut after, prefix);
        if prefix == "generations" {
            // added since: the modules evaluated first in the generation, each
            // member among them
            let evaluated = after
                .as_object_mut()
                .expect("an object")
                .remove("evaluated")
                .expect("evaluated");
            let evaluated: Vec<&str> = evaluated
                .as_array()
                .expect("a list")
                .iter()
                .map(|v| v.as_str().expect("an id"))
                .collect();
            for m in after["population"].as_array().expect("members") {
                let id = m["agent_id"].as_str().expect("id");
                assert!(evaluated.contains(&id), "{id}");
            }
        }
        assert_eq!(before, after, "{prefix}");
    }
}

/// Takes out what issue 16 added to every record: its `checksum` (checked to be one),
/// and a checkpoint's `records` (the digests of the records it commits).
fn remove_sealing(v: &mut Value, what: &str) {
    let obj = v.as_object_mut().expect("an object");
    let sum = obj.remove("checksum").expect("a checksum");
    assert!(
        sum.as_str()
            .is_some_and(|c| c.len() == 71 && c.starts_with("sha256:")),
        "{what}: {sum}"
    );
    if what == "000000.json" {
        let r = obj.remove("records").expect("the committed records");
        for k in ["generation", "fitness_log", "safety_snapshot"] {
            assert!(r[k].as_str().is_some_and(|d| d.len() == 64), "{what}: {r}");
        }
        assert_eq!(r["text"].as_array().map(Vec::len), Some(3), "{what}");
    }
}

/// Issue 16, point 2: every f64 a task or a checkpoint stores reads back with the same
/// bits (serde_json parses floats exactly only with `float_roundtrip`).
#[test]
fn floats_read_back_bit_for_bit() {
    // Spread over every exponent: the bits of a simple generator, finite values only.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut values = Vec::new();
    while values.len() < 20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = f64::from_bits(x);
        if f.is_finite() {
            values.push(f);
        }
    }
    let cases: Vec<String> = values
        .iter()
        .map(|v| format!("{{ args = [{v:?}], expect = {v:?} }}"))
        .collect();
    let task = engine::task::Task::parse(
        &format!(
            "name = \"floats\"\nparams = [\"f64\"]\nresult = \"f64\"\nerror = \"abs\"\nsuccess_threshold = 0.0\ncases = [{}]\n",
            cases.join(", ")
        ),
        false,
    )
    .expect("task");
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::open(&format!("file://{}", dir.path().display())).expect("store");
    let config = evolve::EvolveConfig::for_task(&task);
    let id = Evolution::prepare(s.as_ref(), &task, &config).expect("prepare");
    let back = Evolution::stored(s.as_ref(), &id).expect("stored").task;
    let off: Vec<(u64, u64)> = task
        .cases
        .iter()
        .zip(&back.cases)
        .filter(|(a, b)| a.args[0].bits() != b.args[0].bits())
        .map(|(a, b)| (a.args[0].bits(), b.args[0].bits()))
        .take(5)
        .collect();
    assert!(off.is_empty(), "read back with other bits: {off:x?}");
}

/// Issue 16, point 2: an f64 evolution split and resumed breeds what an uninterrupted
/// one breeds (its stored task and history read back exactly).
#[test]
fn an_f64_evolution_resumed_breeds_what_an_uninterrupted_one_breeds() {
    let task = engine::task::Task::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/quartic.toml"),
    )
    .expect("task");
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    let config = |generations| evolve::EvolveConfig {
        seed: 11,
        population: 60,
        generations,
        threads: 1,
        ..evolve::EvolveConfig::for_task(&task)
    };
    let run = |s: Arc<dyn BlobStore>, generations| {
        let mut e = Evolution::start(
            sandbox.clone(),
            s,
            task.clone(),
            config(generations),
            vec![],
        )
        .expect("start");
        (e.id().to_string(), e.run(|_| {}).expect("run"))
    };
    let whole_dir = tempfile::tempdir().expect("tempdir");
    let whole = store::open(&format!("file://{}", whole_dir.path().display())).expect("store");
    let (_, a) = run(whole, 10);
    let split_dir = tempfile::tempdir().expect("tempdir");
    let split = store::open(&format!("file://{}", split_dir.path().display())).expect("store");
    let (id, first) = run(split.clone(), 4);
    assert_eq!(first.generations, 4);
    let mut resumed =
        Evolution::resume(sandbox.clone(), split, &id, Some(10), Some(1)).expect("resume");
    let b = resumed.run(|_| {}).expect("run");
    assert_eq!(a.generations, b.generations);
    assert_eq!(a.best.agent_id, b.best.agent_id);
    assert_eq!(a.best.train_error.to_bits(), b.best.train_error.to_bits());
    let bits = |h: &[(f64, f64)]| {
        h.iter()
            .map(|(x, y)| (x.to_bits(), y.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&a.history), bits(&b.history));
}

/// Issue 16, point 6: a rollback deletes the state rows of the generations it abandons,
/// so the branch bred after it has its own rows, not the old branch's.
#[test]
fn a_rollback_leaves_no_state_row_of_the_abandoned_branch() {
    let task = engine::task::Task::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/quartic.toml"),
    )
    .expect("task");
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::open(&format!("file://{}", dir.path().display())).expect("store");
    let sandbox = Sandbox::new(Policy::default_policy()).expect("sandbox");
    let config = evolve::EvolveConfig {
        seed: 3,
        population: 30,
        generations: 4,
        threads: 1,
        ..evolve::EvolveConfig::for_task(&task)
    };
    let mut e = Evolution::start(sandbox.clone(), s.clone(), task, config, vec![]).expect("start");
    let id = e.id().to_string();
    assert_eq!(e.run(|_| {}).expect("run").generations, 4);
    let gens = |s: &dyn BlobStore| -> Vec<u32> {
        s.get_states(&id)
            .expect("states")
            .iter()
            .map(|r| r.generation)
            .collect()
    };
    assert_eq!(gens(s.as_ref()), [0, 1, 2, 3, 4]);
    evolve::rollback(s.as_ref(), &id, 1).expect("rollback");
    assert_eq!(gens(s.as_ref()), [0, 1]);
    // the new branch writes its own rows, which name its own best agents
    let mut again = Evolution::resume(sandbox, s.clone(), &id, Some(3), Some(1)).expect("resume");
    again.run(|_| {}).expect("run");
    for row in s.get_states(&id).expect("states") {
        let cp: Checkpoint = serde_json::from_value(json(
            s.as_ref(),
            Bucket::Evolution,
            &format!("checkpoints/{id}/{:06}.json", row.generation),
        ))
        .expect("checkpoint");
        assert_eq!(
            row.best_agent_id, cp.best.agent_id,
            "generation {}",
            row.generation
        );
    }
}
