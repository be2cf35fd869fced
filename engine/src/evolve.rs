//! The genetic algorithm: a population of Wasm modules, scored in the sandbox, bred by
//! tournament selection with elitism and parsimony pressure, every generation stored.
//!
//! Storage (evolution bucket, `<id>` the evolution id, `<gen>` zero-padded):
//! `checkpoints/<id>/task.json` and `checkpoints/<id>/config.json` (written once),
//! `generations/<id>/<gen>.json` (population), `fitness_logs/<id>/<gen>.json`,
//! `safety_snapshots/<id>/<gen>.json`, then `checkpoints/<id>/<gen>.json` — the
//! checkpoint, written last: a generation exists once its checkpoint does — and
//! `checkpoints/<id>/head.json` naming the generation to resume from. The population's
//! modules are in its generation record (hex); the best one of each generation is also in
//! the agents bucket under `source/<hex>`; all are checked against their id when read.

use crate::error::{ErrorKind, Result, from_json, panic_message, to_json};
use crate::genome::{Genome, Ty};
use crate::id::AgentId;
use crate::interp::{Answer, Plan, Scratch};
use crate::mutators::{self, Mutator};
use crate::quarantine::{Quarantine, TrapEvent, source_key};
use crate::random;
use crate::rng::Rng;
use crate::store::{BlobStore, Bucket};
use crate::task::Task;
use crate::time::now_rfc3339;
use crate::words::{Cull, RunStatus, SafetyFlag};
use rayon::prelude::*;
use runtime::{Admission, Input, Outcome, RunResult, Sandbox};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::records::{
    Best, Checkpoint, EvolutionEntry, GenerationRecord, GenerationStats, Head, Member, Metadata,
    Performance, SafetySnapshot, Stopped, TaskRecord,
};

/// Parameters of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvolveConfig {
    /// The seed of every random choice. Default 1.
    pub seed: u64,
    /// Generations after the initial one. Default 60.
    pub generations: u32,
    /// Population size. Default 300.
    pub population: usize,
    /// Tournament size. Default 4.
    pub tournament: usize,
    /// Best individuals copied unchanged. Default 2.
    pub elitism: usize,
    /// Share of offspring made by crossover. Default 0.3.
    pub crossover_rate: f64,
    /// Fitness = mean train error + parsimony × size in bytes. Default 1e-4.
    pub parsimony: f64,
    /// Depth of the random initial expressions. Default 4.
    pub init_depth: u32,
    /// Worker threads for evaluation (results do not depend on it). Default: all cores.
    pub threads: usize,
}

