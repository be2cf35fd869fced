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

mod breed;
mod commit;
mod config;
pub mod islands;
mod migrate;
mod population;
pub mod proposals;
mod publish;
mod score;
mod selection;
mod stored;

use crate::error::{ErrorKind, Result, from_json, panic_message, to_json, to_sealed_json};
use crate::genome::{Genome, Ty};
use crate::id::AgentId;
use crate::mutators::{self, Mutator};
use crate::quarantine::{Quarantine, source_key};
use crate::random;
use crate::rng::Rng;
use crate::store::{BlobStore, Bucket};
use crate::task::Task;
use crate::time::now_rfc3339;
use crate::words::Cull;
use commit::{Commit, write_generation};
use runtime::Sandbox;
use score::{score_cases, scoring_pool};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use stored::{gen_key, stopped_key};

pub use commit::{metadata_key, performance_key};
pub use config::EvolveConfig;
pub use population::{Eval, Individual};
pub use proposals::{ProposalRecord, ProposalStats, ProposerSetup, proposals_key};
pub use selection::Selection;
pub use stored::{
    JobFailure, clear_failure, fitness_logs, head_generation, list, record_failure, rollback,
};

pub use crate::records::{
    Best, Checkpoint, CommittedRecords, EvolutionEntry, GenerationRecord, GenerationStats, Head,
    Member, Metadata, Performance, SafetySnapshot, Stopped, TaskRecord,
};

/// The result of [`Evolution::run`].
#[derive(Clone, Debug)]
pub struct Summary {
    /// The evolution id.
    pub evolution_id: String,
    /// Whether the success threshold was reached.
    pub solved: bool,
    /// Whether the best individual is exact on every held-out case (false when the
    /// task has none): the program-synthesis suites' success criterion.
    pub generalises: bool,
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
    /// Offspring due for quarantine but not written (over the cap per generation).
    pub quarantine_withheld: u64,
    /// Share of produced offspring that validated.
    pub valid_share: f64,
    /// (best, mean) train error per generation.
    pub history: Vec<(f64, f64)>,
    /// Whether a stop request ended the run early.
    pub stopped: bool,
}

/// Writes an evolution's task and configuration (`checkpoints/<id>/task.json`,
/// `config.json`), once at its start.
fn write_setup(store: &dyn BlobStore, id: &str, task: &Task, config: &EvolveConfig) -> Result<()> {
    store.put(
        Bucket::Evolution,
        &format!("checkpoints/{id}/task.json"),
        &to_sealed_json("the task", &TaskRecord::from(task))?,
    )?;
    store.put(
        Bucket::Evolution,
        &format!("checkpoints/{id}/config.json"),
        &to_sealed_json("the configuration", config)?,
    )
}

fn policy_key(id: &str) -> String {
    format!("checkpoints/{id}/policy.json")
}

/// Stores the policy evolution `id` starts under, once: a resume runs under it.
fn write_policy(store: &dyn BlobStore, id: &str, policy: &runtime::Policy) -> Result<()> {
    let record = crate::records::PolicyRecord {
        toml: policy.to_toml()?,
    };
    store.put(
        Bucket::Evolution,
        &policy_key(id),
        &to_sealed_json("the policy", &record)?,
    )
}

fn seeds_key(id: &str) -> String {
    format!("checkpoints/{id}/seeds.json")
}

/// The seed modules evolution `id` was started with (none stored: none).
fn stored_seeds(store: &dyn BlobStore, id: &str) -> Result<Vec<Vec<u8>>> {
    let key = seeds_key(id);
    let Some(b) = store.get(Bucket::Evolution, &key)? else {
        return Ok(Vec::new());
    };
    #[derive(serde::Deserialize)]
    struct Seeds {
        modules_hex: Vec<String>,
    }
    let seeds: Seeds = from_json(&key, &b)?;
    seeds
        .modules_hex
        .iter()
        .map(|h| {
            runtime::from_hex(h).ok_or_else(|| {
                ErrorKind::Corrupt {
                    key: key.clone(),
                    reason: "a seed is not hex".into(),
                }
                .into()
            })
        })
        .collect()
}

