//! Scoring: the pool of scoring threads, the screening interpreter, the sandbox.

use super::population::{Eval, Individual, Score, best_of};
use super::{Evolution, GenerationStats};
use crate::error::{ErrorKind, Result, panic_message};
use crate::genome::{Genome, Ty};
use crate::id::AgentId;
use crate::interp::{Answer, Plan, Scratch};
use crate::quarantine::{Origin, RunInput, Sighting, TrapEvent};
use crate::task::Task;
use crate::words::Cull;
use rayon::prelude::*;
use runtime::{Admission, Input, Outcome, RunResult, Sandbox};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Evolution {
    /// Scores individuals in parallel (duplicates once, cached by id); the result does
    /// not depend on the number of threads.
    /// `items[offspring_from..]` are new offspring, counted for the valid share.
    pub(super) fn evaluate_all(
        &mut self,
        items: Vec<(Vec<u8>, Vec<AgentId>)>,
        offspring_from: usize,
    ) -> Result<(Vec<Individual>, GenerationStats)> {
        let ids: Vec<AgentId> = items.iter().map(|(b, _)| AgentId::of(b)).collect();
        let mut todo: Vec<usize> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            if !self.cache.contains_key(id) && seen.insert(id.clone()) {
                todo.push(i);
            }
        }
        // Genomes of freshly bred offspring, when they line up with the items.
        let mut genomes = std::mem::take(&mut self.bred);
        if genomes.len() != items.len() {
            genomes.clear();
        }
        let results: Vec<Scored> = {
            let sandbox = &self.sandbox;
            let task = &self.task;
            let items = &items;
            let genomes = &genomes;
            let stop = &self.stop;
            let ids = &ids;
            score_all(
                &self.pool,
                &todo,
                |i| format!("scoring module {}", ids[i]),
                |i| {
                    if stop.load(Ordering::SeqCst) {
                        return (i, Eval::Culled(Outcome::EmergencyStop), None);
                    }
                    let g = genomes.get(i).and_then(|g| g.as_deref());
                    let (e, trap) = evaluate(sandbox, task, &items[i].0, g);
                    (i, e, trap)
                },
            )?
        };
        // What a quarantine record of this generation's modules says of where they came from.
        // The generation these items make (the first, or the next after the head).
        let generation = self.generation + u32::from(!self.population.is_empty());
        let origin = Origin::evolution(&self.id, generation);
        // A proposer's candidate is its proposer's, bred in this evolution.
        let marks: std::collections::HashMap<AgentId, String> = ids
            .iter()
            .filter_map(|id| self.proposed_by(id).map(|w| (id.clone(), w)))
            .collect();
        let origin_of = |id: &AgentId| match marks.get(id) {
            Some(w) => Origin::proposer(w, &self.id, generation),
            None => origin.clone(),
        };
        let mut culled_now: BTreeMap<Cull, u64> = BTreeMap::new();
        let mut due_now: BTreeMap<Cull, u64> = BTreeMap::new();
        let mut withheld_now: BTreeMap<Cull, u64> = BTreeMap::new();
        let mut quarantined_now = 0u64;
        for (i, e, trap) in results {
            // A module this evolution evaluated before a resume is scored again (the
            // cache did not survive the process) but not counted or quarantined again:
            // the counts stay those of an uninterrupted run.
            if self.seen.contains(&ids[i]) {
                self.cache.insert(ids[i].clone(), e);
                continue;
            }
            self.evaluated_now.push(ids[i].clone());
            self.tally.evaluations += 1;
            match &e {
                Eval::Culled(o) => *culled_now.entry(Cull::Trap(*o)).or_default() += 1,
                Eval::Rejected => *culled_now.entry(Cull::Rejected).or_default() += 1,
                // Out of the task's budget on some case: a wrong answer, counted
                // under its outcome word, not a safety event.
                Eval::Scored(sc) if sc.exhausted > 0 => {
                    *culled_now
                        .entry(Cull::Trap(Outcome::OutOfFuel))
                        .or_default() += 1
                }
                Eval::Scored(_) => {}
            }
            let (bytes, parents) = &items[i];
            // What the policy itself stops is quarantined: the rejected, and a trap
            // of a limit whose weight takes the safety score below the minimum.
            let due: Option<(Cull, runtime::Verdict, f64, Option<TrapEvent>)> = match (&e, trap) {
                (Eval::Rejected, _) => {
                    let v = self.sandbox.validate(bytes);
                    let score = v.safety_score;
                    Some((Cull::Rejected, v, score, None))
                }
                // Typed input: no input size to blame an output limit on.
                (Eval::Culled(o), Some((_, msg, args)))
                    if o.is_limit()
                        && self.sandbox.policy().quarantine.may_quarantine(*o, 0, 1) =>
                {
                    let v = self.sandbox.validate(bytes);
                    let policy = self.sandbox.policy();
                    let score = runtime::safety_score(
                        v.findings
                            .iter()
                            .map(|f| f.weight)
                            .chain([policy.trap_weights.for_outcome(*o)]),
                    );
                    (score < policy.min_safety_score).then(|| {
                        let event = TrapEvent::new(*o, msg, 0, 0)
                            .with_input(RunInput::of(
                                &Input::Typed(args),
                                policy.quarantine.keep_input_bytes,
                            ))
                            .with_origin(&origin_of(&ids[i]));
                        (Cull::Trap(*o), v, score, Some(event))
                    })
                }
                _ => None,
            };
            if let Some((word, v, score, event)) = due {
                // At most `quarantine_per_outcome` records per outcome word and
                // generation are written, so a generation of endless loops stays
                // reviewable (and fast); every one is counted.
                let n = due_now.entry(word).or_default();
                *n += 1;
                if *n <= u64::from(self.config.quarantine_per_outcome) {
                    // A quarantine record that cannot be written stops the evolution:
                    // nothing it should keep is lost silently.
                    self.quarantine.quarantine(
                        &Sighting {
                            bytes,
                            verdict: &v,
                            safety_score: score,
                            policy: self.sandbox.policy(),
                            parents,
                            origin: &origin_of(&ids[i]),
                        },
                        event,
                    )?;
                    self.tally.quarantined += 1;
                    quarantined_now += 1;
                } else {
                    *withheld_now.entry(word).or_default() += 1;
                    self.tally.quarantine_withheld += 1;
                }
            }
            self.cache.insert(ids[i].clone(), e);
        }
        for (k, v) in &culled_now {
            *self.culled.entry(*k).or_default() += v;
        }
        self.tally.invalid += ids[offspring_from.min(ids.len())..]
            .iter()
            .filter(|id| matches!(self.cache.get(*id), Some(Eval::Rejected) | None))
            .count() as u64;
        let pop: Vec<Individual> = items
            .into_iter()
            .zip(ids)
            .map(|((bytes, parents), id)| Individual {
                eval: self.cache.get(&id).cloned().unwrap_or(Eval::Rejected),
                bytes: Arc::new(bytes),
                id,
                parents,
            })
            .collect();
        // Survivors only: culled individuals do not enter the population unless
        // nothing else is left.
        let scored: Vec<Individual> = pop
            .iter()
            .filter(|i| matches!(i.eval, Eval::Scored(_)))
            .cloned()
            .collect();
        let pop = if scored.is_empty() { pop } else { scored };
        // Errors of 1e30 stand for NaN or infinite results: left out of the mean.
        let errors: Vec<f64> = pop
            .iter()
            .map(|i| i.train_error())
            .filter(|e| *e < 1e29)
            .collect();
        let mean_error = if errors.is_empty() {
            f64::INFINITY
        } else {
            errors.iter().sum::<f64>() / errors.len() as f64
        };
        let median_error = {
            let mut sorted = errors.clone();
            sorted.sort_by(f64::total_cmp);
            match sorted.len() {
                0 => None,
                n if n % 2 == 1 => Some(sorted[n / 2]),
                n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
            }
        };
        let mean_size =
            pop.iter().map(|i| i.bytes.len() as f64).sum::<f64>() / pop.len().max(1) as f64;
        let best = best_of(&pop, self.config.parsimony)
            .ok_or(ErrorKind::Config("a population of none"))?;
        let stats = GenerationStats {
            generation,
            best_error: best.train_error(),
            mean_error,
            median_error,
            best_id: best.id.clone(),
            best_size: best.bytes.len(),
            evaluations: self.tally.evaluations,
            produced: self.tally.produced,
            valid: self.tally.produced - self.tally.invalid.min(self.tally.produced),
            culled: culled_now,
            mean_size,
            quarantine_withheld: withheld_now,
            quarantined: quarantined_now,
            proposals: None,
        };
        Ok((pop, stats))
    }
}

