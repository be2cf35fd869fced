//! Reading stored evolutions: the head, rollback, the list and the fitness logs.

use super::Evolution;
use super::islands::{self, IslandPlan};
use super::publish;
use crate::error::{ErrorKind, Result, from_json, to_json};
use crate::records::{Checkpoint, EvolutionEntry, GenerationStats, Head, Stopped};
use crate::store::{BlobStore, Bucket};
use crate::time::now_rfc3339;
use crate::words::RunStatus;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub(super) fn gen_key(prefix: &str, id: &str, g: u32) -> String {
    format!("{prefix}/{id}/{g:06}.json")
}

pub(super) fn head_key(id: &str) -> String {
    format!("checkpoints/{id}/head.json")
}

pub(super) fn stopped_key(id: &str) -> String {
    format!("checkpoints/{id}/stopped.json")
}

/// The generation an evolution resumes from: `head.json`, or the newest checkpoint.
pub fn head_generation(store: &dyn BlobStore, id: &str) -> Result<u32> {
    // A head that is there must be sound: one that does not parse, or names a
    // generation without its checkpoint, is an integrity error naming it, never a
    // silent fall back to another generation.
    let key = head_key(id);
    if let Some(b) = store.get(Bucket::Evolution, &key)? {
        let head: Head = from_json(&key, &b)?;
        if store
            .get(
                Bucket::Evolution,
                &gen_key("checkpoints", id, head.generation),
            )?
            .is_none()
        {
            return Err(ErrorKind::Corrupt {
                key,
                reason: format!(
                    "names generation {}, whose checkpoint is missing",
                    head.generation
                ),
            }
            .into());
        }
        return Ok(head.generation);
    }
    // No head: a run cut short before its first commit wrote one, so its newest (and
    // only) checkpoint is generation 0. Later checkpoints without a head mean the head
    // was lost: an integrity error, not a guess.
    match checkpoint_generations(store, id)?.last().copied() {
        None => Err(ErrorKind::NotFound(format!("evolution {id}")).into()),
        Some(0) => Ok(0),
        Some(n) => Err(ErrorKind::Corrupt {
            key,
            reason: format!("missing, though generations up to {n} are committed"),
        }
        .into()),
    }
}

/// The generations with a checkpoint (`checkpoints/<id>/<gen>.json`), in order.
fn checkpoint_generations(store: &dyn BlobStore, id: &str) -> Result<Vec<u32>> {
    let prefix = format!("checkpoints/{id}/");
    let mut gens: Vec<u32> = store
        .list(Bucket::Evolution, &prefix)?
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix(".json")?.parse().ok())
        .collect();
    gens.sort();
    Ok(gens)
}

/// Makes generation `g` the head again. Later checkpoints are moved to
/// `checkpoints/<id>/abandoned/<time>/` (nothing is deleted), so the next resume can
/// commit those generations anew.
pub fn rollback(store: &dyn BlobStore, id: &str, g: u32) -> Result<()> {
    crate::store::check_key(id)?;
    let cp_key = gen_key("checkpoints", id, g);
    let Some(cp) = store.get(Bucket::Evolution, &cp_key)? else {
        return Err(ErrorKind::NotFound(format!("generation {g} of {id}")).into());
    };
    // The generation rolled back to must be sound before anything moves: its
    // checkpoint and its population parse (a corrupt one is named, the head kept).
    let target: Checkpoint = from_json(&cp_key, &cp)?;
    let record_key = gen_key("generations", id, g);
    from_json::<crate::records::GenerationRecord>(
        &record_key,
        &publish::read_record(store, id, &target, 0)?,
    )?;
    publish::publish(store, id, &target)?;
    // The head moves by a conditional write: a live run of this evolution, which moves
    // it on from the one it wrote only, then stops at its next commit instead of
    // carrying on from its own head.
    let head = Head {
        generation: g,
        writer: Some(crate::id::random_hex()),
    };
    let attempts = store.settings().update_attempts;
    let mut moved = false;
    for _ in 0..attempts {
        let current = publish::read_head(store, id)?;
        if publish::move_head(store, id, current.as_ref(), &head)?.is_ok() {
            moved = true;
            break;
        }
    }
    if !moved {
        return Err(ErrorKind::Conflict(format!(
            "the head of {id} kept moving: {attempts} attempts to roll it back lost"
        ))
        .into());
    }
    let stamp = now_rfc3339().replace([':', '.'], "-");
    for later in checkpoint_generations(store, id)?
        .into_iter()
        .filter(|n| *n > g)
    {
        let key = gen_key("checkpoints", id, later);
        if let Some(bytes) = store.get(Bucket::Evolution, &key)? {
            store.put(
                Bucket::Evolution,
                &format!("checkpoints/{id}/abandoned/{stamp}/{later:06}.json"),
                &bytes,
            )?;
            store.delete(Bucket::Evolution, &key)?;
        }
        // The state row of an abandoned generation goes too: the branch bred after
        // the rollback writes its own (a state row is created once).
        store.delete_state(id, later)?;
    }
    Ok(())
}

