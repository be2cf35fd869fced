//! Sandbox benchmarks: instantiation with pooling vs on-demand allocation, the cost of a
//! whole run, the slowdown from fuel and epoch checks on a loop, and emergency-stop
//! latency. Run with `cargo bench -p runtime`.

use criterion::{Criterion, criterion_group, criterion_main};
use runtime::{Admission, Agent, Allocation, Input, Policy, Sandbox, SandboxConfig, Value};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel);
    wat::parse_file(&path).expect("fixture")
}

fn sandbox(allocation: Allocation, policy: &str) -> Sandbox {
    let mut cfg = SandboxConfig::new();
    cfg.allocation(allocation);
    Sandbox::with_config(Policy::from_toml(policy).expect("policy"), &cfg).expect("sandbox")
}

fn admit(sb: &Sandbox, bytes: &[u8]) -> Arc<Agent> {
    match sb.admit(bytes, false).expect("admit") {
        Admission::Admitted(a) => a,
        Admission::Rejected(v) => panic!("rejected: {:?}", v.findings),
    }
}

fn instantiate(c: &mut Criterion) {
    let big = fixture("agents/big6k.wat");
    assert!(big.len() > 6000 && big.len() <= 6656);
    let mut g = c.benchmark_group("instantiate_6k");
    let pooling = Allocation::Pooling { slots: 64 };
    let variants: [(&str, Allocation, bool, Option<usize>, bool); 6] = [
        ("on_demand", Allocation::OnDemand, true, None, false),
        ("pooling_cow", pooling, true, None, false),
        ("pooling_cow_resident", pooling, true, Some(1 << 20), false),
        ("pooling_resident", pooling, false, Some(1 << 20), false),
        (
            "pooling_resident_pagemap",
            pooling,
            false,
            Some(1 << 20),
            true,
        ),
        (
            "pooling_cow_resident_pagemap",
            pooling,
            true,
            Some(1 << 20),
            true,
        ),
    ];
    for (name, alloc, cow, resident, pagemap) in variants {
        let mut cfg = SandboxConfig::new();
        cfg.allocation(alloc)
            .memory_init_cow(cow)
            .memory_keep_resident(resident)
            .pagemap_scan(pagemap);
        let sb = Sandbox::with_config(Policy::default_policy(), &cfg).expect("sandbox");
        let agent = admit(&sb, &big);
        assert!(sb.instantiate_only(&agent));
        g.bench_function(name, |b| b.iter(|| black_box(sb.instantiate_only(&agent))));
    }
    // the default configuration, whatever it is
    let sb = Sandbox::new(Policy::default_policy()).expect("sandbox");
    let agent = admit(&sb, &big);
    g.bench_function("default", |b| {
        b.iter(|| black_box(sb.instantiate_only(&agent)))
    });
    g.finish();
}

fn run(c: &mut Criterion) {
    let mut g = c.benchmark_group("run");
    let sb = sandbox(Allocation::Pooling { slots: 64 }, "");
    let add = admit(&sb, &fixture("agents/add.wat"));
    g.bench_function("instantiate_add", |b| {
        b.iter(|| black_box(sb.instantiate_only(&add)))
    });
    g.bench_function("full_run_add", |b| {
        b.iter(|| {
            black_box(
                sb.run(&add, Input::Typed(vec![Value::I64(2), Value::I64(3)]))
                    .expect("run"),
            )
        })
    });
    let big = admit(&sb, &fixture("agents/big6k.wat"));
    g.bench_function("full_run_6k", |b| {
        b.iter(|| {
            black_box(
                sb.run(&big, Input::Typed(vec![Value::I64(3)]))
                    .expect("run"),
            )
        })
    });
    g.finish();
}

const LOOP: &str = r#"(module (func (export "act") (param i64) (result i64)
    (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (i64.mul (local.get 0) (local.get 0))))
      (local.set 0 (i64.sub (local.get 0) (i64.const 1)))
      (br_if $l (i64.gt_s (local.get 0) (i64.const 0))))
    (local.get $acc)))"#;

/// The same loop on raw wasmtime engines with and without fuel and epoch checks.
fn interruption(c: &mut Criterion) {
    let bytes = wat::parse_str(LOOP).expect("wat");
    let mut g = c.benchmark_group("loop_1e5");
    for (name, fuel, epoch) in [
        ("plain", false, false),
        ("fuel", true, false),
        ("epoch", false, true),
        ("fuel_and_epoch", true, true),
    ] {
        let mut cfg = wasmtime::Config::new();
        cfg.consume_fuel(fuel).epoch_interruption(epoch);
        let engine = wasmtime::Engine::new(&cfg).expect("engine");
        let module = wasmtime::Module::new(&engine, &bytes).expect("module");
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instance");
        let act = instance
            .get_typed_func::<i64, i64>(&mut store, "act")
            .expect("act");
        g.bench_function(name, |b| {
            b.iter(|| {
                if fuel {
                    store.set_fuel(u64::MAX / 4).expect("fuel");
                }
                if epoch {
                    store.set_epoch_deadline(1_000_000);
                }
                black_box(act.call(&mut store, black_box(100_000)).expect("call"))
            })
        });
    }
    g.finish();
}

/// Time from `StopHandle::stop` until a spinning run has returned (taken on the run's
/// thread as the run returns).
fn stop_latency(c: &mut Criterion) {
    let sb = sandbox(
        Allocation::Pooling { slots: 64 },
        "[limits]\nfuel_per_call = 1000000000000000000\nwall_clock_ms = 600000\n",
    );
    let spin = admit(
        &sb,
        &wat::parse_str(
            r#"(module (func (export "act") (result i32)
              (local $i i64) (loop $l (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l))
              i32.const 0))"#,
        )
        .expect("wat"),
    );
    let mut g = c.benchmark_group("emergency_stop");
    g.sample_size(20);
    g.bench_function("latency", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (sb2, agent) = (sb.clone(), spin.clone());
                let h = std::thread::spawn(move || {
                    let r = sb2.run(&agent, Input::Bytes(vec![])).expect("run");
                    (r.outcome, Instant::now())
                });
                std::thread::sleep(Duration::from_millis(2));
                // A stop ends only the runs already started: if the thread has not
                // entered the module yet, stop again. The latency counts from the last
                // stop, the one the run saw.
                let mut t0 = Instant::now();
                sb.stop_handle().stop();
                while !h.is_finished() {
                    if t0.elapsed() > Duration::from_millis(50) {
                        t0 = Instant::now();
                        sb.stop_handle().stop();
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                let (outcome, ended) = h.join().expect("join");
                assert_eq!(outcome, runtime::Outcome::EmergencyStop);
                total += ended.duration_since(t0);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, instantiate, run, interruption, stop_latency);
criterion_main!(benches);