/// An evaluation of item `.0`, with the trap that culled it.
type Scored = (usize, Eval, Option<CaseTrap>);

/// A case that trapped: the outcome, the trap's message, the case's arguments.
pub(super) type CaseTrap = (Outcome, String, Vec<runtime::Value>);

/// Room a scoring thread keeps beyond what the sandbox asks for running agents:
/// compiling modules and the screening interpreter run on the same thread.
pub(super) const COMPILE_STACK_MARGIN: usize = 16 << 20;

/// The stack of a thread that runs agents in `sandbox`: what the sandbox needs for the
/// policy's Wasm stack and the host's frames (`Sandbox::thread_stack_bytes`) plus
/// [`COMPILE_STACK_MARGIN`], so no Wasm stack the policy allows can overflow it.
pub(super) fn agent_thread_stack_bytes(sandbox: &Sandbox) -> usize {
    sandbox
        .thread_stack_bytes()
        .saturating_add(COMPILE_STACK_MARGIN)
}

/// The pool of scoring threads: `threads` of them (at least one), named
/// `tdev-score-<n>`, each with the stack of [`agent_thread_stack_bytes`].
pub(super) fn scoring_pool(threads: usize, sandbox: &Sandbox) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|n| format!("tdev-score-{n}"))
        .stack_size(agent_thread_stack_bytes(sandbox))
        .build()
        .map(Arc::new)
        .map_err(|e| ErrorKind::ThreadPool(e).into())
}

