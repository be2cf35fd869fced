//! `tdev evolve --task T [--seed N] [--generations G] [--population P]
//! [--selection S [--downsample F]] [--straight-line | --control-flow] [--seed-agent FILE]…
//! [--resume ID] [--store URI] [--out FILE] [--json]`

use crate::common::{load_policy, open_store, print_json, read_module};
use crate::report::{BestReport, EvolveReport};
use anyhow::{Context, Result, bail};
use engine::evolve::{Evolution, EvolveConfig, GenerationStats};
use engine::store::{BlobStore, Bucket};
use engine::task::Task;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The parameters of a new evolution, shared by `tdev evolve` and `tdev submit`.
#[derive(clap::Args)]
pub struct GaArgs {
    /// Seed of every random choice (default 1).
    #[arg(long)]
    seed: Option<u64>,
    /// Generations after the initial one.
    #[arg(long)]
    generations: Option<u32>,
    /// Population size (of each island, with --islands).
    #[arg(long)]
    population: Option<usize>,
    /// How parents are chosen: tournament, lexicase, epsilon-lexicase or
    /// downsampled-lexicase (default: lexicase for integer tasks, epsilon-lexicase for
    /// tasks with an f64).
    #[arg(long)]
    selection: Option<engine::evolve::Selection>,
    /// The share of training cases down-sampled lexicase uses per generation, in
    /// (0, 1] (default 0.25).
    #[arg(long)]
    downsample: Option<f64>,
    /// Breed straight-line code only: no loops, conditionals or extra locals (the
    /// default for tasks with an f64).
    #[arg(long = "straight-line", conflicts_with = "control_flow")]
    straight_line: bool,
    /// Breed loops, conditionals and extra locals (the default for integer tasks).
    #[arg(long = "control-flow")]
    control_flow: bool,
}

impl GaArgs {
    /// Whether a parameter that a resumed evolution keeps was given (all but the
    /// generations).
    fn fixes_the_run(&self) -> bool {
        self.seed.is_some()
            || self.population.is_some()
            || self.selection.is_some()
            || self.downsample.is_some()
            || self.straight_line
            || self.control_flow
    }

