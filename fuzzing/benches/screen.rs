//! What screens offspring best: the engine's own interpreter (`engine::interp`), wasmi
//! (an independent, maintained Wasm interpreter) or the sandbox itself (wasmtime).
//!
//! The offspring are random lineages of the engine's operators with control flow, on
//! a task's signature (default `fixtures/tasks/gcd.toml`); every offspring runs every
//! training case under the task's budget per case, as the engine scores it. Printed:
//! offspring scored per second by each, and on how many cases wasmi and the sandbox
//! end differently from the interpreter (another result, another trap, or running out
//! of the budget at another point). Env: `BENCH_TASK=FILE`, `BENCH_LINEAGES` (default
//! 40), `BENCH_STEPS` (offspring per lineage, default 60).

use engine::genome::{Genome, Ty};
use engine::interp::{Answer, Plan, Scratch};
use engine::random::{self, Constants};
use engine::rng::Rng;
use engine::task::Task;
use runtime::{Input, Outcome, Policy, RunResult, Sandbox, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v} is not a number")),
        Err(_) => default,
    }
}

/// Offspring of `lineages` lineages of `steps` steps each, on the task's signature.
fn offspring(task: &Task, lineages: u64, steps: usize) -> Vec<Genome> {
    let params: Vec<Ty> = task.params.iter().map(|p| Ty::from(*p)).collect();
    let result = Ty::from(task.result);
    let consts = Arc::new(Constants::from_task(task));
    let ops = engine::mutators::all(&consts, true);
    let mut out = Vec::new();
    for seed in 0..lineages {
        let mut rng = Rng::new(seed);
        let mut a = random::module(&params, result, 4, &consts, &mut rng);
        let mut b = random::module(&params, result, 4, &consts, &mut rng);
        for _ in 0..steps {
            let child = if rng.chance(0.3) {
                engine::mutators::crossover(&a, &b, true, &mut rng)
            } else {
                let (m, _) = &ops[rng.below(ops.len())];
                m.mutate(&a, &mut rng)
            };
            if let Some(c) = child {
                out.push(c.clone());
                if c.ops.len() < 200 {
                    b = std::mem::replace(&mut a, c);
                }
            }
        }
    }
    out
}

/// How a case ended, in the sandbox's words.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Value(Value),
    Trap(Outcome),
}

fn wasmi_engine(policy: &Policy) -> wasmi::Engine {
    let f = &policy.features;
    let mut c = wasmi::Config::default();
    c.consume_fuel(true)
        .wasm_mutable_global(f.mutable_global)
        .wasm_sign_extension(f.sign_extension)
        .wasm_saturating_float_to_int(f.saturating_float_to_int)
        .wasm_multi_value(f.multi_value)
        .wasm_bulk_memory(f.bulk_memory);
    wasmi::Engine::new(&c)
}

/// Every case of `g` in wasmi: compiled once, instantiated once, each case called with
/// the budget as its fuel.
fn wasmi_cases(e: &wasmi::Engine, g: &Genome, task: &Task, fuel: u64, out: &mut Vec<End>) {
    let bytes = g.encode();
    let module = wasmi::Module::new(e, &bytes[..]).expect("the engine's offspring validate");
    let mut store = wasmi::Store::new(e, ());
    let linker = wasmi::Linker::<()>::new(e);
    store.set_fuel(fuel).expect("fuel");
    let instance = linker
        .instantiate_and_start(&mut store, &module)
        .expect("instantiate");
    let act = instance.get_func(&store, "act").expect("act");
    for case in &task.cases {
        store.set_fuel(fuel).expect("fuel");
        let args = fuzzing::differential::wasmi_args(&case.args);
        let mut res = [fuzzing::differential::wasmi_slot(task.result)];
        out.push(match act.call(&mut store, &args, &mut res) {
            Ok(()) => match res[0] {
                wasmi::Val::I64(v) => End::Value(Value::I64(v)),
                wasmi::Val::F64(f) => End::Value(Value::F64(f.to_bits())),
                ref other => panic!("wasmi returned {other:?}"),
            },
            Err(err) => End::Trap(match err.as_trap_code() {
                Some(wasmi::TrapCode::OutOfFuel) => Outcome::OutOfFuel,
                Some(wasmi::TrapCode::IntegerDivisionByZero) => Outcome::DivisionByZero,
                Some(wasmi::TrapCode::IntegerOverflow) => Outcome::IntegerOverflow,
                Some(wasmi::TrapCode::BadConversionToInteger) => Outcome::BadConversion,
                Some(wasmi::TrapCode::StackOverflow) => Outcome::StackOverflow,
                Some(wasmi::TrapCode::UnreachableCodeReached) => Outcome::Unreachable,
                _ => panic!("wasmi: {err}"),
            }),
        });
    }
}

/// Every case of `g` in the sandbox, as the engine runs a module it cannot interpret.
fn sandbox_cases(sb: &Sandbox, g: &Genome, task: &Task, fuel: u64, out: &mut Vec<End>) {
    let runtime::Admission::Admitted(agent) = sb.admit(&g.encode(), false).expect("admit") else {
        panic!("the engine's offspring are admitted");
    };
    for case in &task.cases {
        let r = sb
            .run_with_fuel(&agent, Input::Typed(case.args.clone()), fuel)
            .expect("run");
        out.push(match (r.outcome, r.result) {
            (Outcome::Ok, Some(RunResult::Value(v))) => End::Value(v),
            (o, _) => End::Trap(o),
        });
    }
}