/// Runs `work` on every index of `todo` on the threads of `pool`; the results come
/// back in the order of `todo`, whatever the threads. A panic in `work` is an error
/// naming the thread and `doing` of the index it was at: no result is ever made up for
/// lost work.
pub(super) fn score_all<T: Send>(
    pool: &rayon::ThreadPool,
    todo: &[usize],
    doing: impl Fn(usize) -> String + Sync,
    work: impl Fn(usize) -> T + Sync,
) -> Result<Vec<T>> {
    pool.install(|| {
        todo.par_iter()
            .map(|&i| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(i))).map_err(|p| {
                    ErrorKind::ThreadPanicked {
                        thread: std::thread::current()
                            .name()
                            .unwrap_or("a scoring thread")
                            .to_string(),
                        doing: doing(i),
                        message: panic_message(p.as_ref()),
                    }
                    .into()
                })
            })
            .collect()
    })
}

/// Evaluates one module on the training cases.
fn evaluate(
    sandbox: &Sandbox,
    task: &Task,
    bytes: &[u8],
    genome: Option<&Genome>,
) -> (Eval, Option<CaseTrap>) {
    match score_cases(sandbox, task, bytes, genome, false) {
        Ok(e) => (Eval::Scored(e), None),
        Err(Some((o, m, args))) => (Eval::Culled(o), Some((o, m, args))),
        Err(None) => (Eval::Rejected, None),
    }
}

/// The interpreter's plan for a module, when it can answer for the sandbox and the
/// module has the task's signature.
fn interpretable(
    sandbox: &Sandbox,
    task: &Task,
    bytes: &[u8],
    genome: Option<&Genome>,
) -> Option<Plan> {
    let decoded;
    let g = match genome {
        Some(g) => {
            // `bytes` is this genome's encoding: it decodes back to the same body.
            debug_assert_eq!(
                Genome::decode(bytes).map(|d| d.ops),
                Some(g.ops.clone()),
                "a bred genome and its bytes disagree"
            );
            g
        }
        None => {
            decoded = Genome::decode(bytes)?;
            &decoded
        }
    };
    let same_sig = g.params.len() == task.params.len()
        && g.params
            .iter()
            .zip(&task.params)
            .all(|(a, b)| *a == Ty::from(*b))
        && g.result == Ty::from(task.result);
    if !same_sig {
        return None;
    }
    Plan::new(g, sandbox.policy())
}

/// How one case ended: its error, whether it ran out of the task's budget, or the trap
/// that culls the module.
pub(super) enum CaseEnd {
    /// Answered (or ran out of the budget: the worst error).
    Error(f64, bool),
    /// Trapped.
    Trap(Outcome, String),
}

/// The end of one case from a sandbox report run with `fuel` (the task's budget cut to
/// the policy's): running out of a budget smaller than the policy's fuel is a wrong
/// answer, not a trap.
pub(super) fn case_end(
    task: &Task,
    expect: runtime::Value,
    outcome: Outcome,
    result: Option<RunResult>,
    message: Option<String>,
    fuel: u64,
    policy_fuel: u64,
) -> CaseEnd {
    match (outcome, result) {
        (Outcome::Ok, Some(RunResult::Value(v))) => CaseEnd::Error(task.error(v, expect), false),
        (Outcome::OutOfFuel, _) if fuel < policy_fuel => CaseEnd::Error(task.worst_error(), true),
        (o, _) => CaseEnd::Trap(o, message.unwrap_or_default()),
    }
}

