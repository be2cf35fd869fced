//! Commits: a generation's records, written with the checkpoint last.

use super::Tally;
use super::population::{Eval, Individual, Score};
use super::publish;
use super::score::{CaseEnd, case_end};
use super::stored::gen_key;
use crate::error::{ErrorKind, Result, from_json, to_json, to_sealed_json};
use crate::id::AgentId;
use crate::quarantine::source_key;
use crate::records::{
    Best, Checkpoint, GenerationRecord, GenerationStats, Head, Member, Metadata, Performance,
    SafetySnapshot,
};
use crate::rng::Rng;
use crate::store::{BlobStore, Bucket};
use crate::task::Task;
use crate::time::now_rfc3339;
use crate::words::{Cull, RunStatus, SafetyFlag};
use runtime::{Admission, Input, Outcome, Sandbox};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A generation to store, with everything its records are made of.
pub(super) struct Commit {
    pub(super) generation: u32,
    pub(super) stats: GenerationStats,
    pub(super) best: Individual,
    pub(super) solved: bool,
    pub(super) generations: u32,
    pub(super) rng: Rng,
    pub(super) culled: BTreeMap<Cull, u64>,
    pub(super) history: Vec<(f64, f64)>,
    pub(super) id: String,
    pub(super) population: Vec<Individual>,
    pub(super) tally: Tally,
    pub(super) sandbox: Sandbox,
    pub(super) store: Arc<dyn BlobStore>,
    pub(super) task: Task,
    /// The members a proposer offered, with its origin word.
    pub(super) proposed: BTreeMap<AgentId, String>,
    /// What became of proposals so far, with a proposer.
    pub(super) proposals: Option<super::ProposalStats>,
    /// The head as this run last read or wrote it: the head moves on from it only.
    pub(super) head: Option<Head>,
    /// The modules first evaluated in this generation.
    pub(super) evaluated: Vec<AgentId>,
}

/// The anomaly flags of a generation: a trap rate over 50%, a mean size over 80% of
/// the module cap, a best error below 1% of the previous generation's.
pub(super) fn safety_flags(
    trap_rate: f64,
    mean_size: f64,
    cap: u64,
    prev: Option<f64>,
    best: f64,
) -> Vec<SafetyFlag> {
    let mut flags = Vec::new();
    if trap_rate > 0.5 {
        flags.push(SafetyFlag::TrapRateSpike);
    }
    if mean_size > 0.8 * cap as f64 {
        flags.push(SafetyFlag::SizeBloat);
    }
    if let Some(p) = prev
        && p.is_finite()
        && p > 0.0
        && best < p * 0.01
    {
        flags.push(SafetyFlag::SuddenFitnessJump);
    }
    flags
}

/// Stores the best module of a generation under `source/`, with its metadata and what
/// it costs in the sandbox, unless it is stored already.
fn write_best(c: &Commit) -> Result<()> {
    let best = &c.best;
    let key = source_key(&best.id);
    if c.store.get(Bucket::Agents, &key)?.as_deref() == Some(best.bytes.as_slice()) {
        return Ok(());
    }
    c.store.put(Bucket::Agents, &key, &best.bytes)?;
    let verdict = c.sandbox.validate(&best.bytes);
    let meta = Metadata {
        agent_id: best.id.clone(),
        parents: best.parents.clone(),
        admitted: verdict.admitted,
        safety_score: verdict.safety_score,
        findings: verdict
            .findings
            .iter()
            .map(|f| f.kind.to_string())
            .collect(),
        size_bytes: best.bytes.len(),
        evolution_id: c.id.clone(),
        generation: c.generation,
        train_error: best.train_error(),
        created_at: now_rfc3339(),
    };
    c.store.put(
        Bucket::Agents,
        &metadata_key(&best.id),
        &to_json("the metadata", &meta)?,
    )?;
    if let Some(perf) = performance(c) {
        // The sandbox confirms the reported best: a module screened by the
        // interpreter must score the same when compiled and run, cases out of their
        // budget included. (A confirmation run cut by the wall clock on a loaded
        // machine proves nothing either way.)
        let answered = perf.train_error.is_finite() || !best.train_error().is_finite();
        if answered && perf.train_error.to_bits() != best.train_error().to_bits() {
            return Err(ErrorKind::Unconfirmed {
                agent_id: best.id.clone(),
                sandbox: perf.train_error,
                evaluated: best.train_error(),
            }
            .into());
        }
        c.store.put(
            Bucket::Agents,
            &performance_key(&best.id),
            &to_json("the performance record", &perf)?,
        )?;
    }
    Ok(())
}

/// The key of a module's metadata in the agents bucket.
pub fn metadata_key(id: &AgentId) -> String {
    format!("metadata/{}.json", id.hex())
}

/// The key of a module's performance record in the agents bucket.
pub fn performance_key(id: &AgentId) -> String {
    format!("performance/{}.json", id.hex())
}

