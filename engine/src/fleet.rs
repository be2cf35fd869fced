//! A fleet of workers sharing evolutions through a queue and a store: `tdev submit`
//! sends jobs, any number of `tdev worker` processes take them one at a time. A job
//! names what to do; everything else is in the store, so a worker keeps nothing between
//! jobs and any worker can redo any job.
//!
//! Delivery is at least once and effects exactly once: a worker extends its job's
//! visibility while it works, a job whose worker died reappears and is redone from what
//! the store has committed, and every commit is conditional (a generation's checkpoint,
//! an island epoch's state row). A job that fails is recorded (`tdev evolutions` shows
//! `failed` with the error) and tried again until the queue moves it to its dead-letter
//! queue.

use crate::control;
use crate::error::{ErrorKind, Result, chain, panic_message};
use crate::evolve::islands::{self, EpochEnd, IslandPlan};
use crate::evolve::{self, Evolution, EvolveConfig, JobFailure};
use crate::queue::{Queue, Received};
use crate::store::BlobStore;
use crate::task::Task;
use crate::time::now_rfc3339;
use runtime::Sandbox;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A job on the queue (JSON, `kind` first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// A whole evolution, from its head (or its start) to its end.
    Evolution {
        /// The evolution, prepared in the store.
        evolution_id: String,
    },
    /// One epoch of one island of an island evolution.
    Epoch {
        /// The island evolution.
        evolution_id: String,
        /// The island (0-based).
        island: u32,
        /// The epoch (0-based).
        epoch: u32,
    },
}

impl Job {
    /// The evolution the job is part of.
    pub fn evolution_id(&self) -> &str {
        match self {
            Job::Evolution { evolution_id } | Job::Epoch { evolution_id, .. } => evolution_id,
        }
    }

    /// The island of an epoch job.
    pub fn island(&self) -> Option<u32> {
        match self {
            Job::Evolution { .. } => None,
            Job::Epoch { island, .. } => Some(*island),
        }
    }

    fn body(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| {
            ErrorKind::Encode {
                what: "a job".into(),
                source: e,
            }
            .into()
        })
    }
}

/// Prepares an evolution in the store and sends its jobs: one job for an evolution of
/// one population, one job per island (epoch 0) for an island evolution. Returns the
/// evolution's id.
pub fn submit(
    store: &dyn BlobStore,
    queue: &Queue,
    task: &Task,
    config: &EvolveConfig,
    plan: Option<&IslandPlan>,
) -> Result<String> {
    if config.population < 2 || config.tournament == 0 {
        return Err(ErrorKind::Config("population ≥ 2 and tournament ≥ 1").into());
    }
    if !(config.downsample > 0.0 && config.downsample <= 1.0) {
        return Err(ErrorKind::Config("a down-sample share in (0, 1]").into());
    }
    match plan {
        None => {
            let id = Evolution::prepare(store, task, config)?;
            queue.send(
                &Job::Evolution {
                    evolution_id: id.clone(),
                }
                .body()?,
                Duration::ZERO,
            )?;
            Ok(id)
        }
        Some(plan) => {
            let id = islands::prepare_islands(store, task, config, plan)?;
            for island in 0..plan.islands {
                send_epoch(store, queue, &id, island, 0)?;
            }
            Ok(id)
        }
    }
}

/// Sends the job of epoch `epoch` of island `island`, unless it was sent already.
pub fn send_epoch(
    store: &dyn BlobStore,
    queue: &Queue,
    id: &str,
    island: u32,
    epoch: u32,
) -> Result<()> {
    let job = Job::Epoch {
        evolution_id: id.to_string(),
        island,
        epoch,
    };
    islands::enqueue_once(store, id, island, epoch, || {
        queue.send(&job.body()?, Duration::ZERO).map(|_| ())
    })
}

