//! The island model: an evolution of N islands, each an evolution of its own (id
//! `<id>.island-<iii>`, seed [`island_seed`]), run in epochs of K generations. At the
//! end of epoch e, island i writes its M best members as migrants; epoch e + 1 of
//! island i starts by taking in the migrants of island i − 1 (a ring) from epoch e in
//! place of its worst members. An epoch reads only what earlier epochs committed, so
//! the result does not depend on which process runs which epoch, in what order, or how
//! often one is redone.
//!
//! Storage (evolution bucket): `checkpoints/<id>/islands.json` (the plan),
//! `islands/<id>/migrants/<epoch>/<island>.json`, `islands/<id>/solved/<epoch>/<island>.json`
//! (an island reached the success threshold in that epoch),
//! `islands/<id>/enqueued/<epoch>/<island>.json` (that epoch's job was sent) and
//! `islands/<id>/result.json`; state table: one row per island and epoch under
//! `<id>.island-<iii>.epochs`, written with a conditional put: an epoch is committed
//! once its row exists.
//!
//! The evolution ends after the first epoch in which an island solves the task (every
//! island runs that epoch), or after the last epoch; its best agent is the best of the
//! islands' bests at that epoch (lowest train error, then agent id).

use super::stored::head_generation;
use super::{Evolution, EvolveConfig, write_setup};
use crate::error::{ErrorKind, Result, from_json, to_json};
use crate::store::{BlobStore, Bucket, StateItem, check_key};
use crate::task::Task;
use crate::time::now_rfc3339;
use crate::words::RunStatus;
use runtime::Sandbox;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// At most this many islands (their ids have three digits).
pub const MAX_ISLANDS: u32 = 1000;

/// How an island evolution is split: `tdev submit --islands N --epoch-generations K
/// --migrants M`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IslandPlan {
    /// Islands (1–1000).
    pub islands: u32,
    /// Generations per epoch (at least 1).
    pub epoch_generations: u32,
    /// Members each island sends its neighbour after every epoch (at most the
    /// population less its elites).
    pub migrants: u32,
}

impl IslandPlan {
    /// Refuses a plan that cannot run with `config`.
    pub fn check(&self, config: &EvolveConfig) -> Result<()> {
        if !(1..=MAX_ISLANDS).contains(&self.islands) {
            return Err(ErrorKind::Config("between 1 and 1000 islands").into());
        }
        if self.epoch_generations == 0 {
            return Err(ErrorKind::Config("at least 1 generation per epoch").into());
        }
        if self.migrants as usize > config.population.saturating_sub(config.elitism) {
            return Err(
                ErrorKind::Config("no more migrants than the population less its elites").into(),
            );
        }
        Ok(())
    }

    /// The epochs of an evolution of `generations` generations (at least 1).
    pub fn epochs(&self, generations: u32) -> u32 {
        generations.div_ceil(self.epoch_generations).max(1)
    }

    /// The generation an island has reached at the end of `epoch`.
    pub fn limit(&self, epoch: u32, generations: u32) -> u32 {
        epoch
            .saturating_add(1)
            .saturating_mul(self.epoch_generations)
            .min(generations)
    }

    /// The island whose migrants island `island` takes in: its left neighbour on the
    /// ring.
    pub fn source(&self, island: u32) -> u32 {
        (island + self.islands - 1) % self.islands
    }
}

/// The id of island `i` of evolution `id`.
pub fn island_id(id: &str, i: u32) -> String {
    format!("{id}.island-{i:03}")
}

/// The seed of island `i`: the evolution's seed, moved by a different odd step per
/// island.
pub fn island_seed(seed: u64, i: u32) -> u64 {
    seed.wrapping_add(
        u64::from(i)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

fn plan_key(id: &str) -> String {
    format!("checkpoints/{id}/islands.json")
}

fn rows_id(id: &str, i: u32) -> String {
    format!("{}.epochs", island_id(id, i))
}

fn marker_key(id: &str, what: &str, epoch: u32, island: u32) -> String {
    format!("islands/{id}/{what}/{epoch:06}/{island:03}.json")
}

fn result_key(id: &str) -> String {
    format!("islands/{id}/result.json")
}

/// The migrants an island wrote at the end of an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Migrants {
    /// The island that sent them.
    pub island: u32,
    /// The epoch they end.
    pub epoch: u32,
    /// The island's generation then.
    pub generation: u32,
    /// Their modules, in hex, best first.
    pub modules: Vec<String>,
}

/// How an island evolution ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IslandResult {
    /// The evolution.
    pub evolution_id: String,
    /// `solved` or `finished`.
    pub status: RunStatus,
    /// The epoch it ended with.
    pub epoch: u32,
    /// The islands' generation at the end of that epoch.
    pub generation: u32,
    /// The best agent of all islands at that epoch.
    pub best_agent_id: crate::AgentId,
    /// Its train error.
    pub best_error: f64,
    /// The island it comes from.
    pub best_island: u32,
    /// When the result was written.
    pub written_at: String,
}