/// Writes a generation: the checkpoint, carrying the generation's records (the commit:
/// one process only creates it), then the records under their keys, the state row and
/// the head, moved on from the one this run knows only. A crash at any point leaves the
/// previous generation the head; one after the checkpoint leaves a commit the next
/// resume finishes from the checkpoint. Answers the head written.
pub(super) fn write_generation(c: Commit) -> Result<Head> {
    let g = c.generation;
    let stats = &c.stats;
    // The population's modules travel in the generation record (one object per
    // generation); the best module is also kept under `source/<hex>`.
    write_best(&c)?;
    let best = &c.best;
    let record = GenerationRecord {
        generation: g,
        population: c
            .population
            .iter()
            .map(|i| Member {
                agent_id: i.id.clone(),
                train_error: match &i.eval {
                    Eval::Scored(s) => Some(s.mean),
                    _ => None,
                },
                size_bytes: i.bytes.len(),
                parents: i.parents.clone(),
                module_hex: runtime::to_hex(&i.bytes),
                proposed_by: c.proposed.get(&i.id).cloned(),
            })
            .collect(),
        evaluated: c.evaluated.clone(),
    };
    let generation_bytes = to_sealed_json("the generation", &record)?;
    let log_bytes = to_sealed_json("the fitness log", stats)?;
    let prev = c.history.len().checked_sub(2).map(|i| c.history[i].0);
    // Running out of the task's budget per case is a wrong answer, not a trap of the
    // policy's: it does not count towards the trap rate.
    let policy_fuel = c.sandbox.policy().limits.fuel_per_call;
    let budgeted = c.task.case_fuel(policy_fuel) < policy_fuel;
    let culled: u64 = stats
        .culled
        .iter()
        .filter(|(k, _)| !(budgeted && **k == Cull::Trap(Outcome::OutOfFuel)))
        .map(|(_, v)| v)
        .sum();
    let evaluated = culled + c.population.len() as u64;
    let trap_rate = culled as f64 / evaluated.max(1) as f64;
    let flags = safety_flags(
        trap_rate,
        stats.mean_size,
        c.sandbox.policy().limits.module_bytes,
        prev,
        stats.best_error,
    );
    let snapshot = SafetySnapshot {
        generation: g,
        trap_rate,
        mean_size: stats.mean_size,
        quarantined_total: c.tally.quarantined,
        flags: flags.clone(),
    };
    // The records travel in the checkpoint: a commit that loses the checkpoint below
    // has written nothing another process reads.
    let records = publish::committed([
        generation_bytes,
        log_bytes,
        to_sealed_json("the safety snapshot", &snapshot)?,
    ])?;
    let writer = crate::id::random_hex();
    let cp = Checkpoint {
        evolution_id: c.id.clone(),
        generation: g,
        task: c.task.name.clone(),
        rng: c.rng,
        population: c
            .population
            .iter()
            .map(|i| (i.id.clone(), i.parents.clone()))
            .collect(),
        evaluations: c.tally.evaluations,
        culled: c.culled,
        quarantined: c.tally.quarantined,
        quarantine_withheld: c.tally.quarantine_withheld,
        produced: c.tally.produced,
        invalid: c.tally.invalid,
        best: Best {
            agent_id: best.id.clone(),
            train_error: best.train_error(),
            test_error: None,
            size_bytes: best.bytes.len(),
        },
        proposals: c.proposals,
        records: Some(records),
        status: if c.solved {
            RunStatus::Solved
        } else if g >= c.generations {
            RunStatus::Finished
        } else {
            RunStatus::Running
        },
        history: c.history,
        written_at: now_rfc3339(),
    };
    // The checkpoint commits the generation, only if no other process committed
    // it: a repeat of the same commit (a retry, or a twin resuming the same
    // deterministic run) is accepted, anything else is a conflict.
    let cp_key = gen_key("checkpoints", &c.id, g);
    let cp_bytes = to_sealed_json("the checkpoint", &cp)?;
    // (A checkpoint gone between the failed create and the read, moved away by a run
    // that lost its head, is created again: twice at most.)
    let mut committed = None;
    for _ in 0..2 {
        if c.store.put_new(Bucket::Evolution, &cp_key, &cp_bytes)? {
            committed = Some((cp.clone(), cp_bytes.clone(), true));
            break;
        }
        let Some(b) = c.store.get(Bucket::Evolution, &cp_key)? else {
            continue;
        };
        let e: Checkpoint = from_json(&cp_key, &b)?;
        if e.rng == cp.rng && e.population == cp.population {
            committed = Some((e, b, false));
            break;
        }
        return Err(ErrorKind::Conflict(format!(
            "generation {g} of {} was committed by another process",
            c.id
        ))
        .into());
    }
    let Some((committed, committed_bytes, created)) = committed else {
        return Err(ErrorKind::Conflict(format!(
            "generation {g} of {} is being committed and abandoned by other processes",
            c.id
        ))
        .into());
    };
    // The records go under their keys: this commit's, or (the same commit, made
    // before by a process that stopped short) that checkpoint's own.
    publish::publish(c.store.as_ref(), &c.id, &committed)?;
    let item = crate::store::StateItem {
        evolution_id: c.id.clone(),
        generation: g,
        timestamp: committed.written_at.clone(),
        agent_code: best.bytes.to_vec(),
        best_agent_id: best.id.clone(),
        fitness_score: best.train_error().min(f64::MAX),
        parent_ids: best.parents.clone(),
        safety_flags: flags,
    };
    // The state row follows the checkpoint; an existing row (a retry) is kept.
    c.store.put_state(&item)?;
    let head = Head {
        generation: g,
        writer: Some(writer),
    };
    match publish::move_head(c.store.as_ref(), &c.id, c.head.as_ref(), &head)? {
        Ok(()) => {
            if !created {
                // An adopted checkpoint may have been moved away meanwhile by the run
                // that created it and lost its head: put back.
                c.store
                    .put_new(Bucket::Evolution, &cp_key, &committed_bytes)?;
                c.store.put_state(&item)?;
            }
            Ok(head)
        }
        Err(current) => {
            // Someone moved the head since this run read or wrote it: a rollback, or
            // another run of this evolution. This run stops; a checkpoint it wrote past
            // a rollback's head is moved away with the ones the rollback moved.
            let now = current.as_ref().map(|h| h.generation);
            if created && now.is_none_or(|h| h < g) {
                let stamp = now_rfc3339().replace([':', '.'], "-");
                publish::abandon(c.store.as_ref(), &c.id, g, &stamp, &cp_bytes, &item)?;
            }
            Err(ErrorKind::Conflict(match now {
                Some(h) if h < g => format!(
                    "evolution {} was rolled back to generation {h} while this run \
                     committed generation {g}; this run stops (resume it to go on from \
                     generation {h})",
                    c.id
                ),
                Some(h) => format!(
                    "another process is running evolution {} (its head is at generation \
                     {h}); this run stops",
                    c.id
                ),
                None => format!(
                    "the head of evolution {} was deleted while this run committed \
                     generation {g}; this run stops",
                    c.id
                ),
            })
            .into())
        }
    }
}