/// How a worker works.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How long a received job stays invisible to other workers; extended every third
    /// of it while the job runs. A worker that dies leaves its job to reappear after
    /// this long.
    pub visibility: Duration,
    /// How long one receive waits for a job (at most 5 s).
    pub wait: Duration,
    /// How long an epoch that waits for its neighbour's migrants stays off the queue
    /// before it is tried again, and how long a failed job does before its next
    /// delivery.
    pub retry_delay: Duration,
    /// Scoring threads (`None`: the evolution's own setting).
    pub threads: Option<usize>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            visibility: Duration::from_secs(60),
            wait: Duration::from_secs(5),
            retry_delay: Duration::from_secs(2),
            threads: None,
        }
    }
}

/// What a worker did with one job.
#[derive(Clone, Debug, PartialEq)]
pub enum Handled {
    /// A whole evolution ran to its end.
    Evolved {
        /// Whether it solved the task.
        solved: bool,
        /// Its last generation.
        generation: u32,
        /// Its best agent.
        best_agent_id: crate::AgentId,
    },
    /// An island's epoch is committed (now or before).
    Epoch {
        /// The island's best train error.
        best_error: f64,
        /// Whether the island solved the task.
        solved: bool,
        /// The next epoch sent, if any.
        next: Option<u32>,
        /// The evolution's result, when this job ended it.
        finished: Option<islands::IslandResult>,
    },
    /// The epoch waits for its neighbour's migrants: sent again with a delay.
    Waiting,
    /// The evolution had ended before this job: deleted.
    Ended,
    /// A stop request halted the job: sent again, to run after a resume.
    Stopped,
    /// The job failed: recorded, left to be delivered again (or to the dead-letter
    /// queue).
    Failed(String),
}

/// One job taken from the queue and what became of it.
#[derive(Clone, Debug)]
pub struct Report {
    /// The job, `None` when its body was not a job.
    pub job: Option<Job>,
    /// The message's id.
    pub message_id: String,
    /// Its deliveries, this one included.
    pub receive_count: u32,
    /// What became of it.
    pub handled: Handled,
    /// How long it took.
    pub elapsed: Duration,
}

/// What one call of [`Worker::step`] saw.
#[derive(Clone, Debug)]
pub enum Step {
    /// No job came within the wait.
    Idle,
    /// The store is stopped (since the time given): no job taken.
    Halted(String),
    /// A job was taken.
    Job(Box<Report>),
}

/// A stateless worker: a sandbox, a store and a queue.
pub struct Worker {
    sandbox: Sandbox,
    store: Arc<dyn BlobStore>,
    queue: Queue,
    /// The watcher's own client of the queue (the job's thread is busy with the
    /// other), shared by the watchers of every job.
    watch_queue: Arc<Queue>,
    config: WorkerConfig,
}

impl Worker {
    /// A worker of `queue` on `store`.
    pub fn new(
        sandbox: Sandbox,
        store: Arc<dyn BlobStore>,
        queue: Queue,
        config: WorkerConfig,
    ) -> Result<Worker> {
        let watch_queue = Arc::new(Queue::open(queue.url())?);
        Ok(Worker {
            sandbox,
            store,
            queue,
            watch_queue,
            config,
        })
    }

    /// Takes at most one job and deals with it, unless the store is stopped.
    pub fn step(&self) -> Result<Step> {
        if let Some(since) = control::halted_since(self.store.as_ref())? {
            std::thread::sleep(self.config.wait.min(Duration::from_secs(1)));
            return Ok(Step::Halted(since));
        }
        let Some(msg) = self
            .queue
            .receive(self.config.wait, self.config.visibility)?
        else {
            return Ok(Step::Idle);
        };
        let started = Instant::now();
        let parsed = serde_json::from_str::<Job>(&msg.body);
        let handled = match &parsed {
            Err(e) => Err(ErrorKind::Job(e.to_string()).into()),
            Ok(job) => self.run_held(job, &msg),
        };
        let job = parsed.ok();
        let handled = self.settle(job.as_ref(), &msg, handled)?;
        Ok(Step::Job(Box::new(Report {
            job,
            message_id: msg.message_id,
            receive_count: msg.receive_count,
            handled,
            elapsed: started.elapsed(),
        })))
    }