/// Writes an island evolution's task, configuration and plan, and each island's task
/// and configuration, under a new id, which it returns.
pub fn prepare_islands(
    store: &dyn BlobStore,
    task: &Task,
    config: &EvolveConfig,
    plan: &IslandPlan,
) -> Result<String> {
    plan.check(config)?;
    if !(config.downsample > 0.0 && config.downsample <= 1.0) {
        return Err(ErrorKind::Config("a down-sample share in (0, 1]").into());
    }
    let id = Evolution::prepare(store, task, config)?;
    for i in 0..plan.islands {
        let island = EvolveConfig {
            seed: island_seed(config.seed, i),
            generations: plan.limit(0, config.generations),
            ..config.clone()
        };
        write_setup(store, &island_id(&id, i), task, &island)?;
    }
    // Last: an evolution is an island evolution once its plan is there.
    store.put(
        Bucket::Evolution,
        &plan_key(&id),
        &to_json("the island plan", plan)?,
    )?;
    Ok(id)
}

/// The island plan of evolution `id`, if it is an island evolution.
pub fn plan(store: &dyn BlobStore, id: &str) -> Result<Option<IslandPlan>> {
    let key = plan_key(id);
    store
        .get(Bucket::Evolution, &key)?
        .map(|b| from_json(&key, &b))
        .transpose()
}

/// The result of an island evolution, once it has ended.
pub fn result(store: &dyn BlobStore, id: &str) -> Result<Option<IslandResult>> {
    let key = result_key(id);
    store
        .get(Bucket::Evolution, &key)?
        .map(|b| from_json(&key, &b))
        .transpose()
}

/// The first epoch in which an island solved the task, if one has.
fn solved_epoch(store: &dyn BlobStore, id: &str) -> Result<Option<u32>> {
    let prefix = format!("islands/{id}/solved/");
    Ok(store
        .list(Bucket::Evolution, &prefix)?
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.split('/').next()?.parse().ok())
        .min())
}

/// How a call of [`run_epoch`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum EpochEnd {
    /// The epoch is committed (now, or by an earlier delivery of its job): whether the
    /// island solved the task, and the island's next epoch to run, if any.
    Committed {
        /// The island's best train error at the end of the epoch.
        best_error: f64,
        /// Whether it is at or under the task's success threshold.
        solved: bool,
        /// The epoch to run next, `None` when the island is done.
        next: Option<u32>,
    },
    /// The neighbour's migrants of the previous epoch are not there yet.
    Waiting,
    /// The evolution ended before this epoch: nothing to do.
    Ended,
    /// A stop request ended the run before the epoch was committed.
    Stopped,
}