/// What running the best agent of a commit on every training case costs: fuel and wall
/// time per case (total and largest), with the outcomes. `None` when it is not
/// admitted or a run fails.
fn performance(c: &Commit) -> Option<Performance> {
    let (sandbox, task) = (&c.sandbox, &c.task);
    let agent = match sandbox.admit(&c.best.bytes, false) {
        Ok(Admission::Admitted(a)) => a,
        _ => return None,
    };
    let (mut fuel, mut fuel_max, mut wall, mut wall_max) = (0u64, 0u64, 0u64, 0u64);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let policy_fuel = sandbox.policy().limits.fuel_per_call;
    let budget = task.case_fuel(policy_fuel);
    // The errors as scoring computes them (a case out of its budget: the worst error);
    // `None` once a case trapped.
    let mut errors = Some(Vec::with_capacity(task.cases.len()));
    for case in &task.cases {
        let r = sandbox
            .run_with_fuel(&agent, Input::Typed(case.args.clone()), budget)
            .ok()?;
        let end = case_end(
            task,
            case.expect,
            r.outcome,
            r.result,
            None,
            budget,
            policy_fuel,
        );
        match (end, errors.as_mut()) {
            (CaseEnd::Error(e, _), Some(v)) => v.push(e),
            _ => errors = None,
        }
        let us = r.wall.as_micros() as u64;
        fuel = fuel.saturating_add(r.fuel_used);
        fuel_max = fuel_max.max(r.fuel_used);
        wall = wall.saturating_add(us);
        wall_max = wall_max.max(us);
        *outcomes.entry(r.outcome.to_string()).or_default() += 1;
    }
    Some(Performance {
        cases: task.cases.len(),
        fuel_used_total: fuel,
        fuel_used_max: fuel_max,
        wall_us_total: wall,
        wall_us_max: wall_max,
        outcomes,
        train_error: errors.map_or(f64::INFINITY, |e| Score::of(e, 0).mean),
        fuel_per_call: sandbox.policy().limits.fuel_per_call,
        measured_at: now_rfc3339(),
        agent_id: c.best.id.clone(),
        evolution_id: c.id.clone(),
        generation: c.generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_flags_at_their_thresholds() {
        let cap = 1000;
        assert!(safety_flags(0.5, 800.0, cap, Some(1.0), 0.01).is_empty());
        assert_eq!(
            safety_flags(0.51, 800.1, cap, Some(1.0), 0.0099),
            [
                SafetyFlag::TrapRateSpike,
                SafetyFlag::SizeBloat,
                SafetyFlag::SuddenFitnessJump
            ]
        );
        // no jump from an unscored, zero or first generation
        assert!(safety_flags(0.0, 0.0, cap, Some(f64::INFINITY), 0.0).is_empty());
        assert!(safety_flags(0.0, 0.0, cap, Some(0.0), 0.0).is_empty());
        assert!(safety_flags(0.0, 0.0, cap, None, 0.0).is_empty());
    }
}