    /// The configuration for `task`: its kind's defaults, then what was given.
    pub fn config(&self, task: &Task) -> Result<EvolveConfig> {
        let mut config = EvolveConfig::for_task(task);
        config.seed = self.seed.unwrap_or(1);
        if let Some(g) = self.generations {
            config.generations = g;
        }
        if let Some(p) = self.population {
            if p < 2 {
                bail!("--population must be at least 2");
            }
            config.population = p;
        }
        if let Some(s) = self.selection {
            config.selection = s;
        }
        if let Some(d) = self.downsample {
            // `Evolution::start` (and `submit`) refuse a share outside (0, 1].
            config.downsample = d;
        }
        if self.straight_line {
            config.control_flow = false;
        } else if self.control_flow {
            config.control_flow = true;
        }
        Ok(config)
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// The task (fixtures/tasks/*.toml or .json). Not needed with --resume.
    #[arg(long)]
    task: Option<PathBuf>,
    #[command(flatten)]
    ga: GaArgs,
    /// A module to put in the initial population (typed act of the task's signature).
    #[arg(long = "seed-agent")]
    seed_agents: Vec<PathBuf>,
    /// Carry on an evolution from its last complete generation.
    #[arg(long)]
    resume: Option<String>,
    /// Worker threads for evaluation (the result does not depend on it).
    #[arg(long)]
    threads: Option<usize>,
    /// Policy file (default: the built-in policies/default.toml; with --resume, the
    /// policy the evolution was started under, and a different one is refused).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Send alerts (quarantines, limit hits over a rate, solved, stalled, failed) as
    /// this file's rules say (default: $TDEV_ALERTS; see docs/operations.md).
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// The store (default file://.tdev).
    #[arg(long)]
    store: Option<String>,
    /// Also take candidates from a proposer: `command:PROGRAM ARGS…` (JSON on stdin
    /// and stdout), `bedrock:MODEL_ID` (Amazon Bedrock's Converse API) or `openai:URL`
    /// (a chat completions server); see docs/proposers.md.
    #[arg(long, value_name = "SPEC")]
    proposer: Option<String>,
    /// The most of each generation's offspring taken from proposals (0 to 1).
    #[arg(long = "proposer-share", default_value_t = 0.1, requires = "proposer")]
    proposer_share: f64,
    /// Wait for each generation's proposals (at most the policy's [proposer]
    /// timeout_ms): the same seed and a deterministic proposer give the same run.
    #[arg(long = "proposer-sync", requires = "proposer")]
    proposer_sync: bool,
    /// An environment variable to pass on to a command proposer (repeatable; it gets
    /// no other).
    #[arg(long = "proposer-env", value_name = "NAME", requires = "proposer")]
    proposer_env: Vec<String>,
    /// Write the best module here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Watches the store for a stop request newer than `since`.
fn watch_stop(
    store: Arc<dyn BlobStore>,
    since: String,
    flag: Arc<AtomicBool>,
    handle: runtime::StopHandle,
    done: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            // A read that fails is tried again at the next poll.
            if let Ok(Some(at)) = engine::control::stop_requested_at(store.as_ref())
                && at > since
            {
                flag.store(true, Ordering::SeqCst);
                handle.stop();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// `tdev evolve`: 0 when the evolution ran (solved or not).
pub fn exec(args: Args) -> Result<u8> {
    let started = Instant::now();
    let since = engine::time::now_rfc3339();
    let store = open_store(args.store.as_deref())?;
    // A resume runs under the evolution's own policy unless one is given (which must be
    // the same).
    let stored = match (&args.resume, &args.policy) {
        (Some(id), None) => Evolution::stored_policy(store.as_ref(), id)
            .with_context(|| format!("cannot resume {}", runtime::escape(id)))?,
        _ => None,
    };
    let policy = match stored {
        Some(p) => p,
        None => load_policy(args.policy.as_deref())?,
    };
    // Evolution compiles many small short-lived modules: compile for speed of
    // compilation. The policy's limits are the same on this path.
    let sandbox =
        runtime::Sandbox::with_config(policy, runtime::SandboxConfig::new().fast_compile(true))
            .context("cannot start the sandbox")?;
    let alerts = crate::common::alerts(args.alerts.as_deref())?;
    let evo = start(&args, sandbox.clone(), store.clone());
    let mut evo = match evo {
        Ok(e) => e,
        Err(e) => {
            alert_failed(alerts.get(), args.resume.as_deref(), &e);
            return Err(e);
        }
    };
    if let Some(spec) = &args.proposer {
        if !(0.0..=1.0).contains(&args.proposer_share) {
            bail!("--proposer-share is between 0 and 1");
        }
        let proposer =
            engine::propose::from_spec(spec, &args.proposer_env, &sandbox.policy().proposer)?;
        evo.set_proposer(engine::evolve::ProposerSetup {
            proposer: proposer.into(),
            share: args.proposer_share,
            sync: args.proposer_sync,
        })?;
    }
    let done = Arc::new(AtomicBool::new(false));
    watch_stop(
        store.clone(),
        since,
        evo.stop_flag(),
        sandbox.stop_handle(),
        done.clone(),
    );
    let tty = std::io::stderr().is_terminal();
    let t0 = Instant::now();
    let base = evo.evaluations();
    let limit = evo.generations_limit().max(1);
    let id = evo.id().to_string();
    let mut watch = engine::alerts::EvolutionWatch::default();
    // A fresh evolution's generation 0 was scored as it started: its alerts now.
    if let Some(a) = alerts.get()
        && args.resume.is_none()
    {
        let logs = engine::evolve::fitness_logs(store.as_ref(), &id)
            .context("cannot read generation 0's fitness log")?;
        for s in &logs {
            alert_generation(a, &mut watch, &id, s);
        }
    }
    let progress = |s: &GenerationStats| {
        if let Some(a) = alerts.get() {
            alert_generation(a, &mut watch, &id, s);
        }
        let rate = (s.evaluations - base) as f64 / t0.elapsed().as_secs_f64().max(1e-6);
        let culled: Vec<String> = s.culled.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let filled = (u64::from(s.generation.min(limit)) * 20 / u64::from(limit)) as usize;
        let line = format!(
            "[{}{}] gen {:>4}/{limit}  best {:<11} mean {:<11} evals {:>8} ({:>6.0}/s)  size {:>4}  culled [{}]",
            "#".repeat(filled),
            ".".repeat(20 - filled),
            s.generation,
            short(s.best_error),
            short(s.mean_error),
            s.evaluations,
            rate,
            s.best_size,
            culled.join(" ")
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    };
    let summary = evo.run(progress);
    done.store(true, Ordering::SeqCst);
    if tty {
        eprintln!();
    }
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            let e = anyhow::Error::new(e);
            alert_failed(alerts.get(), Some(&id), &e);
            return Err(e);
        }
    };
    if summary.solved
        && let Some(a) = alerts.get()
    {
        a.emit(engine::alerts::Event::new(
            engine::alerts::EventKind::Solved,
            SOURCE,
            format!(
                "evolution {} solved in generation {}: best train error {}",
                summary.evolution_id, summary.generations, summary.best.train_error
            ),
            serde_json::json!({
                "evolution_id": summary.evolution_id,
                "generation": summary.generations,
                "best_agent_id": summary.best.agent_id,
                "train_error": engine::alerts::finite(summary.best.train_error),
            }),
        ));
    }
    report(&args, &store, &summary, started)
}

/// What `tdev evolve` says its alerts come from.
const SOURCE: &str = "tdev evolve";

/// The alerts of one generation: its quarantines, its limit hits, a stall.
fn alert_generation(
    a: &engine::alerts::Alerts,
    watch: &mut engine::alerts::EvolutionWatch,
    id: &str,
    s: &GenerationStats,
) {
    if s.quarantined > 0 {
        a.emit(engine::alerts::Event::new(
            engine::alerts::EventKind::Quarantine,
            SOURCE,
            format!(
                "evolution {id} generation {}: {} module(s) quarantined",
                s.generation, s.quarantined
            ),
            serde_json::json!({
                "evolution_id": id,
                "generation": s.generation,
                "count": s.quarantined,
            }),
        ));
    }
    let hits: u64 = s
        .culled
        .iter()
        .filter(|(k, _)| matches!(k, engine::words::Cull::Trap(o) if o.is_limit()))
        .map(|(_, n)| n)
        .sum();
    a.limit_hits(hits, SOURCE);
    watch.generation(a, SOURCE, id, s.generation, s.best_error);
}

/// The `failed` alert of an evolution that could not start or go on.
fn alert_failed(alerts: Option<&engine::alerts::Alerts>, id: Option<&str>, e: &anyhow::Error) {
    if let Some(a) = alerts {
        let error = crate::common::error_line(e);
        a.emit(engine::alerts::Event::new(
            engine::alerts::EventKind::Failed,
            SOURCE,
            format!(
                "evolution {} failed: {error}",
                id.unwrap_or("(not started)")
            ),
            serde_json::json!({ "evolution_id": id, "error": error }),
        ));
    }
}

/// The evolution `tdev evolve` runs: resumed, or started from the task.
fn start(
    args: &Args,
    sandbox: runtime::Sandbox,
    store: Arc<dyn engine::store::BlobStore>,
) -> Result<Evolution> {
    Ok(match (&args.resume, &args.task) {
        (Some(id), _) => {
            if args.task.is_some() || args.ga.fixes_the_run() || !args.seed_agents.is_empty() {
                bail!(
                    "--resume carries on with the evolution's own task, seed, population, \
                     selection and genome"
                );
            }
            Evolution::resume(
                sandbox.clone(),
                store.clone(),
                id,
                args.ga.generations,
                args.threads,
            )
            .map_err(|e| match e.kind() {
                // It names the evolution and the store.
                engine::ErrorKind::NotFound(_) => anyhow::Error::new(e).context("cannot resume"),
                _ => {
                    anyhow::Error::new(e).context(format!("cannot resume {}", runtime::escape(id)))
                }
            })?
        }
        (None, Some(task)) => {
            let task = Task::from_file(task).with_context(|| format!("task {}", task.display()))?;
            let mut config = args.ga.config(&task)?;
            if let Some(t) = args.threads {
                config.threads = t.max(1);
            }
            let seeds = args
                .seed_agents
                .iter()
                .map(|p| read_module(p))
                .collect::<Result<Vec<_>>>()?;
            Evolution::start(sandbox.clone(), store.clone(), task, config, seeds)
                .context("cannot start the evolution")?
        }
        (None, None) => bail!("give --task FILE (or --resume ID)"),
    })
}

/// Writes the plot and the best module, and prints the report.
fn report(
    args: &Args,
    store: &Arc<dyn engine::store::BlobStore>,
    summary: &engine::evolve::Summary,
    started: Instant,
) -> Result<u8> {
    let logs = engine::evolve::fitness_logs(store.as_ref(), &summary.evolution_id)
        .context("cannot read the fitness logs for the plot")?;
    let plot = crate::plot::svg(&logs);
    let plot_key = format!("fitness_logs/{}/plot.svg", summary.evolution_id);
    store.put(Bucket::Evolution, &plot_key, plot.as_bytes())?;
    if let Some(out) = &args.out {
        std::fs::write(out, &summary.best_module)
            .with_context(|| format!("cannot write {}", out.display()))?;
        let svg = out.with_extension("svg");
        std::fs::write(&svg, &plot).with_context(|| format!("cannot write {}", svg.display()))?;
    }
    let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if args.json {
        print_json(&EvolveReport {
            evolution_id: summary.evolution_id.clone(),
            solved: summary.solved,
            generations: summary.generations,
            evaluations: summary.evaluations,
            wall_ms,
            generalises: summary.generalises,
            best: BestReport {
                agent_id: summary.best.agent_id.clone(),
                train_error: summary.best.train_error,
                test_error: summary.best.test_error,
                size_bytes: summary.best.size_bytes,
            },
            culled: summary.culled.clone(),
            quarantined: summary.quarantined,
            valid_share: summary.valid_share,
            stopped: summary.stopped,
            plot: format!("{}/evolution/{plot_key}", store.describe()),
        })?;
    } else {
        println!("evolution:  {}", summary.evolution_id);
        println!(
            "result:     {}{} after {} generations, {} evaluations, {} ms{}",
            if summary.solved {
                "solved"
            } else {
                "not solved"
            },
            if summary.generalises {
                ", generalises"
            } else {
                ""
            },
            summary.generations,
            summary.evaluations,
            wall_ms,
            if summary.stopped { " (stopped)" } else { "" }
        );
        println!(
            "best:       {} ({} bytes) train error {} test error {}",
            summary.best.agent_id,
            summary.best.size_bytes,
            summary.best.train_error,
            summary
                .best
                .test_error
                .map_or_else(|| "-".to_string(), |e| e.to_string())
        );
        println!(
            "offspring:  {:.2}% valid; culled {:?}; quarantined {}",
            summary.valid_share * 100.0,
            summary.culled,
            summary.quarantined
        );
        if let Some(out) = &args.out {
            println!(
                "written:    {} and its plot {}",
                out.display(),
                out.with_extension("svg").display()
            );
        }
    }
    Ok(0)
}

/// An error for the progress line: plain decimals when readable, else scientific.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:.3e}")
    } else {
        format!("{v:.6}")
    }
}

/// `tdev stop`: every running evolve on the store halts.
pub fn stop(store: Option<&str>, alerts: Option<&std::path::Path>) -> Result<u8> {
    let alerts = crate::common::alerts(alerts)?;
    let store = open_store(store)?;
    let at = engine::control::request_stop(store.as_ref())?;
    if let Some(a) = alerts.get() {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        a.emit(crate::common::stop_alert("tdev stop", &user, &at));
    }
    println!(
        "stop requested: running evolutions halt after their current generation; \
         workers take no job until `tdev resume`"
    );
    Ok(0)
}
