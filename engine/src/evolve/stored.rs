//! Reading stored evolutions: the head, rollback, the list and the fitness logs.

use crate::error::{ErrorKind, Result, from_json, to_json};
use crate::records::{Checkpoint, EvolutionEntry, GenerationStats, Head, Stopped};
use crate::store::{BlobStore, Bucket};
use crate::time::now_rfc3339;
use crate::words::RunStatus;

pub(super) fn gen_key(prefix: &str, id: &str, g: u32) -> String {
    format!("{prefix}/{id}/{g:06}.json")
}

fn head_key(id: &str) -> String {
    format!("checkpoints/{id}/head.json")
}

pub(super) fn stopped_key(id: &str) -> String {
    format!("checkpoints/{id}/stopped.json")
}

/// The generation an evolution resumes from: `head.json`, or the newest checkpoint.
pub fn head_generation(store: &dyn BlobStore, id: &str) -> Result<u32> {
    if let Some(b) = store.get(Bucket::Evolution, &head_key(id))?
        && let Ok(head) = serde_json::from_slice::<Head>(&b)
        && store
            .get(
                Bucket::Evolution,
                &gen_key("checkpoints", id, head.generation),
            )?
            .is_some()
    {
        return Ok(head.generation);
    }
    checkpoint_generations(store, id)?
        .last()
        .copied()
        .ok_or_else(|| ErrorKind::NotFound(format!("evolution {id}")).into())
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
    if store
        .get(Bucket::Evolution, &gen_key("checkpoints", id, g))?
        .is_none()
    {
        return Err(ErrorKind::NotFound(format!("generation {g} of {id}")).into());
    }
    write_head(store, id, g)?;
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
    }
    Ok(())
}

/// One line per evolution in a store (evolutions whose head cannot be read are left
/// out).
pub fn list(store: &dyn BlobStore) -> Result<Vec<EvolutionEntry>> {
    let mut out = Vec::new();
    for id in crate::store::evolution_ids(store)? {
        let Ok(head) = head_generation(store, &id) else {
            continue;
        };
        let Some(b) = store.get(Bucket::Evolution, &gen_key("checkpoints", &id, head))? else {
            continue;
        };
        let Ok(cp) = serde_json::from_slice::<Checkpoint>(&b) else {
            continue;
        };
        let stopped_at_head = store
            .get(Bucket::Evolution, &stopped_key(&id))?
            .and_then(|b| serde_json::from_slice::<Stopped>(&b).ok())
            .is_some_and(|s| s.generation == head);
        let status = if stopped_at_head && cp.status == RunStatus::Running {
            RunStatus::Stopped
        } else {
            cp.status
        };
        out.push(EvolutionEntry {
            evolution_id: id,
            task: cp.task,
            head_generation: head,
            best_error: cp.best.train_error,
            status,
            quarantined: cp.quarantined,
            quarantine_withheld: cp.quarantine_withheld,
        });
    }
    Ok(out)
}

/// The fitness logs of an evolution up to its head, by generation.
pub fn fitness_logs(store: &dyn BlobStore, id: &str) -> Result<Vec<GenerationStats>> {
    crate::store::check_key(id)?;
    let head = head_generation(store, id)?;
    let mut out = Vec::new();
    for key in store.list(Bucket::Evolution, &format!("fitness_logs/{id}/"))? {
        if !key.ends_with(".json") {
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

/// Writes `checkpoints/<id>/head.json` naming generation `g`.
pub(super) fn write_head(store: &dyn BlobStore, id: &str, g: u32) -> Result<()> {
    store.put(
        Bucket::Evolution,
        &head_key(id),
        &to_json("the head", &Head { generation: g })?,
    )
}