impl Default for EvolveConfig {
    fn default() -> Self {
        EvolveConfig {
            seed: 1,
            generations: 60,
            population: 300,
            tournament: 4,
            elitism: 2,
            crossover_rate: 0.3,
            parsimony: 1e-4,
            init_depth: 4,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// How an evaluation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Eval {
    /// Ran every case: the mean train error.
    Scored(f64),
    /// Trapped on a case: culled.
    Culled(Outcome),
    /// Not admitted by the policy: culled (and quarantined).
    Rejected,
}

/// One member of the population.
#[derive(Clone, Debug)]
pub struct Individual {
    /// The module.
    pub bytes: Arc<Vec<u8>>,
    /// Its agent id.
    pub id: AgentId,
    /// Its parents' ids.
    pub parents: Vec<AgentId>,
    /// Its evaluation.
    pub eval: Eval,
}

impl Individual {
    fn train_error(&self) -> f64 {
        match self.eval {
            Eval::Scored(e) => e,
            _ => f64::INFINITY,
        }
    }

    fn fitness(&self, parsimony: f64) -> f64 {
        self.train_error() + parsimony * self.bytes.len() as f64
    }
}

/// The result of [`Evolution::run`].
#[derive(Clone, Debug)]
pub struct Summary {
    /// The evolution id.
    pub evolution_id: String,
    /// Whether the success threshold was reached.
    pub solved: bool,
    /// The last complete generation.
    pub generations: u32,
    /// Evaluations in all.
    pub evaluations: u64,
    /// The best individual.
    pub best: Best,
    /// Its module.
    pub best_module: Vec<u8>,
    /// Culled offspring by outcome word.
    pub culled: BTreeMap<Cull, u64>,
    /// Offspring quarantined.
    pub quarantined: u64,
    /// Share of produced offspring that validated.
    pub valid_share: f64,
    /// (best, mean) train error per generation.
    pub history: Vec<(f64, f64)>,
    /// Whether a stop request ended the run early.
    pub stopped: bool,
}

/// An evolution in progress.
pub struct Evolution {
    sandbox: Sandbox,
    store: Arc<dyn BlobStore>,
    quarantine: Quarantine,
    task: Task,
    config: EvolveConfig,
    id: String,
    rng: Rng,
    generation: u32,
    population: Vec<Individual>,
    cache: HashMap<AgentId, Eval>,
    evaluations: u64,
    culled: BTreeMap<Cull, u64>,
    quarantined: u64,
    produced: u64,
    invalid: u64,
    history: Vec<(f64, f64)>,
    /// The scoring threads (named `tdev-score-<n>`, with stacks for the policy).
    pool: Arc<rayon::ThreadPool>,
    mutators: Vec<(Box<dyn Mutator>, u32)>,
    /// The genomes of the offspring `breed` just made (their bytes are their
    /// encoding), in its order, so scoring need not decode them again.
    bred: Vec<Option<Arc<Genome>>>,
    stop: Arc<AtomicBool>,
}

fn gen_key(prefix: &str, id: &str, g: u32) -> String {
    format!("{prefix}/{id}/{g:06}.json")
}

fn head_key(id: &str) -> String {
    format!("checkpoints/{id}/head.json")
}

fn stopped_key(id: &str) -> String {
    format!("checkpoints/{id}/stopped.json")
}

impl Evolution {
    /// Starts a new evolution: the initial population is `seeds` (modules with the
    /// task's typed `act`) filled up with random modules, evaluated and stored as
    /// generation 0.
    pub fn start(
        sandbox: Sandbox,
        store: Arc<dyn BlobStore>,
        task: Task,
        config: EvolveConfig,
        seeds: Vec<Vec<u8>>,
    ) -> Result<Evolution> {
        let params: Vec<Ty> = task.params.iter().map(|p| Ty::from(*p)).collect();
        let result = Ty::from(task.result);
        for (i, s) in seeds.iter().enumerate() {
            let g = Genome::decode(s).ok_or(ErrorKind::SeedUntyped { number: i + 1 })?;
            if g.params != params || g.result != result {
                return Err(ErrorKind::SeedSignature { number: i + 1 }.into());
            }
        }
        if config.population < 2 || config.tournament == 0 {
            return Err(ErrorKind::Config("population ≥ 2 and tournament ≥ 1").into());
        }
        let mut rng = Rng::new(config.seed);
        let digest = AgentId::of(
            format!(
                "{}|{}|{}|{}",
                task.name,
                config.seed,
                now_rfc3339(),
                std::process::id()
            )
            .as_bytes(),
        );
        let id = format!(
            "evo-{}-{}",
            task.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            digest.hex().get(..12).unwrap_or_default()
        );
        let consts = Arc::new(random::Constants::from_task(&task));
        let mut bytes: Vec<Vec<u8>> = seeds;
        while bytes.len() < config.population {
            bytes.push(
                random::module(&params, result, config.init_depth, &consts, &mut rng).encode(),
            );
        }
        bytes.truncate(config.population);
        let pool = scoring_pool(config.threads, &sandbox)?;
        let mut evo = Evolution {
            quarantine: Quarantine::new(store.clone()),
            sandbox,
            store,
            task,
            config,
            id,
            rng,
            generation: 0,
            population: Vec::new(),
            cache: HashMap::new(),
            evaluations: 0,
            culled: BTreeMap::new(),
            quarantined: 0,
            produced: 0,
            invalid: 0,
            history: Vec::new(),
            pool,
            mutators: mutators::all(&consts),
            bred: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        evo.store.put(
            Bucket::Evolution,
            &format!("checkpoints/{}/task.json", evo.id),
            &to_json("the task", &TaskRecord::from(&evo.task))?,
        )?;
        evo.store.put(
            Bucket::Evolution,
            &format!("checkpoints/{}/config.json", evo.id),
            &to_json("the configuration", &evo.config)?,
        )?;
        let individuals: Vec<(Vec<u8>, Vec<AgentId>)> =
            bytes.into_iter().map(|b| (b, Vec::new())).collect();
        let n = individuals.len();
        let (pop, stats) = evo.evaluate_all(individuals, n)?;
        evo.population = pop;
        write_generation(evo.commit(&stats))?;
        Ok(evo)
    }

    /// Resumes an evolution from its head generation, with the configuration it was
    /// started with; only the number of generations and of threads may change.
    pub fn resume(
        sandbox: Sandbox,
        store: Arc<dyn BlobStore>,
        id: &str,
        generations: Option<u32>,
        threads: Option<usize>,
    ) -> Result<Evolution> {
        crate::store::check_key(id)?;
        let get = |key: String| -> Result<Vec<u8>> {
            store
                .get(Bucket::Evolution, &key)?
                .ok_or_else(|| ErrorKind::NotFound(format!("evolution {id}: {key}")).into())
        };
        let task_bytes = get(format!("checkpoints/{id}/task.json"))?;
        let task = Task::parse(
            std::str::from_utf8(&task_bytes).map_err(|e| ErrorKind::Corrupt {
                key: "task.json".into(),
                reason: e.to_string(),
            })?,
            true,
        )?;
        let consts = Arc::new(random::Constants::from_task(&task));
        let config_key = format!("checkpoints/{id}/config.json");
        let mut config: EvolveConfig = from_json(&config_key, &get(config_key.clone())?)?;
        if let Some(g) = generations {
            config.generations = g;
        }
        if let Some(t) = threads {
            config.threads = t.max(1);
        }
        let head = head_generation(store.as_ref(), id)?;
        let cp_key = gen_key("checkpoints", id, head);
        let cp: Checkpoint = from_json(&cp_key, &get(cp_key.clone())?)?;
        let quarantine = Quarantine::new(store.clone());
        let pool = scoring_pool(config.threads, &sandbox)?;
        let mut evo = Evolution {
            quarantine,
            sandbox,
            store: store.clone(),
            task,
            config,
            id: id.to_string(),
            rng: cp.rng,
            generation: cp.generation,
            population: Vec::new(),
            cache: HashMap::new(),
            evaluations: cp.evaluations,
            culled: cp.culled,
            quarantined: cp.quarantined,
            produced: cp.produced,
            invalid: cp.invalid,
            history: cp.history,
            pool,
            mutators: mutators::all(&consts),
            bred: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let record_key = gen_key("generations", id, head);
        let record: GenerationRecord = from_json(&record_key, &get(record_key.clone())?)?;
        let mut modules: HashMap<AgentId, Vec<u8>> = HashMap::new();
        for m in record.population {
            // A module that does not hash to its id is read from `source/` instead.
            if let Some(bytes) = runtime::from_hex(&m.module_hex)
                && AgentId::of(&bytes) == m.agent_id
            {
                modules.insert(m.agent_id, bytes);
            }
        }
        let mut individuals = Vec::new();
        for (aid, parents) in cp.population {
            let bytes = match modules.get(&aid).cloned() {
                Some(b) => b,
                None => store
                    .get(Bucket::Agents, &source_key(&aid))?
                    .filter(|b| AgentId::of(b) == aid)
                    .ok_or_else(|| ErrorKind::Corrupt {
                        key: gen_key("generations", id, head),
                        reason: format!("module {aid} is missing or does not hash to its id"),
                    })?,
            };
            individuals.push((bytes, parents));
        }
        // Re-score (deterministic) to rebuild the evaluations of the population; the
        // counters stay as the checkpoint has them.
        let counters = (evo.evaluations, evo.culled.clone(), evo.quarantined);
        let n = individuals.len();
        let (pop, _) = evo.evaluate_all(individuals, n)?;
        evo.population = pop;
        (evo.evaluations, evo.culled, evo.quarantined) = counters;
        Ok(evo)
    }

    /// The evolution id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The last complete generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The generation the run stops at (`--generations`).
    pub fn generations_limit(&self) -> u32 {
        self.config.generations
    }

    /// Evaluations so far.
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// A flag that ends the run after the generation in progress.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    fn best(&self) -> &Individual {
        let p = self.config.parsimony;
        self.population
            .iter()
            .min_by(|a, b| {
                a.train_error()
                    .total_cmp(&b.train_error())
                    .then(a.fitness(p).total_cmp(&b.fitness(p)))
                    .then(a.id.cmp(&b.id))
            })
            .unwrap_or(&self.population[0])
    }

    fn solved(&self) -> bool {
        self.best().train_error() <= self.task.success_threshold
    }

    /// Runs generations until the task is solved, `config.generations` is reached or
    /// the stop flag is set; `progress` sees every generation's statistics.
    pub fn run(&mut self, mut progress: impl FnMut(&GenerationStats)) -> Result<Summary> {
        let mut stopped = false;
        // The previous generation's records are written while this one is bred and
        // evaluated; it is durable before the next one is written, and before `run`
        // returns.
        let mut writing: Option<std::thread::JoinHandle<Result<()>>> = None;
        let finish = |w: Option<std::thread::JoinHandle<Result<()>>>| -> Result<()> {
            match w {
                None => Ok(()),
                Some(h) => h.join().unwrap_or_else(|p| {
                    Err(ErrorKind::ThreadPanicked {
                        thread: "tdev-commit".into(),
                        doing: "writing a generation".into(),
                        message: panic_message(p.as_ref()),
                    }
                    .into())
                }),
            }
        };
        while !self.solved() && self.generation < self.config.generations {
            if self.stop.load(Ordering::SeqCst) {
                stopped = true;
                break;
            }
            let offspring = self.breed();
            let elites = self.config.elitism.min(self.population.len());
            let evaluated = self.evaluate_all(offspring, elites);
            // The writer of the previous generation is waited for even when scoring
            // failed, so its own error is not lost either.
            let written = finish(writing.take());
            let (pop, stats) = evaluated?;
            written?;
            if self.stop.load(Ordering::SeqCst) {
                // An interrupted generation is not committed: the last one stays head.
                stopped = true;
                break;
            }
            self.population = pop;
            self.generation += 1;
            let commit = self.commit(&stats);
            writing = Some(
                std::thread::Builder::new()
                    .name("tdev-commit".into())
                    .spawn(move || write_generation(commit))
                    .map_err(|source| ErrorKind::ThreadStart {
                        thread: "tdev-commit".into(),
                        source,
                    })?,
            );
            progress(&stats);
        }
        finish(writing.take())?;
        if stopped {
            // The head's status, as `list` shows it, until a resumed run moves the head.
            let stopped = Stopped {
                generation: self.generation,
                at: now_rfc3339(),
            };
            self.store.put(
                Bucket::Evolution,
                &stopped_key(&self.id),
                &to_json("the stop record", &stopped)?,
            )?;
        }
        let best = self.best().clone();
        let b = self.best_record(&best);
        Ok(Summary {
            evolution_id: self.id.clone(),
            solved: self.solved(),
            generations: self.generation,
            evaluations: self.evaluations,
            best: b,
            best_module: best.bytes.to_vec(),
            culled: self.culled.clone(),
            quarantined: self.quarantined,
            valid_share: if self.produced == 0 {
                1.0
            } else {
                1.0 - self.invalid as f64 / self.produced as f64
            },
            history: self.history.clone(),
            stopped,
        })
    }

    fn tournament(&mut self) -> usize {
        let p = self.config.parsimony;
        let mut best = self.rng.below(self.population.len());
        for _ in 1..self.config.tournament {
            let c = self.rng.below(self.population.len());
            let (a, b) = (&self.population[c], &self.population[best]);
            if a.fitness(p)
                .total_cmp(&b.fitness(p))
                .then(a.bytes.len().cmp(&b.bytes.len()))
                .then(a.id.cmp(&b.id))
                .is_lt()
            {
                best = c;
            }
        }
        best
    }

    /// Offspring of the current population: elites, then crossover and mutation.
    fn breed(&mut self) -> Vec<(Vec<u8>, Vec<AgentId>)> {
        let p = self.config.parsimony;
        let cap = self.sandbox.policy().limits.module_bytes as usize;
        let mut order: Vec<usize> = (0..self.population.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.population[a], &self.population[b]);
            x.fitness(p).total_cmp(&y.fitness(p)).then(x.id.cmp(&y.id))
        });
        let mut out: Vec<(Vec<u8>, Vec<AgentId>)> = order
            .iter()
            .take(self.config.elitism.min(self.population.len()))
            .map(|&i| {
                let ind = &self.population[i];
                (ind.bytes.to_vec(), vec![ind.id.clone()])
            })
            .collect();
        let mut bred: Vec<Option<Arc<Genome>>> = vec![None; out.len()];
        // Parents are decoded once per generation, however often they are picked.
        let mut decoded: Vec<Option<Option<Arc<Genome>>>> = vec![None; self.population.len()];
        let mut genome = |i: usize, pop: &[Individual]| -> Option<Arc<Genome>> {
            decoded[i]
                .get_or_insert_with(|| Genome::decode(&pop[i].bytes).map(Arc::new))
                .clone()
        };
        while out.len() < self.config.population {
            let a = self.tournament();
            let parent = &self.population[a];
            let Some(ga) = genome(a, &self.population) else {
                out.push((parent.bytes.to_vec(), vec![parent.id.clone()]));
                bred.push(None);
                continue;
            };
            let mut parents = vec![parent.id.clone()];
            let child = if self.rng.chance(self.config.crossover_rate) {
                let b = self.tournament();
                parents.push(self.population[b].id.clone());
                genome(b, &self.population)
                    .and_then(|gb| mutators::crossover(&ga, &gb, &mut self.rng))
            } else {
                let total: u32 = self.mutators.iter().map(|(_, w)| *w).sum();
                let mut pick = self.rng.below(total as usize) as u32;
                let mut chosen = 0;
                for (i, (_, w)) in self.mutators.iter().enumerate() {
                    if pick < *w {
                        chosen = i;
                        break;
                    }
                    pick -= *w;
                }
                self.mutators[chosen].0.mutate(&ga, &mut self.rng)
            };
            let Some(child) = child else { continue };
            let bytes = child.encode();
            self.produced += 1;
            if bytes.len() > cap {
                // Nothing over the size cap survives.
                *self.culled.entry(Cull::SizeCap).or_default() += 1;
                self.invalid += 1;
                continue;
            }
            out.push((bytes, parents));
            bred.push(Some(Arc::new(child)));
        }
        self.bred = bred;
        out
    }

    /// Scores individuals in parallel (duplicates once, cached by id); the result does
    /// not depend on the number of threads.
    /// `items[offspring_from..]` are new offspring, counted for the valid share.
    fn evaluate_all(
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
        let mut culled_now: BTreeMap<Cull, u64> = BTreeMap::new();
        for (i, e, trap) in results {
            self.evaluations += 1;
            match &e {
                Eval::Culled(o) => *culled_now.entry(Cull::Trap(*o)).or_default() += 1,
                Eval::Rejected => *culled_now.entry(Cull::Rejected).or_default() += 1,
                Eval::Scored(_) => {}
            }
            let (bytes, parents) = &items[i];
            // A quarantine record that cannot be written stops the evolution: nothing
            // it should keep is lost silently.
            let q = match (&e, trap) {
                (Eval::Rejected, _) => {
                    let v = self.sandbox.validate(bytes);
                    self.quarantine.quarantine(
                        bytes,
                        &v,
                        v.safety_score,
                        self.sandbox.policy(),
                        None,
                        parents,
                    )?;
                    true
                }
                (Eval::Culled(o), Some((_, msg))) if o.is_limit() => {
                    let v = self.sandbox.validate(bytes);
                    let policy = self.sandbox.policy();
                    let score = runtime::safety_score(
                        v.findings
                            .iter()
                            .map(|f| f.weight)
                            .chain([policy.trap_weights.for_outcome(*o)]),
                    );
                    let below = score < policy.min_safety_score;
                    if below {
                        self.quarantine.quarantine(
                            bytes,
                            &v,
                            score,
                            policy,
                            Some(TrapEvent {
                                at: now_rfc3339(),
                                outcome: o.to_string(),
                                message: msg,
                                fuel_used: 0,
                                wall_us: 0,
                            }),
                            parents,
                        )?;
                    }
                    below
                }
                _ => false,
            };
            if q {
                self.quarantined += 1;
            }
            self.cache.insert(ids[i].clone(), e);
        }
        for (k, v) in &culled_now {
            *self.culled.entry(*k).or_default() += v;
        }
        self.invalid += ids[offspring_from.min(ids.len())..]
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
        let mean_size =
            pop.iter().map(|i| i.bytes.len() as f64).sum::<f64>() / pop.len().max(1) as f64;
        let best = Evolution::best_of(&pop, self.config.parsimony)
            .ok_or(ErrorKind::Config("a population of none"))?;
        let stats = GenerationStats {
            generation: self.generation + u32::from(!self.population.is_empty()),
            best_error: best.train_error(),
            mean_error,
            best_id: best.id.clone(),
            best_size: best.bytes.len(),
            evaluations: self.evaluations,
            produced: self.produced,
            valid: self.produced - self.invalid.min(self.produced),
            culled: culled_now,
            mean_size,
        };
        Ok((pop, stats))
    }

    fn best_of(pop: &[Individual], p: f64) -> Option<&Individual> {
        pop.iter().min_by(|a, b| {
            a.train_error()
                .total_cmp(&b.train_error())
                .then(a.fitness(p).total_cmp(&b.fitness(p)))
                .then(a.id.cmp(&b.id))
        })
    }

    fn best_record(&self, best: &Individual) -> Best {
        let test_error = (!self.task.test_cases.is_empty())
            .then(|| score_cases(&self.sandbox, &self.task, &best.bytes, None, true).ok())
            .flatten();
        Best {
            agent_id: best.id.clone(),
            train_error: best.train_error(),
            test_error,
            size_bytes: best.bytes.len(),
        }
    }

    /// Stores the current generation: what it needs is taken now, the writing (the
    /// checkpoint last) is done by [`write_generation`], in the background while the
    /// next generation is bred and evaluated.
    fn commit(&mut self, stats: &GenerationStats) -> Commit {
        self.history.push((stats.best_error, stats.mean_error));
        Commit {
            generation: self.generation,
            stats: stats.clone(),
            best: self.best().clone(),
            solved: self.solved(),
            generations: self.config.generations,
            rng: self.rng.clone(),
            culled: self.culled.clone(),
            history: self.history.clone(),
            id: self.id.clone(),
            population: self.population.clone(),
            evaluations: self.evaluations,
            quarantined: self.quarantined,
            produced: self.produced,
            invalid: self.invalid,
            sandbox: self.sandbox.clone(),
            store: self.store.clone(),
            task: self.task.clone(),
        }
    }
}

/// A generation to store, with everything its records are made of.
struct Commit {
    generation: u32,
    stats: GenerationStats,
    best: Individual,
    solved: bool,
    generations: u32,
    rng: Rng,
    culled: BTreeMap<Cull, u64>,
    history: Vec<(f64, f64)>,
    id: String,
    population: Vec<Individual>,
    evaluations: u64,
    quarantined: u64,
    produced: u64,
    invalid: u64,
    sandbox: Sandbox,
    store: Arc<dyn BlobStore>,
    task: Task,
}

/// The anomaly flags of a generation: a trap rate over 50%, a mean size over 80% of
/// the module cap, a best error below 1% of the previous generation's.
fn safety_flags(
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
        // interpreter must score the same when compiled and run. (A confirmation
        // run cut by the wall clock on a loaded machine proves nothing either way.)
        let all_ok = perf.outcomes.keys().all(|k| k == Outcome::Ok.as_str());
        if all_ok && perf.train_error.to_bits() != best.train_error().to_bits() {
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

/// Writes a generation; the checkpoint goes last, so a crash at any point leaves the
/// previous generation the head.
fn write_generation(c: Commit) -> Result<()> {
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
                train_error: match i.eval {
                    Eval::Scored(e) => Some(e),
                    _ => None,
                },
                size_bytes: i.bytes.len(),
                parents: i.parents.clone(),
                module_hex: runtime::to_hex(&i.bytes),
            })
            .collect(),
    };
    c.store.put(
        Bucket::Evolution,
        &gen_key("generations", &c.id, g),
        &to_json("the generation", &record)?,
    )?;
    c.store.put(
        Bucket::Evolution,
        &gen_key("fitness_logs", &c.id, g),
        &to_json("the fitness log", stats)?,
    )?;
    let prev = c.history.len().checked_sub(2).map(|i| c.history[i].0);
    let culled: u64 = stats.culled.values().sum();
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
        quarantined_total: c.quarantined,
        flags: flags.clone(),
    };
    c.store.put(
        Bucket::Evolution,
        &gen_key("safety_snapshots", &c.id, g),
        &to_json("the safety snapshot", &snapshot)?,
    )?;
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
        evaluations: c.evaluations,
        culled: c.culled,
        quarantined: c.quarantined,
        produced: c.produced,
        invalid: c.invalid,
        best: Best {
            agent_id: best.id.clone(),
            train_error: best.train_error(),
            test_error: None,
            size_bytes: best.bytes.len(),
        },
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
    if !c
        .store
        .put_new(Bucket::Evolution, &cp_key, &to_json("the checkpoint", &cp)?)?
    {
        let existing = c
            .store
            .get(Bucket::Evolution, &cp_key)?
            .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok());
        let same = existing.is_some_and(|e| e.rng == cp.rng && e.population == cp.population);
        if !same {
            return Err(ErrorKind::Conflict(format!(
                "generation {g} of {} was committed by another process",
                c.id
            ))
            .into());
        }
    }
    let item = crate::store::StateItem {
        evolution_id: c.id.clone(),
        generation: g,
        timestamp: cp.written_at.clone(),
        agent_code: best.bytes.to_vec(),
        best_agent_id: best.id.clone(),
        fitness_score: best.train_error().min(f64::MAX),
        parent_ids: best.parents.clone(),
        safety_flags: flags,
    };
    // The state row follows the checkpoint; an existing row (a retry) is kept.
    c.store.put_state(&item)?;
    write_head(c.store.as_ref(), &c.id, g)
}