/// Why the last job of an evolution (or of one of its islands) failed:
/// `checkpoints/<id>/failed.json`, `checkpoints/<id>/failed-island-<iii>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobFailure {
    /// The error.
    pub error: String,
    /// The job as it was received.
    pub job: String,
    /// Its deliveries so far.
    pub receive_count: u32,
    /// When it failed.
    pub at: String,
}

fn failure_key(id: &str, island: Option<u32>) -> String {
    match island {
        None => format!("checkpoints/{id}/failed.json"),
        Some(i) => format!("checkpoints/{id}/failed-island-{i:03}.json"),
    }
}

/// Records why a job of evolution `id` (of one of its islands) failed.
pub fn record_failure(
    store: &dyn BlobStore,
    id: &str,
    island: Option<u32>,
    failure: &JobFailure,
) -> Result<()> {
    crate::store::check_key(id)?;
    store.put(
        Bucket::Evolution,
        &failure_key(id, island),
        &to_json("the job failure", failure)?,
    )
}

/// Removes the failure record of a job that has now succeeded.
pub fn clear_failure(store: &dyn BlobStore, id: &str, island: Option<u32>) -> Result<()> {
    crate::store::check_key(id)?;
    store.delete(Bucket::Evolution, &failure_key(id, island))
}

/// The first failure recorded for evolution `id` or its islands.
fn failure(store: &dyn BlobStore, id: &str) -> Result<Option<JobFailure>> {
    for key in store.list(Bucket::Evolution, &format!("checkpoints/{id}/failed"))? {
        if let Some(b) = store.get(Bucket::Evolution, &key)?
            && let Ok(f) = serde_json::from_slice::<JobFailure>(&b)
        {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// The head checkpoint of evolution `id` and whether a stop request ended it there;
/// `None` when it has none that can be read.
fn head_checkpoint(store: &dyn BlobStore, id: &str) -> Result<Option<(u32, Checkpoint, bool)>> {
    let head = match head_generation(store, id) {
        Ok(h) => h,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(b) = store.get(Bucket::Evolution, &gen_key("checkpoints", id, head))? else {
        return Ok(None);
    };
    let cp: Checkpoint = from_json(&gen_key("checkpoints", id, head), &b)?;
    let stopped = store
        .get(Bucket::Evolution, &stopped_key(id))?
        .and_then(|b| serde_json::from_slice::<Stopped>(&b).ok())
        .is_some_and(|s| s.generation == head);
    Ok(Some((head, cp, stopped)))
}

/// One line per evolution in a store: an island evolution is one line (its islands are
/// not listed apart); an evolution submitted to a queue and not started yet is
/// `queued`. Evolutions whose task or head cannot be read are left out.
pub fn list(store: &dyn BlobStore) -> Result<Vec<EvolutionEntry>> {
    let ids = crate::store::evolution_ids(store)?;
    let mut plans: HashMap<String, IslandPlan> = HashMap::new();
    for id in &ids {
        if let Some(p) = islands::plan(store, id)? {
            plans.insert(id.clone(), p);
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let parent = id.rsplit_once(".island-").map(|(p, _)| p);
        if parent.is_some_and(|p| plans.contains_key(p)) {
            continue;
        }
        let failure = failure(store, &id)?;
        let entry = match plans.get(&id) {
            Some(plan) => island_entry(store, &id, plan)?,
            None => single_entry(store, &id)?,
        };
        let mut entry = match (entry, &failure) {
            (Some(e), _) => e,
            // An evolution whose setup does not read shows with the job's error.
            (None, Some(_)) => queued_entry(&id, String::new(), None),
            (None, None) => continue,
        };
        if let Some(f) = failure
            && matches!(entry.status, RunStatus::Running | RunStatus::Queued)
        {
            entry.status = RunStatus::Failed;
            entry.error = Some(f.error);
        }
        out.push(entry);
    }
    Ok(out)
}

/// The line of an evolution no worker has started: no generation, no best yet.
fn queued_entry(id: &str, task: String, islands: Option<u32>) -> EvolutionEntry {
    EvolutionEntry {
        evolution_id: id.to_string(),
        task,
        head_generation: 0,
        best_error: f64::INFINITY,
        status: RunStatus::Queued,
        best_agent_id: None,
        islands,
        error: None,
        quarantined: 0,
        quarantine_withheld: 0,
        proposals: None,
    }
}

/// The line of an evolution of one population.
fn single_entry(store: &dyn BlobStore, id: &str) -> Result<Option<EvolutionEntry>> {
    let Some((head, cp, stopped)) = head_checkpoint(store, id)? else {
        // Submitted, not started: its task is there.
        return Ok(Evolution::stored(store, id)
            .ok()
            .map(|p| queued_entry(id, p.task.name, None)));
    };
    let status = if stopped && cp.status == RunStatus::Running {
        RunStatus::Stopped
    } else {
        cp.status
    };
    Ok(Some(EvolutionEntry {
        evolution_id: id.to_string(),
        task: cp.task,
        head_generation: head,
        best_error: cp.best.train_error,
        status,
        best_agent_id: Some(cp.best.agent_id),
        islands: None,
        error: None,
        quarantined: cp.quarantined,
        quarantine_withheld: cp.quarantine_withheld,
        proposals: cp.proposals,
    }))
}

/// The line of an island evolution: its result once it has ended; until then the
/// lowest head generation of its islands and the best of their heads.
fn island_entry(
    store: &dyn BlobStore,
    id: &str,
    plan: &IslandPlan,
) -> Result<Option<EvolutionEntry>> {
    let Ok(prepared) = Evolution::stored(store, id) else {
        return Ok(None);
    };
    let mut entry = queued_entry(id, prepared.task.name, Some(plan.islands));
    let mut lowest: Option<u32> = None;
    let mut any_stopped = false;
    for i in 0..plan.islands {
        let Some((head, cp, stopped)) = head_checkpoint(store, &islands::island_id(id, i))? else {
            lowest = Some(0);
            continue;
        };
        entry.status = RunStatus::Running;
        lowest = Some(lowest.map_or(head, |l| l.min(head)));
        any_stopped |= stopped;
        entry.quarantined += cp.quarantined;
        entry.quarantine_withheld += cp.quarantine_withheld;
        let better = entry.best_agent_id.as_ref().is_none_or(|a| {
            cp.best
                .train_error
                .total_cmp(&entry.best_error)
                .then_with(|| cp.best.agent_id.cmp(a))
                .is_lt()
        });
        if better {
            entry.best_error = cp.best.train_error;
            entry.best_agent_id = Some(cp.best.agent_id);
        }
    }
    entry.head_generation = lowest.unwrap_or(0);
    if let Some(r) = islands::result(store, id)? {
        entry.head_generation = r.generation;
        entry.best_error = r.best_error;
        entry.best_agent_id = Some(r.best_agent_id);
        entry.status = r.status;
    } else if any_stopped {
        entry.status = RunStatus::Stopped;
    }
    Ok(Some(entry))
}

/// The fitness logs of an evolution up to its head, by generation.
pub fn fitness_logs(store: &dyn BlobStore, id: &str) -> Result<Vec<GenerationStats>> {
    crate::store::check_key(id)?;
    let head = head_generation(store, id)?;
    let mut out = Vec::new();
    for key in store.list(Bucket::Evolution, &format!("fitness_logs/{id}/"))? {
        // Past the head (an abandoned branch's, say): not read at all.
        let past_head = key
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<u32>().ok())
            .is_none_or(|g| g > head);
        if past_head {
            continue;
        }
        if let Some(b) = store.get(Bucket::Evolution, &key)? {
            let stats: GenerationStats = from_json(&key, &b)?;
            if stats.generation <= head {
                out.push(stats);
            }
        }
    }
    out.sort_by_key(|s| s.generation);
    Ok(out)
}