/// The errors on the train (or test) cases; `Err(Some(trap))` when a case trapped,
/// `Err(None)` when the module is not admitted. `genome` is the module's decoded form
/// when the caller has it (`bytes` is its encoding). Each case may spend the task's
/// fuel budget; a case that runs out of it gets the task's worst error.
pub(super) fn score_cases(
    sandbox: &Sandbox,
    task: &Task,
    bytes: &[u8],
    genome: Option<&Genome>,
    test: bool,
) -> std::result::Result<Score, Option<CaseTrap>> {
    let cases = if test { &task.test_cases } else { &task.cases };
    let policy_fuel = sandbox.policy().limits.fuel_per_call;
    let fuel = task.case_fuel(policy_fuel);
    let mut errors = Vec::with_capacity(cases.len());
    let mut exhausted = 0u32;
    let mut take = |end: CaseEnd, args: &[runtime::Value]| match end {
        CaseEnd::Error(e, out) => {
            errors.push(e);
            exhausted += u32::from(out);
            Ok(())
        }
        CaseEnd::Trap(o, m) => Err(Some((o, m, args.to_vec()))),
    };
    // Screening without compiling: a pure genome of the task's signature is
    // interpreted, with the sandbox's answers (see `interp`), once the policy has
    // admitted it. Anything else is compiled and run in the sandbox.
    if let Some(plan) = interpretable(sandbox, task, bytes, genome) {
        if !sandbox.validate(bytes).admitted {
            return Err(None);
        }
        let mut scratch = Scratch::default();
        for c in cases {
            let end = match plan.call_with(&c.args, fuel, &mut scratch) {
                Answer::Value(v) => case_end(
                    task,
                    c.expect,
                    Outcome::Ok,
                    Some(RunResult::Value(v)),
                    None,
                    fuel,
                    policy_fuel,
                ),
                Answer::Trap(o) => case_end(
                    task,
                    c.expect,
                    o,
                    None,
                    Some(format!("{o} (screened)")),
                    fuel,
                    policy_fuel,
                ),
            };
            take(end, &c.args)?;
        }
    } else {
        let agent = match sandbox.admit(bytes, false) {
            Ok(Admission::Admitted(a)) => a,
            _ => return Err(None),
        };
        for c in cases {
            let r = sandbox
                .run_with_fuel(&agent, Input::Typed(c.args.clone()), fuel)
                .map_err(|_| None)?;
            take(
                case_end(
                    task,
                    c.expect,
                    r.outcome,
                    r.result,
                    r.trap_message,
                    fuel,
                    policy_fuel,
                ),
                &c.args,
            )?;
        }
    }
    Ok(Score::of(errors, exhausted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        Sandbox::new(runtime::Policy::default_policy()).expect("sandbox")
    }

    #[test]
    fn a_panicking_scorer_is_an_error_naming_its_thread_and_work() {
        let todo: Vec<usize> = (0..20).collect();
        let pool = scoring_pool(3, &sandbox()).expect("pool");
        let r = score_all(
            &pool,
            &todo,
            |i| format!("scoring module {i}"),
            |i| {
                assert!(i != 7, "scorer gave up on {i}");
                i * 2
            },
        );
        let err = r.expect_err("the panic surfaces");
        match err.kind() {
            ErrorKind::ThreadPanicked {
                thread,
                doing,
                message,
            } => {
                assert!(thread.starts_with("tdev-score-"), "{thread}");
                assert_eq!(doing, "scoring module 7");
                assert!(message.contains("scorer gave up on 7"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().contains("panicked while scoring module 7"),
            "{err}"
        );
        // without a panic every item comes back once, in the order of `todo`
        let ok = score_all(&pool, &todo, |i| i.to_string(), |i| i).expect("ok");
        assert_eq!(ok, todo);
        // and the pool still works after a panic
        let again = score_all(&pool, &[3, 1], |i| i.to_string(), |i| i + 1).expect("again");
        assert_eq!(again, [4, 2]);
    }

    #[test]
    fn agent_threads_are_sized_from_the_policy() {
        let mut p = runtime::Policy::default_policy();
        p.limits.stack_bytes = 1536 << 10;
        // a Wasm stack that uses most of a deep host thread runs on one that has it
        let wat = r#"(module (func $f (export "act") (param i64) (result i64)
            local.get 0 i64.eqz if (result i64) i64.const 0 else
            local.get 0 i64.const 1 i64.sub call $f i64.const 1 i64.add end))"#;
        let bytes = wat::parse_str(wat).expect("wat");
        let sandbox = Sandbox::new(p).expect("sandbox");
        assert_eq!(
            agent_thread_stack_bytes(&sandbox),
            sandbox.thread_stack_bytes() + COMPILE_STACK_MARGIN
        );
        assert!(sandbox.thread_stack_bytes() > 1536 << 10);
        let Ok(Admission::Admitted(agent)) = sandbox.admit(&bytes, false) else {
            panic!("admitted")
        };
        let pool = scoring_pool(1, &sandbox).expect("pool");
        let out = score_all(
            &pool,
            &[0usize],
            |_| "deep recursion".into(),
            |_| {
                sandbox
                    .run(&agent, Input::Typed(vec![runtime::Value::I64(1_000_000)]))
                    .map(|r| r.outcome)
            },
        )
        .expect("pool");
        assert_eq!(out[0].as_ref().expect("run"), &Outcome::StackOverflow);
    }
}
