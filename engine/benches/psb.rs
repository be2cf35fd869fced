//! Program-synthesis benchmark: for each task of `fixtures/psb-reference.toml` (the
//! integer problems of PSB1, PSB2 and classic GP in `fixtures/tasks/`), runs seeds
//! 1..=N and prints a table per selection scheme: runs that generalise (exact on every
//! held-out case, PSB's success criterion) and that solve (exact on every training
//! case), the median evaluations and program executions (evaluations × training cases)
//! to the first solution, evaluations per second, and PushGP's published success rate
//! with its source.
//!
//! Run with `cargo bench -p engine --bench psb`. Knobs: `BENCH_SEEDS` (default 20),
//! `BENCH_TASKS` (comma-separated name prefixes), `BENCH_SELECTION` (comma-separated
//! schemes, default: each task's, `EvolveConfig::for_task`), `BENCH_POPULATION` (default 300),
//! `BENCH_GENERATIONS` (default 100), `BENCH_THREADS` (default: all cores), `BENCH_SHOW`
//! (set: the text form of each task's first generalising champion on stderr),
//! `BENCH_PROPOSER` (a `--proposer` spec, e.g. `command:python3
//! scripts/proposers/templates.py`, asked in sync mode with PATH passed on; paths are
//! from the repository's root) and `BENCH_PROPOSER_SHARE` (default 0.1).

use engine::evolve::{Evolution, EvolveConfig, Selection};
use engine::store::FsStore;
use engine::task::Task;
use runtime::{Policy, Sandbox};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// What `fixtures/psb-reference.toml` says of one task.
#[derive(serde::Deserialize)]
struct Reference {
    pushgp_successes: Option<u32>,
    pushgp_runs: Option<u32>,
    selection: Option<String>,
    source: Option<String>,
    note: Option<String>,
}

fn median(v: &mut [u64]) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let reference: BTreeMap<String, Reference> = toml::from_str(
        &std::fs::read_to_string(root.join("fixtures/psb-reference.toml"))
            .expect("fixtures/psb-reference.toml"),
    )
    .expect("reference table");
    let seeds: u64 = env("BENCH_SEEDS").unwrap_or(20);
    let only = std::env::var("BENCH_TASKS").ok();
    let base = EvolveConfig {
        population: env("BENCH_POPULATION").unwrap_or(300),
        generations: env("BENCH_GENERATIONS").unwrap_or(100),
        ..EvolveConfig::default()
    };
    let base = EvolveConfig {
        threads: env("BENCH_THREADS").unwrap_or(base.threads),
        ..base
    };
    let show_champions = std::env::var_os("BENCH_SHOW").is_some();
    let proposer = std::env::var("BENCH_PROPOSER").ok();
    let share: f64 = env("BENCH_PROPOSER_SHARE").unwrap_or(0.1);
    // The proposer's paths are the repository's.
    std::env::set_current_dir(&root).expect("cd to the repository");
    // `None`: each task's own scheme (`EvolveConfig::for_task`).
    let schemes: Vec<Option<Selection>> = match std::env::var("BENCH_SELECTION") {
        Ok(list) => list
            .split(',')
            .map(|s| Some(s.trim().parse().expect("a selection scheme")))
            .collect(),
        Err(_) => vec![None],
    };
    let sandbox = Sandbox::with_config(
        Policy::default_policy(),
        runtime::SandboxConfig::new().fast_compile(true),
    )
    .expect("sandbox");
    println!(
        "population {}, up to {} generations, threads {}, seeds 1..={seeds}, control flow {}, proposer {}",
        base.population,
        base.generations,
        base.threads,
        base.control_flow,
        proposer
            .as_deref()
            .map_or("none".to_string(), |p| format!("{p} (share {share}, sync)"))
    );
    for scheme in schemes {
        println!();
        match scheme {
            Some(s) => println!("### selection: {s}"),
            None => println!("### selection: each task's default (EvolveConfig::for_task)"),
        }
        println!();
        println!(
            "| task | generalises | solved | median evaluations to solve | median program executions to solve | evaluations/s | PushGP (published) | source |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---|");
        for (name, r) in &reference {
            if let Some(o) = &only
                && !o.split(',').any(|t| name.starts_with(t.trim()))
            {
                continue;
            }
            let task = Task::from_file(&root.join(format!("fixtures/tasks/{name}.toml")))
                .unwrap_or_else(|e| panic!("task {name}: {e}"));
            let cases = task.cases.len() as u64;
            let (mut general, mut solved, mut evals, mut secs) = (0u32, 0u32, 0u64, 0f64);
            let (mut to_solve, mut runs_to_solve) = (Vec::new(), Vec::new());
            for seed in 1..=seeds {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Arc::new(FsStore::open(dir.path().to_path_buf()).expect("store"));
                let config = EvolveConfig {
                    seed,
                    selection: config_scheme(scheme, &task),
                    ..base.clone()
                };
                let t = Instant::now();
                let mut evo =
                    Evolution::start(sandbox.clone(), store, task.clone(), config, vec![])
                        .expect("start");
                if let Some(spec) = &proposer {
                    let p = engine::propose::from_spec(
                        spec,
                        &["PATH".to_string()],
                        &sandbox.policy().proposer,
                    )
                    .expect("the proposer");
                    evo.set_proposer(engine::evolve::ProposerSetup {
                        proposer: p.into(),
                        share,
                        sync: true,
                    })
                    .expect("set the proposer");
                }
                let s = evo.run(|_| {}).expect("run");
                secs += t.elapsed().as_secs_f64();
                evals += s.evaluations;
                if s.solved {
                    solved += 1;
                    to_solve.push(s.evaluations);
                    runs_to_solve.push(s.evaluations.saturating_mul(cases));
                }
                if s.generalises {
                    general += 1;
                    if show_champions && general == 1 {
                        let text = runtime::text_form(&Policy::default_policy(), &s.best_module)
                            .unwrap_or_default();
                        let scheme = config_scheme(scheme, &task);
                        eprintln!(";; {name}, {scheme}, seed {seed}: generalises\n{text}");
                    }
                }
            }
            let show = |m: Option<u64>| m.map_or_else(|| "-".to_string(), |v| v.to_string());
            let how = r
                .selection
                .as_deref()
                .map_or(String::new(), |s| format!(" ({s})"));
            let pushgp = match (r.pushgp_successes, r.pushgp_runs) {
                (Some(k), Some(n)) => format!("{k}/{n}{how}"),
                // the source gives the successes but not the number of runs
                (Some(k), None) => format!("{k} successes{how}"),
                _ => "-".to_string(),
            };
            let source = r
                .source
                .clone()
                .or_else(|| r.note.clone())
                .unwrap_or_default();
            println!(
                "| {name} | {general}/{seeds} | {solved}/{seeds} | {} | {} | {:.0} | {pushgp} | {source} |",
                show(median(&mut to_solve)),
                show(median(&mut runs_to_solve)),
                evals as f64 / secs.max(1e-9),
            );
        }
    }
}

/// The scheme a task's runs use.
fn config_scheme(scheme: Option<Selection>, task: &Task) -> Selection {
    scheme.unwrap_or(EvolveConfig::for_task(task).selection)
}