/// Runs epoch `epoch` of island `island` of evolution `id`, unless it is committed
/// already: resumes the island from its head (starts it for epoch 0), takes in the
/// neighbour's migrants when the head is the epoch's first generation, runs to the
/// epoch's last generation, writes the migrants and commits the epoch's row.
/// `attach` is given the run's stop flag once there is a run to stop.
pub fn run_epoch(
    sandbox: Sandbox,
    store: Arc<dyn BlobStore>,
    id: &str,
    island: u32,
    epoch: u32,
    threads: Option<usize>,
    attach: &dyn Fn(Arc<AtomicBool>),
) -> Result<EpochEnd> {
    check_key(id)?;
    let plan = plan(store.as_ref(), id)?
        .ok_or_else(|| ErrorKind::NotFound(format!("the island plan of {id}")))?;
    let parent = Evolution::stored(store.as_ref(), id)?;
    let total = parent.config.generations;
    if island >= plan.islands || epoch >= plan.epochs(total) {
        return Err(ErrorKind::NotFound(format!("island {island}, epoch {epoch} of {id}")).into());
    }
    let threshold = parent.task.success_threshold;
    let next = |solved: bool, store: &dyn BlobStore| -> Result<Option<u32>> {
        let ended = solved
            || epoch + 1 >= plan.epochs(total)
            || solved_epoch(store, id)?.is_some_and(|s| s <= epoch);
        Ok((!ended).then_some(epoch + 1))
    };
    if solved_epoch(store.as_ref(), id)?.is_some_and(|s| s < epoch) {
        return Ok(EpochEnd::Ended);
    }
    let rows = store.get_states(&rows_id(id, island))?;
    if let Some(row) = rows.iter().find(|r| r.generation == epoch) {
        // Committed by an earlier delivery: what follows the commit is made sure of.
        let solved = row.fitness_score <= threshold;
        if solved {
            mark_solved(store.as_ref(), id, epoch, island)?;
        }
        return Ok(EpochEnd::Committed {
            best_error: row.fitness_score,
            solved,
            next: next(solved, store.as_ref())?,
        });
    }
    // A job of a later epoch (one sent before a rollback) waits for the island's own
    // previous epoch.
    if epoch > 0 && !rows.iter().any(|r| r.generation == epoch - 1) {
        return Ok(EpochEnd::Waiting);
    }
    let migrants = if epoch == 0 {
        Vec::new()
    } else {
        let key = marker_key(id, "migrants", epoch - 1, plan.source(island));
        let Some(bytes) = store.get(Bucket::Evolution, &key)? else {
            return Ok(EpochEnd::Waiting);
        };
        let m: Migrants = from_json(&key, &bytes)?;
        m.modules
            .iter()
            .map(|h| {
                runtime::from_hex(h).ok_or_else(|| {
                    ErrorKind::Corrupt {
                        key: key.clone(),
                        reason: "a migrant is not hex".into(),
                    }
                    .into()
                })
            })
            .collect::<Result<Vec<_>>>()?
    };
    let iid = island_id(id, island);
    let limit = plan.limit(epoch, total);
    let first = epoch.saturating_mul(plan.epoch_generations);
    let mut evo = match head_generation(store.as_ref(), &iid) {
        Ok(_) => Evolution::resume(sandbox, store.clone(), &iid, Some(limit), threads)?,
        Err(e) if epoch == 0 && matches!(e.kind(), ErrorKind::NotFound(_)) => {
            let mut prepared = Evolution::stored(store.as_ref(), &iid)?;
            if let Some(t) = threads {
                prepared.config.threads = t.max(1);
            }
            Evolution::start_prepared(sandbox, store.clone(), prepared, Vec::new())?
        }
        Err(e) => return Err(e),
    };
    if evo.generation() < first {
        return Err(ErrorKind::Conflict(format!(
            "island {island} of {id} is at generation {}, before epoch {epoch} (generation {first})",
            evo.generation()
        ))
        .into());
    }
    if evo.generation() == first && epoch > 0 {
        evo.immigrate(migrants)?;
    }
    attach(evo.stop_flag());
    let summary = evo.run(|_| {})?;
    if summary.stopped {
        return Ok(EpochEnd::Stopped);
    }
    let sent = Migrants {
        island,
        epoch,
        generation: summary.generations,
        modules: evo
            .emigrants(plan.migrants as usize)
            .iter()
            .map(|b| runtime::to_hex(b))
            .collect(),
    };
    // A copy an earlier delivery wrote is the same and is kept.
    store.put_new(
        Bucket::Evolution,
        &marker_key(id, "migrants", epoch, island),
        &to_json("the migrants", &sent)?,
    )?;
    if summary.solved {
        mark_solved(store.as_ref(), id, epoch, island)?;
    }
    let row = StateItem {
        evolution_id: rows_id(id, island),
        generation: epoch,
        timestamp: now_rfc3339(),
        agent_code: summary.best_module.clone(),
        best_agent_id: summary.best.agent_id.clone(),
        fitness_score: summary.best.train_error.min(f64::MAX),
        parent_ids: Vec::new(),
        safety_flags: Vec::new(),
    };
    // The commit; a row a twin wrote first is the same.
    store.put_state(&row)?;
    Ok(EpochEnd::Committed {
        best_error: summary.best.train_error,
        solved: summary.solved,
        next: next(summary.solved, store.as_ref())?,
    })
}

fn mark_solved(store: &dyn BlobStore, id: &str, epoch: u32, island: u32) -> Result<()> {
    store.put_new(
        Bucket::Evolution,
        &marker_key(id, "solved", epoch, island),
        b"{}",
    )?;
    Ok(())
}

/// Sends the job of epoch `epoch` of island `island` through `send`, unless a
/// delivery of the previous epoch's job already did (a marker records it after the
/// send: a crash between the two sends the job twice, and the twin finds the epoch
/// committed).
pub fn enqueue_once(
    store: &dyn BlobStore,
    id: &str,
    island: u32,
    epoch: u32,
    send: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let key = marker_key(id, "enqueued", epoch, island);
    if store.get(Bucket::Evolution, &key)?.is_some() {
        return Ok(());
    }
    send()?;
    store.put(Bucket::Evolution, &key, b"{}")
}