    /// Runs a job while a watcher extends its visibility and halts it on a stop
    /// request; a panic is the job's failure, not the worker's.
    fn run_held(&self, job: &Job, msg: &Received) -> Result<Handled> {
        let done = Arc::new(AtomicBool::new(false));
        let attached: Arc<Mutex<Option<Arc<AtomicBool>>>> = Arc::new(Mutex::new(None));
        let stopped = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (done, attached, stopped) = (done.clone(), attached.clone(), stopped.clone());
            let store = self.store.clone();
            let handle = self.sandbox.stop_handle();
            let queue = self.watch_queue.clone();
            let receipt = msg.receipt.clone();
            let visibility = self.config.visibility;
            std::thread::Builder::new()
                .name("tdev-job-watch".into())
                .spawn(move || {
                    watch(
                        store, handle, queue, receipt, visibility, done, attached, stopped,
                    )
                })
                .map_err(|source| ErrorKind::ThreadStart {
                    thread: "tdev-job-watch".into(),
                    source,
                })?
        };
        let attach = |flag: Arc<AtomicBool>| {
            let mut slot = attached.lock().unwrap_or_else(|p| p.into_inner());
            if stopped.load(Ordering::SeqCst) {
                flag.store(true, Ordering::SeqCst);
            }
            *slot = Some(flag);
        };
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(job, &attach)))
                .unwrap_or_else(|p| {
                    Err(ErrorKind::ThreadPanicked {
                        thread: "tdev worker".into(),
                        doing: "a job".into(),
                        message: panic_message(p.as_ref()),
                    }
                    .into())
                });
        done.store(true, Ordering::SeqCst);
        if let Err(p) = watcher.join() {
            return Err(ErrorKind::ThreadPanicked {
                thread: "tdev-job-watch".into(),
                doing: "holding a job".into(),
                message: panic_message(p.as_ref()),
            }
            .into());
        }
        if stopped.load(Ordering::SeqCst)
            && !matches!(
                result,
                Ok(Handled::Epoch { .. } | Handled::Evolved { .. } | Handled::Ended)
            )
        {
            return Ok(Handled::Stopped);
        }
        result
    }

    fn run(&self, job: &Job, attach: &dyn Fn(Arc<AtomicBool>)) -> Result<Handled> {
        let store = self.store.clone();
        match job {
            Job::Evolution { evolution_id: id } => {
                crate::store::check_key(id)?;
                let mut evo = match evolve::head_generation(store.as_ref(), id) {
                    Ok(_) => Evolution::resume(
                        self.sandbox.clone(),
                        store,
                        id,
                        None,
                        self.config.threads,
                    )?,
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound(_)) => {
                        let mut prepared = Evolution::stored(store.as_ref(), id)?;
                        if let Some(t) = self.config.threads {
                            prepared.config.threads = t.max(1);
                        }
                        Evolution::start_prepared(
                            self.sandbox.clone(),
                            store,
                            prepared,
                            Vec::new(),
                        )?
                    }
                    Err(e) => return Err(e),
                };
                attach(evo.stop_flag());
                let s = evo.run(|_| {})?;
                if s.stopped {
                    return Ok(Handled::Stopped);
                }
                Ok(Handled::Evolved {
                    solved: s.solved,
                    generation: s.generations,
                    best_agent_id: s.best.agent_id,
                })
            }
            Job::Epoch {
                evolution_id: id,
                island,
                epoch,
            } => {
                let end = islands::run_epoch(
                    self.sandbox.clone(),
                    store.clone(),
                    id,
                    *island,
                    *epoch,
                    self.config.threads,
                    attach,
                )?;
                Ok(match end {
                    EpochEnd::Committed {
                        best_error,
                        solved,
                        next,
                    } => {
                        let finished = match next {
                            Some(e) => {
                                send_epoch(store.as_ref(), &self.queue, id, *island, e)?;
                                None
                            }
                            None => islands::finish(store.as_ref(), id)?,
                        };
                        Handled::Epoch {
                            best_error,
                            solved,
                            next,
                            finished,
                        }
                    }
                    EpochEnd::Waiting => Handled::Waiting,
                    EpochEnd::Ended => Handled::Ended,
                    EpochEnd::Stopped => Handled::Stopped,
                })
            }
        }
    }

    /// Deletes, sends again or leaves the message as the outcome asks, and records or
    /// clears the job's failure.
    fn settle(
        &self,
        job: Option<&Job>,
        msg: &Received,
        outcome: Result<Handled>,
    ) -> Result<Handled> {
        let store = self.store.as_ref();
        match outcome {
            Ok(h @ (Handled::Evolved { .. } | Handled::Epoch { .. } | Handled::Ended)) => {
                if let Some(job) = job {
                    evolve::clear_failure(store, job.evolution_id(), job.island())?;
                }
                self.queue.delete(&msg.receipt)?;
                Ok(h)
            }
            Ok(h @ (Handled::Waiting | Handled::Stopped)) => {
                // A fresh copy, so that waiting or a stop does not count as a failed
                // delivery; a crash between the two leaves a twin, which finds the
                // work committed.
                let delay = if h == Handled::Waiting {
                    self.config.retry_delay
                } else {
                    Duration::ZERO
                };
                self.queue.send(&msg.body, delay)?;
                self.queue.delete(&msg.receipt)?;
                Ok(h)
            }
            Ok(Handled::Failed(e)) => self.fail(job, msg, e),
            Err(e) => self.fail(job, msg, chain(&e)),
        }
    }

    fn fail(&self, job: Option<&Job>, msg: &Received, error: String) -> Result<Handled> {
        let failure = JobFailure {
            error: error.clone(),
            job: msg.body.chars().take(1024).collect(),
            receive_count: msg.receive_count,
            at: now_rfc3339(),
        };
        // Recorded with an evolution that is in the store (one whose task or setup does
        // not read included); a job naming none gets no record (the error is still the
        // worker's report, and the job still ends in the dead-letter queue).
        if let Some(job) = job
            && crate::store::check_key(job.evolution_id()).is_ok()
            && !self
                .store
                .list(
                    crate::store::Bucket::Evolution,
                    &format!("checkpoints/{}/", job.evolution_id()),
                )?
                .is_empty()
        {
            evolve::record_failure(
                self.store.as_ref(),
                job.evolution_id(),
                job.island(),
                &failure,
            )?;
        }
        // Back soon rather than after the whole visibility timeout.
        self.queue.extend(&msg.receipt, self.config.retry_delay)?;
        Ok(Handled::Failed(error))
    }
}

