//! `tdev queue create|status`, `tdev submit` and `tdev worker`: evolutions shared by a
//! fleet of workers through an SQS queue and a store.

use super::evolve::GaArgs;
use crate::common::{load_policy, open_store, print_json};
use anyhow::{Context, Result, bail};
use engine::evolve::islands::IslandPlan;
use engine::fleet::{Handled, Job, Report, Step, Worker, WorkerConfig};
use engine::queue::Queue;
use engine::task::Task;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `tdev queue create` and `tdev queue status`.
#[derive(clap::Subcommand)]
pub enum QueueAction {
    /// Create (or find) a job queue and its dead-letter queue `NAME-dead`; print the
    /// queue's URL (and the dead-letter queue's on stderr, or both with --json).
    Create {
        /// The queue's name.
        name: String,
        /// Deliveries of a job before it moves to the dead-letter queue (default 5).
        #[arg(long = "max-receives", default_value_t = 5)]
        max_receives: u32,
        /// The default visibility timeout, in seconds (default 60).
        #[arg(long, default_value_t = 60)]
        visibility: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// How many jobs wait, are held by workers and are delayed.
    Status {
        /// The queue's URL.
        #[arg(long)]
        queue: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Created {
    queue_url: String,
    dead_letter_url: String,
}

#[derive(Serialize)]
struct Depth {
    waiting: u64,
    in_flight: u64,
    delayed: u64,
}

/// `tdev queue …`
pub fn queue(action: QueueAction) -> Result<u8> {
    match action {
        QueueAction::Create {
            name,
            max_receives,
            visibility,
            json,
        } => {
            if name.is_empty()
                || name.len() > 75
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                bail!(
                    "a queue name is 1 to 75 of [A-Za-z0-9_-] (the dead-letter queue adds -dead)"
                );
            }
            if !(1..=1000).contains(&max_receives) {
                bail!("--max-receives must be between 1 and 1000");
            }
            if visibility > 43_200 {
                bail!("--visibility is at most 43200 seconds (12 hours)");
            }
            let (q, dead) = Queue::create(&name, max_receives, Duration::from_secs(visibility))
                .with_context(|| format!("cannot create the queue {name}"))?;
            if json {
                print_json(&Created {
                    queue_url: q.url().to_string(),
                    dead_letter_url: dead.url().to_string(),
                })?;
            } else {
                // The URL alone on stdout, for `QUEUE=$(tdev queue create NAME)`.
                println!("{}", q.url());
                eprintln!(
                    "tdev: dead-letter queue {} (after {max_receives} deliveries)",
                    dead.url()
                );
            }
        }
        QueueAction::Status { queue, json } => {
            let d = Queue::open(&queue)?
                .depth()
                .with_context(|| format!("cannot read {queue}"))?;
            if json {
                print_json(&Depth {
                    waiting: d.waiting,
                    in_flight: d.in_flight,
                    delayed: d.delayed,
                })?;
            } else {
                println!(
                    "{} waiting, {} held by workers, {} delayed",
                    d.waiting, d.in_flight, d.delayed
                );
            }
        }
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The task (fixtures/tasks/*.toml or .json).
    #[arg(long)]
    task: PathBuf,
    #[command(flatten)]
    ga: GaArgs,
    /// The queue's URL (`tdev queue create` prints it).
    #[arg(long)]
    queue: String,
    /// The store the workers share (default file://.tdev: workers on this machine only).
    #[arg(long)]
    store: Option<String>,
    /// Run as an island evolution of this many islands (1–1000), each of --population.
    #[arg(long)]
    islands: Option<u32>,
    /// Generations per epoch of an island evolution (default 10).
    #[arg(long = "epoch-generations", requires = "islands")]
    epoch_generations: Option<u32>,
    /// Migrants each island sends its neighbour after an epoch (default 5).
    #[arg(long, requires = "islands")]
    migrants: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Submitted {
    evolution_id: String,
    jobs: u32,
}

/// `tdev submit`: prepares the evolution in the store, sends its jobs and returns.
pub fn submit(args: SubmitArgs) -> Result<u8> {
    let task =
        Task::from_file(&args.task).with_context(|| format!("task {}", args.task.display()))?;
    let config = args.ga.config(&task)?;
    let plan = args.islands.map(|islands| IslandPlan {
        islands,
        epoch_generations: args.epoch_generations.unwrap_or(10),
        migrants: args.migrants.unwrap_or(5),
    });
    let store = open_store(args.store.as_deref())?;
    let queue = Queue::open(&args.queue)?;
    let id = engine::fleet::submit(store.as_ref(), &queue, &task, &config, plan.as_ref())
        .context("cannot submit the evolution")?;
    let jobs = plan.map_or(1, |p| p.islands);
    if args.json {
        print_json(&Submitted {
            evolution_id: id,
            jobs,
        })?;
    } else {
        println!("submitted {id}: {jobs} job(s) on {}", args.queue);
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The queue's URL.
    #[arg(long)]
    queue: String,
    /// The store (default file://.tdev).
    #[arg(long)]
    store: Option<String>,
    /// Send alerts (a job failed, an evolution solved) as this file's rules say
    /// (default: $TDEV_ALERTS; see docs/operations.md).
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// Policy file (default: the built-in policies/default.toml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Scoring threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds a job stays hidden from other workers, extended every third of it while
    /// it runs: how long a dead worker's job takes to reappear (default 60).
    #[arg(long, default_value_t = 60)]
    visibility: u64,
    /// Seconds before an epoch waiting for migrants, or a failed job, is tried again
    /// (default 2).
    #[arg(long = "retry-delay", default_value_t = 2)]
    retry_delay: u64,
    /// Exit (0) after this many seconds without a job (default: never).
    #[arg(long = "idle-exit")]
    idle_exit: Option<u64>,
    /// Exit (0) after this many jobs (default: never).
    #[arg(long = "max-jobs")]
    max_jobs: Option<u64>,
    /// Print one JSON object per job, one per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct JobLine {
    message_id: String,
    receive_count: u32,
    job: Option<Job>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    solved: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    best_agent_id: Option<engine::AgentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_epoch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished: Option<engine::evolve::islands::IslandResult>,
    elapsed_ms: u64,
}

fn line(r: &Report) -> JobLine {
    let mut l = JobLine {
        message_id: r.message_id.clone(),
        receive_count: r.receive_count,
        job: r.job.clone(),
        outcome: "",
        error: None,
        solved: None,
        best_agent_id: None,
        next_epoch: None,
        finished: None,
        elapsed_ms: u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
    };
    match &r.handled {
        Handled::Evolved {
            solved,
            best_agent_id,
            ..
        } => {
            l.outcome = "evolved";
            l.solved = Some(*solved);
            l.best_agent_id = Some(best_agent_id.clone());
        }
        Handled::Epoch {
            solved,
            next,
            finished,
            ..
        } => {
            l.outcome = "committed";
            l.solved = Some(*solved);
            l.next_epoch = *next;
            l.finished = finished.clone();
        }
        Handled::Waiting => l.outcome = "waiting",
        Handled::Ended => l.outcome = "ended",
        Handled::Stopped => l.outcome = "stopped",
        Handled::Failed(e) => {
            l.outcome = "failed";
            l.error = Some(e.clone());
        }
    }
    l
}

/// What a worker's alerts say they come from.
const SOURCE: &str = "tdev worker";

/// The alerts of a job: its failure, or the evolution it solved.
fn alert_job(a: &engine::alerts::Alerts, r: &Report) {
    use engine::alerts::{Event, EventKind, finite};
    let id = r.job.as_ref().map(|j| j.evolution_id().to_string());
    match &r.handled {
        Handled::Failed(e) => a.emit(Event::new(
            EventKind::Failed,
            SOURCE,
            format!(
                "a job of evolution {} failed (delivery {}): {e}",
                id.as_deref().unwrap_or("(not a job)"),
                r.receive_count
            ),
            serde_json::json!({
                "evolution_id": id,
                "island": r.job.as_ref().and_then(|j| j.island()),
                "receive_count": r.receive_count,
                "error": e,
            }),
        )),
        Handled::Evolved {
            solved: true,
            generation,
            best_agent_id,
        } => a.emit(Event::new(
            EventKind::Solved,
            SOURCE,
            format!(
                "evolution {} solved in generation {generation}",
                id.as_deref().unwrap_or("?")
            ),
            serde_json::json!({
                "evolution_id": id,
                "generation": generation,
                "best_agent_id": best_agent_id,
            }),
        )),
        Handled::Epoch {
            finished: Some(res),
            ..
        } if res.status == engine::words::RunStatus::Solved => a.emit(Event::new(
            EventKind::Solved,
            SOURCE,
            format!(
                "island evolution {} solved at epoch {} (generation {})",
                res.evolution_id, res.epoch, res.generation
            ),
            serde_json::json!({
                "evolution_id": res.evolution_id,
                "generation": res.generation,
                "best_agent_id": res.best_agent_id,
                "train_error": finite(res.best_error),
            }),
        )),
        _ => {}
    }
}

/// `tdev worker`: takes jobs one at a time until killed (or idle, or done with
/// `--max-jobs`).
pub fn worker(args: WorkerArgs) -> Result<u8> {
    if args.visibility < 3 || args.visibility > 43_200 {
        bail!("--visibility must be between 3 and 43200 seconds");
    }
    if args.retry_delay > 900 {
        bail!("--retry-delay is at most 900 seconds (SQS's longest delay)");
    }
    let policy = load_policy(args.policy.as_deref())?;
    let sandbox =
        runtime::Sandbox::with_config(policy, runtime::SandboxConfig::new().fast_compile(true))
            .context("cannot start the sandbox")?;
    let store = open_store(args.store.as_deref())?;
    let alerts = crate::common::alerts(args.alerts.as_deref())?;
    let queue = Queue::open(&args.queue)?;
    let worker = Worker::new(
        sandbox,
        store,
        queue,
        WorkerConfig {
            visibility: Duration::from_secs(args.visibility),
            wait: Duration::from_secs(2),
            retry_delay: Duration::from_secs(args.retry_delay),
            threads: Some(
                args.threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            ),
        },
    )
    .context("cannot start the worker")?;
    let mut idle_since = Instant::now();
    let mut jobs = 0u64;
    let mut halted_shown = false;
    loop {
        if args.max_jobs.is_some_and(|m| jobs >= m) {
            return Ok(0);
        }
        match worker.step().context("the queue or the store failed")? {
            Step::Idle => {
                if args
                    .idle_exit
                    .is_some_and(|s| idle_since.elapsed() >= Duration::from_secs(s))
                {
                    return Ok(0);
                }
            }
            Step::Halted(since) => {
                if !halted_shown {
                    eprintln!(
                        "tdev worker: the store is stopped since {since}: waiting for `tdev resume`"
                    );
                    halted_shown = true;
                }
                idle_since = Instant::now();
            }
            Step::Job(report) => {
                halted_shown = false;
                jobs += 1;
                if let Some(a) = alerts.get() {
                    alert_job(a, &report);
                }
                let l = line(&report);
                if args.json {
                    let text = serde_json::to_string(&l).context("cannot encode the job line")?;
                    println!("{text}");
                } else {
                    let what = match &l.job {
                        Some(Job::Evolution { evolution_id }) => evolution_id.clone(),
                        Some(Job::Epoch {
                            evolution_id,
                            island,
                            epoch,
                        }) => format!("{evolution_id} island {island} epoch {epoch}"),
                        None => "not a job".to_string(),
                    };
                    let extra = l.error.as_deref().unwrap_or("");
                    println!(
                        "{what}: {} ({} ms, delivery {}) {extra}",
                        l.outcome, l.elapsed_ms, l.receive_count
                    );
                }
                idle_since = Instant::now();
            }
        }
    }
}