/// The object `key` of evolution `id`, which must exist.
fn required(store: &dyn BlobStore, id: &str, key: &str) -> Result<Vec<u8>> {
    store
        .get(Bucket::Evolution, key)?
        .ok_or_else(|| ErrorKind::NotFound(format!("evolution {id}: {key}")).into())
}

/// An evolution's id, task and configuration before it starts.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The evolution's id.
    pub id: String,
    /// Its task.
    pub task: Task,
    /// Its configuration.
    pub config: EvolveConfig,
}

/// The running counts of an evolution, kept in its checkpoint.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Tally {
    /// Evaluations run (a module scored once per distinct id).
    pub(super) evaluations: u64,
    /// Offspring quarantined.
    pub(super) quarantined: u64,
    /// Quarantine records not written because an outcome's cap was reached.
    pub(super) quarantine_withheld: u64,
    /// Offspring bred.
    pub(super) produced: u64,
    /// Offspring that failed validation.
    pub(super) invalid: u64,
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
    culled: BTreeMap<Cull, u64>,
    tally: Tally,
    history: Vec<(f64, f64)>,
    /// The scoring threads (named `tdev-score-<n>`, with stacks for the policy).
    pool: Arc<rayon::ThreadPool>,
    mutators: Vec<(Box<dyn Mutator>, u32)>,
    /// The genomes of the offspring `breed` just made (their bytes are their
    /// encoding), in its order, so scoring need not decode them again.
    bred: Vec<Option<Arc<Genome>>>,
    stop: Arc<AtomicBool>,
    /// The cases (and their ε) this generation's lexicase selections filter through.
    lexicase: selection::Lexicase,
    /// The proposer and what it answered, when one is set.
    proposals: Option<proposals::Proposals>,
    /// What became of proposals so far (from the checkpoint on resume).
    proposal_total: ProposalStats,
    /// Members a proposer offered (from the generation record on resume).
    proposal_marks: BTreeMap<AgentId, String>,
    /// The head as this run last read or wrote it (`None`: there was none).
    head: Option<Head>,
    /// Modules evaluated before this process resumed the evolution (from the
    /// generation records): scored again when met, not counted again.
    seen: std::collections::HashSet<AgentId>,
    /// Modules first evaluated in the generation being made, for its record.
    evaluated_now: Vec<AgentId>,
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
        let id = Evolution::new_id(&task, &config);
        Evolution::start_prepared(sandbox, store, Prepared { id, task, config }, seeds)
    }

    /// A new evolution id for `task` and `config`: `evo-<task>-<12 hex digits>`, the
    /// digits from the task, the seed, the time and the process.
    pub fn new_id(task: &Task, config: &EvolveConfig) -> String {
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
        format!(
            "evo-{}-{}",
            task.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            digest.hex().get(..12).unwrap_or_default()
        )
    }

    /// Writes the task and configuration of an evolution that is still to start
    /// (`checkpoints/<id>/task.json`, `config.json`) under a new id, and returns it: a
    /// job can then name the evolution alone, and any process start it with
    /// [`Evolution::stored`] and [`Evolution::start_prepared`].
    pub fn prepare(store: &dyn BlobStore, task: &Task, config: &EvolveConfig) -> Result<String> {
        let id = Evolution::new_id(task, config);
        write_setup(store, &id, task, config)?;
        Ok(id)
    }

    /// The task and configuration stored for evolution `id`.
    pub fn stored(store: &dyn BlobStore, id: &str) -> Result<Prepared> {
        crate::store::check_key(id)?;
        let task_key = format!("checkpoints/{id}/task.json");
        let Some(task_bytes) = store.get(Bucket::Evolution, &task_key)? else {
            let nothing = store
                .list(Bucket::Evolution, &format!("checkpoints/{id}/"))?
                .is_empty();
            return Err(ErrorKind::NotFound(if nothing {
                format!("evolution {id} in {}", store.describe())
            } else {
                format!("evolution {id}: {task_key}")
            })
            .into());
        };
        let corrupt = |reason: String| ErrorKind::Corrupt {
            key: task_key.clone(),
            reason,
        };
        let task_bytes = crate::seal::unseal(&task_key, &task_bytes)?;
        let text = std::str::from_utf8(&task_bytes).map_err(|e| corrupt(e.to_string()))?;
        let task = Task::parse(text, true).map_err(|e| corrupt(crate::error::chain(&e)))?;
        let config_key = format!("checkpoints/{id}/config.json");
        let config: EvolveConfig = from_json(&config_key, &required(store, id, &config_key)?)?;
        Ok(Prepared {
            id: id.to_string(),
            task,
            config,
        })
    }

    /// The policy evolution `id` was started under; `None` for an evolution stored
    /// before policies were (or not started yet).
    pub fn stored_policy(store: &dyn BlobStore, id: &str) -> Result<Option<runtime::Policy>> {
        crate::store::check_key(id)?;
        let key = policy_key(id);
        let Some(b) = store.get(Bucket::Evolution, &key)? else {
            return Ok(None);
        };
        let record: crate::records::PolicyRecord = from_json(&key, &b)?;
        runtime::Policy::from_toml(&record.toml)
            .map(Some)
            .map_err(|e| {
                ErrorKind::Corrupt {
                    key,
                    reason: crate::error::chain(&e),
                }
                .into()
            })
    }

    /// [`Evolution::start`] of a prepared evolution, under its id (one of
    /// [`Evolution::new_id`]'s, as a job names it).
    pub fn start_prepared(
        sandbox: Sandbox,
        store: Arc<dyn BlobStore>,
        prepared: Prepared,
        seeds: Vec<Vec<u8>>,
    ) -> Result<Evolution> {
        let Prepared { id, task, config } = prepared;
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
        if !(config.downsample > 0.0 && config.downsample <= 1.0) {
            return Err(ErrorKind::Config("a down-sample share in (0, 1]").into());
        }
        crate::store::check_key(&id)?;
        let mut rng = Rng::new(config.seed);
        let consts = Arc::new(random::Constants::from_task(&task));
        let seeds_given = seeds.clone();
        let mut bytes: Vec<Vec<u8>> = seeds;
        while bytes.len() < config.population {
            bytes.push(
                random::module(&params, result, config.init_depth, &consts, &mut rng).encode(),
            );
        }
        bytes.truncate(config.population);
        let pool = scoring_pool(config.threads, &sandbox)?;
        let mutators = mutators::all(&consts, config.control_flow);
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
            culled: BTreeMap::new(),
            tally: Tally::default(),
            history: Vec::new(),
            pool,
            mutators,
            bred: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            lexicase: Default::default(),
            proposals: None,
            proposal_total: ProposalStats::default(),
            proposal_marks: BTreeMap::new(),
            head: None,
            seen: Default::default(),
            evaluated_now: Vec::new(),
        };
        evo.store.sweep()?;
        write_setup(evo.store.as_ref(), &evo.id, &evo.task, &evo.config)?;
        write_policy(evo.store.as_ref(), &evo.id, evo.sandbox.policy())?;
        if !seeds_given.is_empty() {
            evo.store.put(
                Bucket::Evolution,
                &seeds_key(&evo.id),
                &to_sealed_json(
                    "the seeds",
                    &serde_json::json!({
                        "modules_hex": seeds_given.iter().map(|b| runtime::to_hex(b)).collect::<Vec<_>>()
                    }),
                )?,
            )?;
        }
        let individuals: Vec<(Vec<u8>, Vec<AgentId>)> =
            bytes.into_iter().map(|b| (b, Vec::new())).collect();
        let n = individuals.len();
        let (pop, stats) = evo.evaluate_all(individuals, n)?;
        evo.population = pop;
        evo.head = Some(write_generation(evo.commit(&stats))?);
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
        let Prepared {
            task, mut config, ..
        } = Evolution::stored(store.as_ref(), id)?;
        let consts = Arc::new(random::Constants::from_task(&task));
        if let Some(g) = generations {
            config.generations = g;
        }
        if let Some(t) = threads {
            config.threads = t.max(1);
        }
        // Same seed, same result: only under the policy it was started under.
        if let Some(own) = Evolution::stored_policy(store.as_ref(), id)?
            && own.to_toml()? != sandbox.policy().to_toml()?
        {
            return Err(ErrorKind::PolicyDiffers {
                id: id.to_string(),
                key: policy_key(id),
            }
            .into());
        }
        // A resume follows a run that may have been killed mid-write: its debris goes.
        store.sweep()?;
        let head_seen = publish::read_head(store.as_ref(), id)?;
        let head = match head_generation(store.as_ref(), id) {
            Ok(h) => h,
            // Stopped (killed) before generation 0 was committed: it starts again from
            // its stored setup and seeds, as it would have run. (An island evolution's
            // islands are started by their jobs.)
            Err(e)
                if matches!(e.kind(), ErrorKind::NotFound(_))
                    && islands::plan(store.as_ref(), id)?.is_none() =>
            {
                let seeds = stored_seeds(store.as_ref(), id)?;
                let prepared = Prepared {
                    id: id.to_string(),
                    task,
                    config,
                };
                return Evolution::start_prepared(sandbox, store, prepared, seeds);
            }
            Err(e) => return Err(e),
        };
        let cp_key = gen_key("checkpoints", id, head);
        let cp: Checkpoint = from_json(&cp_key, &required(store.as_ref(), id, &cp_key)?)?;
        // A commit cut short after its checkpoint is finished first.
        publish::publish(store.as_ref(), id, &cp)?;
        let record: GenerationRecord = from_json(
            &gen_key("generations", id, head),
            &publish::read_record(store.as_ref(), id, &cp, 0)?,
        )?;
        let quarantine = Quarantine::new(store.clone());
        let pool = scoring_pool(config.threads, &sandbox)?;
        let mutators = mutators::all(&consts, config.control_flow);
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
            culled: cp.culled,
            tally: Tally {
                evaluations: cp.evaluations,
                quarantined: cp.quarantined,
                quarantine_withheld: cp.quarantine_withheld,
                produced: cp.produced,
                invalid: cp.invalid,
            },
            history: cp.history,
            pool,
            mutators,
            bred: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            lexicase: Default::default(),
            proposals: None,
            proposal_total: cp.proposals.unwrap_or_default(),
            proposal_marks: BTreeMap::new(),
            head: head_seen,
            seen: Default::default(),
            evaluated_now: Vec::new(),
        };
        // Every module evaluated up to the head (the records up to the head are
        // published: the head moves only after its records are in place).
        // A record that is missing or does not match its checksum is read from its
        // checkpoint's own copy, as everywhere else.
        for g in 0..head {
            let key = gen_key("generations", id, g);
            let stored = store
                .get(Bucket::Evolution, &key)?
                .and_then(|b| from_json::<GenerationRecord>(&key, &b).ok());
            let r = match stored {
                Some(r) => r,
                None => {
                    let cp_key = gen_key("checkpoints", id, g);
                    let cp: Checkpoint =
                        from_json(&cp_key, &required(store.as_ref(), id, &cp_key)?)?;
                    from_json(&key, &publish::read_record(store.as_ref(), id, &cp, 0)?)?
                }
            };
            evo.seen.extend(r.evaluated);
        }
        evo.seen.extend(record.evaluated.iter().cloned());

        let mut modules: HashMap<AgentId, Vec<u8>> = HashMap::new();
        for m in record.population {
            if let Some(w) = &m.proposed_by {
                evo.proposal_marks.insert(m.agent_id.clone(), w.clone());
            }
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
        let counters = (evo.tally, evo.culled.clone());
        let n = individuals.len();
        let (pop, _) = evo.evaluate_all(individuals, n)?;
        evo.population = pop;
        (evo.tally, evo.culled) = counters;
        evo.evaluated_now.clear();
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
        self.tally.evaluations
    }

    /// A flag that ends the run after the generation in progress.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    fn best(&self) -> &Individual {
        population::best_of(&self.population, self.config.parsimony).unwrap_or(&self.population[0])
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
        let mut writing: Option<std::thread::JoinHandle<Result<Head>>> = None;
        let finish = |w: Option<std::thread::JoinHandle<Result<Head>>>| -> Result<Option<Head>> {
            match w {
                None => Ok(None),
                Some(h) => h.join().map(|r| r.map(Some)).unwrap_or_else(|p| {
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
            // Proposals: ask ahead (one generation in sync mode, two otherwise), take
            // what came for the next one, in place of some of its offspring.
            let next = self.generation + 1;
            if let Some(p) = &self.proposals {
                let lag = if p.sync() { 1 } else { 2 };
                self.ask_proposer(self.generation + lag)?;
            }
            let proposed = self.proposals_for(next)?;
            let mut offspring = self.breed();
            let elites = self.config.elitism.min(self.population.len());
            self.splice_proposals(&mut offspring, elites, proposed);
            let evaluated = self
                .evaluate_all(offspring, elites)
                .map(|(pop, mut stats)| {
                    stats.proposals = self.close_proposal_stats();
                    (pop, stats)
                });
            // The writer of the previous generation is waited for even when scoring
            // failed, so its own error is not lost either.
            let written = finish(writing.take());
            // A commit that lost (a conflict) says more than a scoring error after it.
            if let Some(h) = written? {
                self.head = Some(h);
            }
            let (pop, stats) = evaluated?;
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
        if let Some(h) = finish(writing.take())? {
            self.head = Some(h);
        }
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
        let (b, generalises) = self.best_record(&best);
        Ok(Summary {
            evolution_id: self.id.clone(),
            solved: self.solved(),
            generalises,
            generations: self.generation,
            evaluations: self.tally.evaluations,
            best: b,
            best_module: best.bytes.to_vec(),
            culled: self.culled.clone(),
            quarantined: self.tally.quarantined,
            quarantine_withheld: self.tally.quarantine_withheld,
            valid_share: if self.tally.produced == 0 {
                1.0
            } else {
                1.0 - self.tally.invalid as f64 / self.tally.produced as f64
            },
            history: self.history.clone(),
            stopped,
        })
    }

    /// The best individual's record, its test error measured on the held-out cases,
    /// and whether it is exact on every one of them.
    fn best_record(&self, best: &Individual) -> (Best, bool) {
        let test = (!self.task.test_cases.is_empty())
            .then(|| score_cases(&self.sandbox, &self.task, &best.bytes, None, true).ok())
            .flatten();
        let generalises = test
            .as_ref()
            .is_some_and(|s| s.exhausted == 0 && s.errors.iter().all(|e| *e == 0.0));
        let record = Best {
            agent_id: best.id.clone(),
            train_error: best.train_error(),
            test_error: test.map(|s| s.mean),
            size_bytes: best.bytes.len(),
        };
        (record, generalises)
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
            tally: self.tally,
            sandbox: self.sandbox.clone(),
            store: self.store.clone(),
            task: self.task.clone(),
            proposed: self
                .population
                .iter()
                .filter_map(|i| self.proposed_by(&i.id).map(|w| (i.id.clone(), w)))
                .collect(),
            proposals: self
                .proposals
                .as_ref()
                .map(|_| self.proposal_total)
                .or((self.proposal_total != ProposalStats::default())
                    .then_some(self.proposal_total)),
            head: self.head.clone(),
            evaluated: std::mem::take(&mut self.evaluated_now),
        }
    }
}