/// The watcher of a held job: extends its visibility every third of it, and on a stop
/// request sets the run's stop flag and interrupts the sandbox's runs (only once a run
/// is attached, so that no scoring outside a run's own check is interrupted).
#[allow(clippy::too_many_arguments)]
fn watch(
    store: Arc<dyn BlobStore>,
    handle: runtime::StopHandle,
    queue: Arc<Queue>,
    receipt: String,
    visibility: Duration,
    done: Arc<AtomicBool>,
    attached: Arc<Mutex<Option<Arc<AtomicBool>>>>,
    stopped: Arc<AtomicBool>,
) {
    let every = visibility / 3;
    let mut extended = Instant::now();
    while !done.load(Ordering::SeqCst) {
        if !stopped.load(Ordering::SeqCst)
            && let Ok(Some(_)) = control::halted_since(store.as_ref())
        {
            stopped.store(true, Ordering::SeqCst);
        }
        if stopped.load(Ordering::SeqCst) {
            let slot = attached.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(flag) = slot.as_ref()
                && !flag.swap(true, Ordering::SeqCst)
            {
                handle.stop();
            }
        }
        if extended.elapsed() >= every {
            if let Err(e) = queue.extend(&receipt, visibility) {
                eprintln!("tdev worker: cannot extend the job's visibility: {e}");
            }
            extended = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
