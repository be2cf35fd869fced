//! Evolution benchmark: for each symbolic-regression task (abs, max3, parity, quartic,
//! square, sum_range; `BENCH_TASKS` names others by prefix), runs the default
//! configuration over seeds 1..=N (N = `BENCH_SEEDS`, default 20) and prints a table
//! of evaluations per second, success rate and median generations to solve. The
//! program-synthesis tasks have their own bench (`--bench psb`).
//! Run with `cargo bench -p engine --bench evolve`. `BENCH_GENOME=straight|control`
//! forces a genome and `BENCH_SELECTION=SCHEME` a selection scheme for every task
//! (default: each task's, `EvolveConfig::for_task`).

use engine::evolve::{Evolution, EvolveConfig};
use engine::store::FsStore;
use engine::task::Task;
use runtime::{Policy, Sandbox};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let seeds: u64 = std::env::var("BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let only = Some(
        std::env::var("BENCH_TASKS")
            .unwrap_or_else(|_| "abs.,max3.,parity.,quartic.,square.,sum_range.".into()),
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures/tasks")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let fast = std::env::var("BENCH_FAST_COMPILE").map_or(true, |v| v != "0");
    let sandbox = Sandbox::with_config(
        Policy::default_policy(),
        runtime::SandboxConfig::new().fast_compile(fast),
    )
    .expect("sandbox");
    println!("fast compile: {fast}");
    // The genome by task kind (EvolveConfig::for_task); BENCH_GENOME=straight or
    // BENCH_GENOME=control forces one for every task.
    let forced = std::env::var("BENCH_GENOME").ok().map(|v| v == "control");
    let selection: Option<engine::evolve::Selection> = std::env::var("BENCH_SELECTION")
        .ok()
        .map(|v| v.parse().expect("a selection scheme"));
    let config = EvolveConfig::default();
    println!(
        "population {}, generations {}, threads {}, seeds 1..={seeds}, genome {}, selection {}",
        config.population,
        config.generations,
        config.threads,
        match forced {
            None => "by task kind",
            Some(true) => "control flow",
            Some(false) => "straight-line",
        },
        selection.map_or_else(|| "by task kind".to_string(), |s| s.to_string())
    );
    println!();
    println!("| task | evaluations/s | solved | median generations to solve | median wall (s) |");
    println!("|---|---:|---:|---:|---:|");
    for name in names {
        if let Some(o) = &only
            && !o.split(',').any(|t| name.starts_with(t))
        {
            continue;
        }
        let task = Task::from_file(&dir.join(&name)).expect("task");
        let (mut evals, mut secs, mut solved) = (0u64, 0f64, 0u32);
        let mut gens = Vec::new();
        let mut walls = Vec::new();
        for seed in 1..=seeds {
            let store_dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(FsStore::open(store_dir.path().to_path_buf()).expect("store"));
            let t = Instant::now();
            let mut evo = Evolution::start(
                sandbox.clone(),
                store,
                task.clone(),
                EvolveConfig {
                    seed,
                    control_flow: forced.unwrap_or(EvolveConfig::for_task(&task).control_flow),
                    selection: selection.unwrap_or(EvolveConfig::for_task(&task).selection),
                    ..config.clone()
                },
                vec![],
            )
            .expect("start");
            let s = evo.run(|_| {}).expect("run");
            let wall = t.elapsed().as_secs_f64();
            evals += s.evaluations;
            secs += wall;
            walls.push(wall);
            if s.solved {
                solved += 1;
                gens.push(s.generations);
            }
        }
        gens.sort();
        walls.sort_by(f64::total_cmp);
        let median_gen = if gens.is_empty() {
            "-".to_string()
        } else {
            gens[gens.len() / 2].to_string()
        };
        println!(
            "| {} | {:.0} | {}/{} | {} | {:.2} |",
            task.name,
            evals as f64 / secs,
            solved,
            seeds,
            median_gen,
            walls[walls.len() / 2]
        );
    }
}