fn interp_cases(plan: &Plan, task: &Task, fuel: u64, s: &mut Scratch, out: &mut Vec<End>) {
    for case in &task.cases {
        out.push(match plan.call_with(&case.args, fuel, s) {
            Answer::Value(v) => End::Value(v),
            Answer::Trap(o) => End::Trap(o),
        });
    }
}

/// Cases on which `other` ends differently from `base`: (all, budget only).
fn differ(base: &[End], other: &[End]) -> (usize, usize) {
    let mut all = 0;
    let mut fuel = 0;
    for (a, b) in base.iter().zip(other) {
        let same = match (a, b) {
            (End::Value(Value::F64(x)), End::Value(Value::F64(y))) => {
                let (x, y) = (f64::from_bits(*x), f64::from_bits(*y));
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
            }
            _ => a == b,
        };
        if !same {
            all += 1;
            let oof = End::Trap(Outcome::OutOfFuel);
            fuel += usize::from(*a == oof || *b == oof);
        }
    }
    (all, fuel)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let task_path = std::env::var("BENCH_TASK")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("fixtures/tasks/gcd.toml"));
    let task = Task::from_file(&task_path).expect("task");
    let lineages = env_or("BENCH_LINEAGES", 40u64);
    let steps = env_or("BENCH_STEPS", 60usize);
    let policy = Policy::default_policy();
    let fuel = task.case_fuel(policy.limits.fuel_per_call);
    let genomes = offspring(&task, lineages, steps);
    let sb = Sandbox::new(policy.clone()).expect("sandbox");
    let wasmi = wasmi_engine(&policy);
    let with_loop = genomes
        .iter()
        .filter(|g| {
            g.ops
                .iter()
                .any(|o| matches!(o, engine::genome::Op::Loop(_)))
        })
        .count();

    // The interpreter: a plan per offspring (offspring it cannot plan go to the
    // sandbox in the engine, and are left out of every column here).
    let t = Instant::now();
    let mut s = Scratch::default();
    let mut by_interp = Vec::new();
    let mut planned = Vec::new();
    for g in &genomes {
        if let Some(p) = Plan::new(g, &policy) {
            let mut ends = Vec::with_capacity(task.cases.len());
            interp_cases(&p, &task, fuel, &mut s, &mut ends);
            by_interp.push(ends);
            planned.push(g);
        }
    }
    let interp = t.elapsed();

    // Every planned offspring's cases by `score`, and the time it took.
    let timed = |score: &dyn Fn(&Genome, &mut Vec<End>)| {
        let t = Instant::now();
        let by: Vec<Vec<End>> = planned
            .iter()
            .map(|g| {
                let mut ends = Vec::with_capacity(task.cases.len());
                score(g, &mut ends);
                ends
            })
            .collect();
        (by, t.elapsed())
    };
    let (by_wasmi, wasmi_time) = timed(&|g, ends| wasmi_cases(&wasmi, g, &task, fuel, ends));
    let (by_sandbox, sandbox_time) = timed(&|g, ends| sandbox_cases(&sb, g, &task, fuel, ends));

    let cases = planned.len() * task.cases.len();
    let count = |by: &[Vec<End>]| {
        by_interp
            .iter()
            .zip(by)
            .map(|(a, b)| differ(a, b))
            .fold((0, 0), |(x, y), (a, b)| (x + a, y + b))
    };
    let rate = |d: Duration| planned.len() as f64 / d.as_secs_f64();
    println!(
        "task {} ({} training cases, budget {fuel} per case); {} offspring of {lineages} lineages, {} with a loop; {} interpreted (the rest need the sandbox), {cases} cases each way",
        task.name,
        task.cases.len(),
        genomes.len(),
        with_loop,
        planned.len()
    );
    println!();
    println!(
        "| screen | offspring/s | vs sandbox | cases ending otherwise than the interpreter | of them at the budget |"
    );
    println!("|---|---:|---:|---:|---:|");
    let sand = rate(sandbox_time);
    println!(
        "| engine::interp | {:.0} | {:.1}× | - | - |",
        rate(interp),
        rate(interp) / sand
    );
    let (wa, wf) = count(&by_wasmi);
    println!(
        "| wasmi (compile, instantiate once, call per case) | {:.0} | {:.1}× | {wa} | {wf} |",
        rate(wasmi_time),
        rate(wasmi_time) / sand
    );
    let (sa, sf) = count(&by_sandbox);
    println!("| sandbox (wasmtime) | {sand:.0} | 1.0× | {sa} | {sf} |");

    // Where a budget runs out: the same offspring under small budgets, so that most
    // cases end part-way through.
    println!();
    println!(
        "| budget per case | cases | out of budget (interpreter) | wasmi ends otherwise | sandbox ends otherwise |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for budget in [8u64, 32, 128, 512] {
        let (mut oof, mut wd, mut sd) = (0, 0, 0);
        for g in &planned {
            let plan = Plan::new(g, &policy).expect("planned before");
            let (mut a, mut w, mut b) = (Vec::new(), Vec::new(), Vec::new());
            interp_cases(&plan, &task, budget, &mut s, &mut a);
            wasmi_cases(&wasmi, g, &task, budget, &mut w);
            sandbox_cases(&sb, g, &task, budget, &mut b);
            oof += a
                .iter()
                .filter(|e| **e == End::Trap(Outcome::OutOfFuel))
                .count();
            wd += differ(&a, &w).0;
            sd += differ(&a, &b).0;
        }
        println!("| {budget} | {cases} | {oof} | {wd} | {sd} |");
    }
}