/// The result of island evolution `id` once every island has committed its last
/// epoch (written to `islands/<id>/result.json` by the first caller that sees it), or
/// `None` while islands are still running.
pub fn finish(store: &dyn BlobStore, id: &str) -> Result<Option<IslandResult>> {
    if let Some(r) = result(store, id)? {
        return Ok(Some(r));
    }
    let plan =
        plan(store, id)?.ok_or_else(|| ErrorKind::NotFound(format!("the island plan of {id}")))?;
    let parent = Evolution::stored(store, id)?;
    let total = parent.config.generations;
    let end = solved_epoch(store, id)?.unwrap_or(plan.epochs(total) - 1);
    let mut best: Option<(f64, crate::AgentId, u32)> = None;
    for i in 0..plan.islands {
        let Some(row) = store
            .get_states(&rows_id(id, i))?
            .into_iter()
            .find(|r| r.generation == end)
        else {
            return Ok(None);
        };
        let better = best.as_ref().is_none_or(|(e, a, _)| {
            row.fitness_score
                .total_cmp(e)
                .then_with(|| row.best_agent_id.cmp(a))
                .is_lt()
        });
        if better {
            best = Some((row.fitness_score, row.best_agent_id, i));
        }
    }
    let Some((best_error, best_agent_id, best_island)) = best else {
        return Ok(None);
    };
    let result = IslandResult {
        evolution_id: id.to_string(),
        status: if best_error <= parent.task.success_threshold {
            RunStatus::Solved
        } else {
            RunStatus::Finished
        },
        epoch: end,
        generation: plan.limit(end, total),
        best_agent_id,
        best_error,
        best_island,
        written_at: now_rfc3339(),
    };
    // Two finishers write the same result but for its time: the first one stays.
    if !store.put_new(
        Bucket::Evolution,
        &result_key(id),
        &to_json("the island result", &result)?,
    )? {
        return self::result(store, id);
    }
    Ok(Some(result))
}

/// Rolls island evolution `id` back to the end of the epoch that ends at `generation`
/// (a multiple of the epoch's generations; 0 for the start): every island is rolled
/// back to that generation, and the later epochs' rows, migrants, markers and result
/// are moved under `islands/<id>/abandoned/<time>/` (rows under
/// `<id>.island-<iii>.epochs.abandoned-<time>`), so the next epochs are run and
/// committed anew. Returns the first epoch to run again, `None` when none is left.
///
/// No worker may be running the evolution meanwhile: stop the store first.
pub fn rollback_islands(store: &dyn BlobStore, id: &str, generation: u32) -> Result<Option<u32>> {
    check_key(id)?;
    let plan =
        plan(store, id)?.ok_or_else(|| ErrorKind::NotFound(format!("the island plan of {id}")))?;
    let total = Evolution::stored(store, id)?.config.generations;
    if !generation.is_multiple_of(plan.epoch_generations) || generation > total {
        return Err(ErrorKind::Config(
            "an island evolution rolls back to the end of an epoch: a multiple of its \
             generations per epoch",
        )
        .into());
    }
    let next = generation / plan.epoch_generations;
    // Every island must have the generation before any is moved.
    for i in 0..plan.islands {
        let key = super::stored::gen_key("checkpoints", &island_id(id, i), generation);
        if store.get(Bucket::Evolution, &key)?.is_none() {
            return Err(ErrorKind::NotFound(format!(
                "generation {generation} of island {i} of {id}"
            ))
            .into());
        }
    }
    let stamp = now_rfc3339().replace([':', '.'], "-");
    for i in 0..plan.islands {
        super::stored::rollback(store, &island_id(id, i), generation)?;
        let rows = rows_id(id, i);
        for mut row in store.get_states(&rows)? {
            if row.generation < next {
                continue;
            }
            let epoch = row.generation;
            row.evolution_id = format!("{rows}.abandoned-{stamp}");
            store.put_state(&row)?;
            store.delete_state(&rows, epoch)?;
        }
    }
    let abandon = |key: &str| -> Result<()> {
        if let Some(bytes) = store.get(Bucket::Evolution, key)? {
            let rest = key.trim_start_matches(&format!("islands/{id}/"));
            store.put(
                Bucket::Evolution,
                &format!("islands/{id}/abandoned/{stamp}/{rest}"),
                &bytes,
            )?;
            store.delete(Bucket::Evolution, key)?;
        }
        Ok(())
    };
    for what in ["migrants", "solved", "enqueued"] {
        let prefix = format!("islands/{id}/{what}/");
        for key in store.list(Bucket::Evolution, &prefix)? {
            let epoch: Option<u32> = key
                .strip_prefix(&prefix)
                .and_then(|r| r.split('/').next())
                .and_then(|e| e.parse().ok());
            if epoch.is_some_and(|e| e >= next) {
                abandon(&key)?;
            }
        }
    }
    abandon(&result_key(id))?;
    Ok((next < plan.epochs(total)).then_some(next))
}