fn write_head(store: &dyn BlobStore, id: &str, g: u32) -> Result<()> {
    store.put(
        Bucket::Evolution,
        &head_key(id),
        &to_json("the head", &Head { generation: g })?,
    )
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

/// An evaluation of item `.0`, with the trap that culled it.
type Scored = (usize, Eval, Option<(Outcome, String)>);

/// Room a scoring thread keeps beyond what the sandbox asks for running agents:
/// compiling modules and the screening interpreter run on the same thread.
const COMPILE_STACK_MARGIN: usize = 16 << 20;

/// The stack of a thread that runs agents in `sandbox`: what the sandbox needs for the
/// policy's Wasm stack and the host's frames (`Sandbox::thread_stack_bytes`) plus
/// [`COMPILE_STACK_MARGIN`], so no Wasm stack the policy allows can overflow it.
fn agent_thread_stack_bytes(sandbox: &Sandbox) -> usize {
    sandbox
        .thread_stack_bytes()
        .saturating_add(COMPILE_STACK_MARGIN)
}

/// The pool of scoring threads: `threads` of them (at least one), named
/// `tdev-score-<n>`, each with the stack of [`agent_thread_stack_bytes`].
fn scoring_pool(threads: usize, sandbox: &Sandbox) -> Result<Arc<rayon::ThreadPool>> {
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
fn score_all<T: Send>(
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
) -> (Eval, Option<(Outcome, String)>) {
    match score_cases(sandbox, task, bytes, genome, false) {
        Ok(e) => (Eval::Scored(e), None),
        Err(Some((o, m))) => (Eval::Culled(o), Some((o, m))),
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
    let mut error = 0.0;
    for case in &task.cases {
        let r = sandbox.run(&agent, Input::Typed(case.args.clone())).ok()?;
        match (r.outcome, &r.result) {
            (Outcome::Ok, Some(RunResult::Value(v))) => error += task.error(*v, case.expect),
            _ => error = f64::INFINITY,
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
        train_error: error / task.cases.len().max(1) as f64,
        fuel_per_call: sandbox.policy().limits.fuel_per_call,
        measured_at: now_rfc3339(),
        agent_id: c.best.id.clone(),
        evolution_id: c.id.clone(),
        generation: c.generation,
    })
}

/// Mean error over the train (or test) cases; `Err(Some(trap))` when a case trapped,
/// `Err(None)` when the module is not admitted. `genome` is the module's decoded form
/// when the caller has it (`bytes` is its encoding).
fn score_cases(
    sandbox: &Sandbox,
    task: &Task,
    bytes: &[u8],
    genome: Option<&Genome>,
    test: bool,
) -> std::result::Result<f64, Option<(Outcome, String)>> {
    let cases = if test { &task.test_cases } else { &task.cases };
    // Screening without compiling: a pure straight-line genome of the task's signature
    // is interpreted, with the sandbox's answers (see `interp`), once the policy has
    // admitted it. Anything else is compiled and run in the sandbox.
    if let Some(plan) = interpretable(sandbox, task, bytes, genome) {
        if !sandbox.validate(bytes).admitted {
            return Err(None);
        }
        let mut sum = 0.0;
        let mut scratch = Scratch::default();
        for c in cases {
            match plan.call_with(&c.args, &mut scratch) {
                Answer::Value(v) => sum += task.error(v, c.expect),
                Answer::Trap(o) => return Err(Some((o, format!("{o} (screened)")))),
            }
        }
        return Ok(sum / cases.len().max(1) as f64);
    }
    let agent = match sandbox.admit(bytes, false) {
        Ok(Admission::Admitted(a)) => a,
        _ => return Err(None),
    };
    let mut sum = 0.0;
    for c in cases {
        let r = sandbox
            .run(&agent, Input::Typed(c.args.clone()))
            .map_err(|_| None)?;
        match (r.outcome, r.result) {
            (Outcome::Ok, Some(RunResult::Value(v))) => sum += task.error(v, c.expect),
            (o, _) => return Err(Some((o, r.trap_message.unwrap_or_default()))),
        }
    }
    Ok(sum / cases.len().max(1) as f64)
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
