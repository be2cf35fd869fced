//! The fleet's costs against the SQS, S3 and DynamoDB server on loopback
//! (`scripts/fleet-bench.sh` starts it): what one island-epoch job costs besides its
//! compute, and the speed-up of 2 workers over 1 on this machine.
//!
//! `BENCH_POP` (default 200), `BENCH_K` (generations per epoch, default 5),
//! `BENCH_ISLANDS` (default 4), `BENCH_EPOCHS` (default 4), `BENCH_OPS` (samples of
//! each service call, default 40).

use engine::evolve::EvolveConfig;
use engine::evolve::islands::{self, EpochEnd, IslandPlan};
use engine::fleet::{Handled, Step, Worker, WorkerConfig};
use engine::queue::Queue;
use engine::store::{self, BlobStore, Bucket, StateItem};
use engine::task::Task;
use runtime::{Policy, Sandbox, SandboxConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tag() -> String {
    format!(
        "bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}

fn s3_store() -> Arc<dyn BlobStore> {
    let t = tag();
    let uri = format!("s3://evo-{t}?agents=agents-{t}&table=state-{t}");
    store::init(&uri).expect("init the store");
    store::open(&uri).expect("open the store")
}

fn sandbox() -> Sandbox {
    Sandbox::with_config(
        Policy::default_policy(),
        SandboxConfig::new().fast_compile(true),
    )
    .expect("sandbox")
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn time<T>(n: u64, mut f: impl FnMut(u64) -> T) -> f64 {
    median_ms(
        (0..n)
            .map(|i| {
                let t = Instant::now();
                std::hint::black_box(f(i));
                t.elapsed()
            })
            .collect(),
    )
}

fn task() -> Task {
    Task::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tasks/sum_range.toml"),
    )
    .expect("task")
}

fn plan_and_config(islands: u32, k: u32, epochs: u32, pop: usize) -> (IslandPlan, EvolveConfig) {
    let task = task();
    (
        IslandPlan {
            islands,
            epoch_generations: k,
            migrants: 5,
        },
        EvolveConfig {
            seed: 3,
            population: pop,
            generations: k * epochs,
            threads: 1,
            // every epoch runs: tournament does not solve sum_range in this budget
            selection: engine::evolve::Selection::Tournament,
            ..EvolveConfig::for_task(&task)
        },
    )
}

/// Runs an island evolution with `workers` workers (threads of this process, one
/// scoring thread each) until it has a result; the wall time and the job reports.
fn fleet_run(
    workers: usize,
    plan: &IslandPlan,
    config: &EvolveConfig,
) -> (Duration, Vec<engine::fleet::Report>) {
    let store = s3_store();
    let name = tag();
    let (q, _dead) = Queue::create(&name, 5, Duration::from_secs(60)).expect("queue");
    let id =
        engine::fleet::submit(store.as_ref(), &q, &task(), config, Some(plan)).expect("submit");
    let url = q.url().to_string();
    let t = Instant::now();
    let reports = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (store, url, id) = (store.clone(), url.clone(), id.clone());
                s.spawn(move || {
                    let w = Worker::new(
                        sandbox(),
                        store.clone(),
                        Queue::open(&url).expect("open"),
                        WorkerConfig {
                            wait: Duration::from_secs(1),
                            retry_delay: Duration::from_secs(1),
                            threads: Some(1),
                            ..WorkerConfig::default()
                        },
                    )
                    .expect("worker");
                    let mut out = Vec::new();
                    while islands::result(store.as_ref(), &id)
                        .expect("result")
                        .is_none()
                    {
                        if let Step::Job(r) = w.step().expect("step") {
                            if let Handled::Failed(e) = &r.handled {
                                panic!("a job failed: {e}");
                            }
                            out.push(*r);
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect::<Vec<_>>()
    });
    (t.elapsed(), reports)
}

fn main() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        eprintln!("fleet bench: set AWS_ENDPOINT_URL (scripts/fleet-bench.sh starts moto)");
        std::process::exit(2);
    }
    let pop = env("BENCH_POP", 200) as usize;
    let k = env("BENCH_K", 5) as u32;
    let islands_n = env("BENCH_ISLANDS", 4) as u32;
    let epochs = env("BENCH_EPOCHS", 4) as u32;
    let ops = env("BENCH_OPS", 40);
    println!(
        "fleet bench: population {pop}, {k} generations per epoch, {islands_n} islands, {epochs} epochs; services on loopback (moto)"
    );

    // 1. the service calls a job makes, one at a time
    let s = s3_store();
    let (q, _dead) = Queue::create(&tag(), 5, Duration::from_secs(60)).expect("queue");
    let body = r#"{"kind":"epoch","evolution_id":"evo-x","island":0,"epoch":1}"#;
    let send = time(ops, |_| q.send(body, Duration::ZERO).expect("send"));
    let mut held = Vec::new();
    let receive = time(ops, |_| {
        let r = q
            .receive(Duration::from_secs(1), Duration::from_secs(60))
            .expect("receive");
        if let Some(r) = r {
            held.push(r.receipt);
        }
    });
    let extend = time(held.len() as u64, |i| {
        q.extend(&held[i as usize], Duration::from_secs(60))
            .expect("extend")
    });
    let delete = time(held.len() as u64, |i| {
        q.delete(&held[i as usize]).expect("delete")
    });
    let small = vec![b'x'; 2048];
    let put_new = time(ops, |i| {
        s.put_new(Bucket::Evolution, &format!("bench/{i}.json"), &small)
            .expect("put_new")
    });
    let get = time(ops, |i| {
        s.get(Bucket::Evolution, &format!("bench/{i}.json"))
            .expect("get")
    });
    let row = |i: u64| StateItem {
        evolution_id: "bench.epochs".into(),
        generation: i as u32,
        timestamp: engine::time::now_rfc3339(),
        agent_code: small.clone(),
        best_agent_id: engine::AgentId::of(&small),
        fitness_score: 1.0,
        parent_ids: Vec::new(),
        safety_flags: Vec::new(),
    };
    let put_state = time(ops, |i| s.put_state(&row(i)).expect("put_state"));
    let get_states = time(ops, |_| s.get_states("bench.epochs").expect("get_states"));
    println!();
    println!("| service call (median of {ops}) | ms |");
    println!("|---|---:|");
    for (name, ms) in [
        ("SQS send", send),
        ("SQS receive (a job waiting)", receive),
        ("SQS extend visibility", extend),
        ("SQS delete", delete),
        ("S3 put if absent (2 KiB)", put_new),
        ("S3 get (2 KiB)", get),
        ("DynamoDB conditional put (epoch row)", put_state),
        ("DynamoDB query (an island's rows)", get_states),
    ] {
        println!("| {name} | {ms:.2} |");
    }

    // 2. one epoch's compute alone (file store on local disk, no queue) against the
    //    same epoch as a job through the fleet
    let (plan, config) = plan_and_config(islands_n, k, epochs, pop);
    let dir = tempfile::tempdir().expect("tempdir");
    let local = store::open(&format!("file://{}", dir.path().display())).expect("store");
    let id = islands::prepare_islands(local.as_ref(), &task(), &config, &plan).expect("prepare");
    let mut compute = Vec::new();
    for e in 0..epochs {
        for i in 0..plan.islands {
            let t = Instant::now();
            let end = islands::run_epoch(sandbox(), local.clone(), &id, i, e, Some(1), &|_| {})
                .expect("epoch");
            assert!(matches!(end, EpochEnd::Committed { .. }), "{end:?}");
            compute.push(t.elapsed());
        }
    }
    let compute_ms = median_ms(compute);
    // the same epochs on S3 + DynamoDB, without the queue
    let remote = s3_store();
    let rid = islands::prepare_islands(remote.as_ref(), &task(), &config, &plan).expect("prepare");
    let mut stored = Vec::new();
    for e in 0..epochs {
        for i in 0..plan.islands {
            let t = Instant::now();
            islands::run_epoch(sandbox(), remote.clone(), &rid, i, e, Some(1), &|_| {})
                .expect("epoch");
            stored.push(t.elapsed());
        }
    }
    let stored_ms = median_ms(stored);

    // 3. the fleet: 1 worker, then 2 (each one scoring thread)
    let (one, r1) = fleet_run(1, &plan, &config);
    let (two, r2) = fleet_run(2, &plan, &config);
    let jobs = |r: &[engine::fleet::Report]| -> (usize, usize, f64) {
        let committed: Vec<Duration> = r
            .iter()
            .filter(|r| matches!(r.handled, Handled::Epoch { .. }))
            .map(|r| r.elapsed)
            .collect();
        let waits = r.iter().filter(|r| r.handled == Handled::Waiting).count();
        (committed.len(), waits, median_ms(committed))
    };
    let (c1, w1, job1) = jobs(&r1);
    let (c2, w2, job2) = jobs(&r2);
    println!();
    println!("| island epoch ({pop} × {k} generations) | ms |");
    println!("|---|---:|");
    println!("| compute alone, file store (median) | {compute_ms:.1} |");
    println!("| on S3 + DynamoDB, no queue (median) | {stored_ms:.1} |");
    println!("| as a job on S3 + DynamoDB + SQS, 1 worker (median) | {job1:.1} |");
    println!(
        "| of which the store: K generation commits, the epoch's reads and writes | {:.1} |",
        stored_ms - compute_ms
    );
    println!(
        "| of which the queue: receive, extend, send the next, delete | {:.1} |",
        job1 - stored_ms
    );
    println!(
        "| job overhead (job − compute) | {:.1} |",
        job1 - compute_ms
    );
    println!(
        "| efficiency of a job (compute / job) | {:.0}% |",
        100.0 * compute_ms / job1.max(1e-9)
    );
    println!();
    println!(
        "| workers | wall s | epochs committed | waits for migrants | median job ms | wall per epoch ms | speed-up |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (n, wall, c, w, job) in [(1, one, c1, w1, job1), (2, two, c2, w2, job2)] {
        println!(
            "| {n} | {:.2} | {c} | {w} | {job:.1} | {:.1} | {:.2} |",
            wall.as_secs_f64(),
            wall.as_secs_f64() * 1e3 / c.max(1) as f64,
            one.as_secs_f64() / wall.as_secs_f64()
        );
    }

    // 4. a stop: from the request to the worker's job halted and sent back
    let stops = env("BENCH_STOPS", 5);
    let mut took = Vec::new();
    for _ in 0..stops {
        let store = s3_store();
        let (q, _dead) = Queue::create(&tag(), 5, Duration::from_secs(60)).expect("queue");
        let config = EvolveConfig {
            generations: 1_000_000,
            population: pop,
            threads: 1,
            ..EvolveConfig::for_task(&task())
        };
        let id = engine::fleet::submit(store.as_ref(), &q, &task(), &config, None).expect("submit");
        let w = Worker::new(
            sandbox(),
            store.clone(),
            Queue::open(q.url()).expect("open"),
            WorkerConfig {
                wait: Duration::from_secs(1),
                threads: Some(1),
                ..WorkerConfig::default()
            },
        )
        .expect("worker");
        let halted = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                loop {
                    if let Step::Job(r) = w.step().expect("step") {
                        assert_eq!(r.handled, Handled::Stopped, "{r:?}");
                        return Instant::now();
                    }
                }
            });
            while engine::evolve::head_generation(store.as_ref(), &id).map_or(true, |h| h < 1) {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(200));
            let asked = Instant::now();
            engine::control::request_stop(store.as_ref()).expect("stop");
            worker.join().expect("worker") - asked
        });
        took.push(halted);
    }
    let worst = took.iter().max().copied().unwrap_or_default();
    println!();
    println!("| stop (population {pop}, {stops} stops) | ms |");
    println!("|---|---:|");
    println!(
        "| request to the job halted and sent back, median | {:.1} |",
        median_ms(took)
    );
    println!("| the same, largest | {:.1} |", worst.as_secs_f64() * 1e3);
}
