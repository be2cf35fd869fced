//! The sandbox: compiles admitted modules and runs them under the policy's limits.

use crate::error::{ArgParseError, ErrorKind, Result};
use crate::host::HostState;
use crate::outcome::Outcome;
use crate::policy::Policy;
use crate::text::escape;
use crate::trap::HostTrap;
use crate::validate::{ActForm, Param, Verdict, validate};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store, Trap, UpdateDeadline, Val, WasmFeatures,
};

/// How instances get their memories and tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// A pre-reserved pool of `slots` instances (copy-on-write memory images). Fast.
    Pooling {
        /// How many instances may be alive at once.
        slots: u32,
    },
    /// Memory mapped on demand for each instance.
    OnDemand,
}

/// Settings of the sandbox that are mechanism, not policy. The policy holds every limit.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    allocation: Allocation,
    epoch_tick: Duration,
    cache_capacity: usize,
    memory_init_cow: bool,
    keep_resident: Option<usize>,
    pagemap_scan: bool,
    fast_compile: bool,
    host_stack_margin: usize,
}

/// Default of [`SandboxConfig::host_stack_margin`]: 512 KiB. The deepest host path
/// measured under a full Wasm stack (a recursion whose every frame logs a full line,
/// grows memory through the limiter and writes output, ending in `stack_overflow`)
/// needs 20 KiB above `limits.stack_bytes` in a debug build (the test
/// `threads::measure_the_host_margin`); the rest is room for the caller's own frames
/// (an async runtime, a request handler).
pub const DEFAULT_HOST_STACK_MARGIN: usize = 512 << 10;

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            allocation: Allocation::Pooling { slots: 64 },
            epoch_tick: Duration::from_millis(1),
            cache_capacity: 1024,
            memory_init_cow: true,
            keep_resident: Some(1 << 20),
            pagemap_scan: false,
            fast_compile: false,
            host_stack_margin: DEFAULT_HOST_STACK_MARGIN,
        }
    }
}

impl SandboxConfig {
    /// A default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Instance allocation. Default: `Allocation::Pooling { slots: 64 }`.
    pub fn allocation(&mut self, allocation: Allocation) -> &mut Self {
        self.allocation = allocation;
        self
    }

    /// How often the epoch advances; the wall-clock deadline is checked at each tick.
    /// Default: 1 ms. An emergency stop does not wait for a tick.
    pub fn epoch_tick(&mut self, tick: Duration) -> &mut Self {
        self.epoch_tick = tick.max(Duration::from_micros(50));
        self
    }

    /// Whether memories start as copy-on-write images of the module's data segments.
    /// Default: true.
    pub fn memory_init_cow(&mut self, on: bool) -> &mut Self {
        self.memory_init_cow = on;
        self
    }

    /// With pooling, how many bytes of a freed memory stay resident and are reset in
    /// place instead of being returned to the kernel. Default: 1 MiB (measured fastest
    /// for 6 KB agents; see BENCHMARKS.md).
    pub fn memory_keep_resident(&mut self, bytes: Option<usize>) -> &mut Self {
        self.keep_resident = bytes;
        self
    }

    /// With pooling and memory kept resident, reset only the pages a run touched
    /// (Linux `PAGEMAP_SCAN`, kernel 6.7+; ignored where unsupported). Default: false.
    pub fn pagemap_scan(&mut self, on: bool) -> &mut Self {
        self.pagemap_scan = on;
        self
    }

    /// Compile for speed of compilation rather than of the code: no Cranelift
    /// optimisation, single-pass register allocation, no parallel compilation. Right
    /// for many small short-lived modules (evolution). Default: false.
    pub fn fast_compile(&mut self, on: bool) -> &mut Self {
        self.fast_compile = on;
        self
    }

    /// Host stack a thread that runs agents needs beyond `limits.stack_bytes`: the
    /// frames of the caller, of wasmtime's entry and of host functions called at the
    /// deepest Wasm frame. [`Sandbox::thread_stack_bytes`] adds it to the policy's Wasm
    /// stack. Default: [`DEFAULT_HOST_STACK_MARGIN`] (512 KiB); at least 64 KiB.
    pub fn host_stack_margin(&mut self, bytes: usize) -> &mut Self {
        self.host_stack_margin = bytes.max(64 << 10);
        self
    }

    /// How many compiled agents are kept by id. Default: 1024.
    pub fn cache_capacity(&mut self, n: usize) -> &mut Self {
        self.cache_capacity = n.max(1);
        self
    }
}

/// A typed value: an `i64`, or an `f64` kept as its raw bits so that NaN payloads and
/// `-0.0` survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// An `i64`.
    I64(i64),
    /// The bits of an `f64`.
    F64(u64),
}

impl Value {
    /// The raw 64 bits.
    pub fn bits(self) -> u64 {
        match self {
            Value::I64(v) => v as u64,
            Value::F64(b) => b,
        }
    }
}

/// Parses `--args` text (`1,2.5,-0.0`) by the parameter types: i64 in decimal over its
/// whole range; f64 as `f64::from_str` reads it (`inf`, `nan`, `5e-324`).
pub fn parse_args(params: &[Param], text: &str) -> Result<Vec<Value>> {
    let parts: Vec<&str> = if text.trim().is_empty() {
        Vec::new()
    } else {
        text.split(',').map(str::trim).collect()
    };
    if parts.len() != params.len() {
        return Err(ErrorKind::Args(format!(
            "act takes {} argument(s) ({}), {} given",
            params.len(),
            params
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            parts.len()
        ))
        .into());
    }
    params
        .iter()
        .zip(parts)
        .enumerate()
        .map(|(i, (p, s))| {
            let value = match p {
                Param::I64 => s
                    .parse::<i64>()
                    .map(Value::I64)
                    .map_err(ArgParseError::from),
                Param::F64 => s
                    .parse::<f64>()
                    .map(|f| Value::F64(f.to_bits()))
                    .map_err(ArgParseError::from),
            };
            value.map_err(|error| {
                ErrorKind::ArgValue {
                    index: i + 1,
                    text: s.to_string(),
                    param: *p,
                    error,
                }
                .into()
            })
        })
        .collect()
}

/// What a run is given.
#[derive(Clone, Debug)]
pub enum Input {
    /// Input bytes for the bytes form.
    Bytes(Vec<u8>),
    /// Arguments for the typed form.
    Typed(Vec<Value>),
}

/// What `act` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunResult {
    /// The bytes form's status (0 success).
    Status(i32),
    /// The typed form's value.
    Value(Value),
}

/// The report of one run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// How the run ended.
    pub outcome: Outcome,
    /// What the trap said, for a trap; escaped.
    pub trap_message: Option<String>,
    /// What `act` returned, when it returned.
    pub result: Option<RunResult>,
    /// Output written (also when the run trapped).
    pub output: Vec<u8>,
    /// Log lines kept, escaped.
    pub logs: Vec<String>,
    /// Log lines dropped past the cap.
    pub logs_dropped: u64,
    /// Fuel consumed, host calls included. Exact for runs that return or run out of
    /// fuel; a run interrupted (deadline, emergency stop) inside a loop without calls
    /// reports the fuel wasmtime had accounted at its last call or return.
    pub fuel_used: u64,
    /// Wall time of instantiation and call.
    pub wall: Duration,
    /// Wall time of store set-up and instantiation (a start function included), the
    /// part of `wall` before `act` is called; `None` when instantiation failed.
    pub instantiate: Option<Duration>,
}

/// A module that passed validation and is compiled, ready to run.
pub struct Agent {
    verdict: Verdict,
    form: ActForm,
    pub(crate) pre: InstancePre<HostState>,
}

impl Agent {
    /// The static verdict.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The form of `act`.
    pub fn form(&self) -> &ActForm {
        &self.form
    }

    /// The agent id.
    pub fn id(&self) -> &str {
        &self.verdict.agent_id
    }
}

/// The result of asking for a module to be admitted.
pub enum Admission {
    /// Compiled and ready to run.
    Admitted(Arc<Agent>),
    /// Not admitted; the verdict says why.
    Rejected(Verdict),
}

/// Interrupts every agent running in a sandbox at once; each ends with
/// `emergency_stop`. Cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct StopHandle {
    generation: Arc<AtomicU64>,
    engine: Engine,
}

impl StopHandle {
    /// Interrupts every run in progress. Runs started afterwards are not affected.
    pub fn stop(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Make every running store reach its epoch deadline now, without waiting for the
        // ticker: its callback then sees the new generation.
        self.engine.increment_epoch();
    }
}

struct Ticker {
    shutdown: Arc<AtomicBool>,
    /// Set by a test to make the ticker panic, so that its death is seen to surface.
    crash: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// The name of the thread that advances the epoch (the wall-clock deadline's clock).
pub const EPOCH_THREAD: &str = "tdev-epoch";

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

struct Inner {
    policy: Arc<Policy>,
    engine: Engine,
    linker: Linker<HostState>,
    cache: Mutex<HashMap<String, Arc<Agent>>>,
    cache_capacity: usize,
    stop_generation: Arc<AtomicU64>,
    thread_stack_bytes: usize,
    group_members: Option<usize>,
    ticker: Ticker,
}

/// The sandbox. Cheap to clone; share it between threads.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl Sandbox {
    /// A sandbox for `policy` with the default configuration.
    pub fn new(policy: Policy) -> Result<Sandbox> {
        Sandbox::with_config(policy, &SandboxConfig::default())
    }

    /// A sandbox for `policy` with `config`.
    pub fn with_config(policy: Policy, config: &SandboxConfig) -> Result<Sandbox> {
        let l = &policy.limits;
        let wasm_stack = usize::try_from(l.stack_bytes).unwrap_or(usize::MAX);
        let thread_stack_bytes = wasm_stack.saturating_add(config.host_stack_margin);
        // Growth of a table is bounded by `limits.table_elements` (and judged by the
        // limiter), like `memory.grow`, which wasmtime does not charge per page either:
        // charging per element first would turn `table.grow` by more than the fuel left
        // into `out_of_fuel` where the spec answers -1 or the policy traps
        // `table_limit`. Bulk fills and copies stay charged per element and byte.
        let mut cost = wasmtime::OperatorCost::new();
        cost.variable.table_grow_per_element = 0;
        let mut cfg = Config::new();
        cfg.consume_fuel(true)
            .operator_cost(cost)
            .epoch_interruption(true)
            .max_wasm_stack(wasm_stack)
            // wasmtime refuses a Wasm stack larger than the stack of async fibers even
            // when async is not used; no fiber is made here (the `async` feature is
            // off), so this only keeps the check true. Agents run on host threads of
            // `thread_stack_bytes` (see `Sandbox::on_agent_thread`).
            .async_stack_size(thread_stack_bytes)
            .wasm_backtrace_max_frames(None)
            .memory_init_cow(config.memory_init_cow);
        if config.fast_compile {
            cfg.cranelift_opt_level(wasmtime::OptLevel::None)
                .cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass)
                .parallel_compilation(false);
        }
        cfg.wasm_features(WasmFeatures::all(), false);
        cfg.wasm_features(policy.features.wasm_features(), true);
        match config.allocation {
            Allocation::Pooling { slots } => {
                let mut pool = PoolingAllocationConfig::new();
                // Every per-module limit of the pool is a policy limit that validation
                // also enforces, so a module that validates always fits.
                let memories = u32::try_from(l.memories).unwrap_or(u32::MAX);
                let tables = u32::try_from(l.tables).unwrap_or(u32::MAX);
                pool.total_core_instances(slots)
                    .total_memories(slots.saturating_mul(memories))
                    .total_tables(slots.saturating_mul(tables))
                    .max_memories_per_module(memories)
                    .max_tables_per_module(tables)
                    .max_memory_size(l.memory_bytes as usize)
                    .table_elements(l.table_elements as usize)
                    .max_core_instance_size(
                        usize::try_from(l.core_instance_bytes()).unwrap_or(usize::MAX),
                    )
                    .total_component_instances(0);
                if let Some(bytes) = config.keep_resident {
                    pool.linear_memory_keep_resident(bytes)
                        .table_keep_resident(bytes);
                }
                if config.pagemap_scan {
                    pool.pagemap_scan(wasmtime::Enabled::Auto);
                }
                cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            }
            Allocation::OnDemand => {
                cfg.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            }
        }
        let engine = Engine::new(&cfg).map_err(ErrorKind::Engine)?;
        let mut linker = Linker::new(&engine);
        crate::host::define(&mut linker).map_err(ErrorKind::Engine)?;

        let shutdown = Arc::new(AtomicBool::new(false));
        let crash = Arc::new(AtomicBool::new(false));
        let tick = config.epoch_tick;
        let handle = {
            let engine = engine.clone();
            let shutdown = shutdown.clone();
            let crash = crash.clone();
            std::thread::Builder::new()
                .name(EPOCH_THREAD.into())
                .spawn(move || {
                    while !shutdown.load(Ordering::SeqCst) {
                        std::thread::park_timeout(tick);
                        assert!(!crash.load(Ordering::SeqCst), "crash requested by a test");
                        engine.increment_epoch();
                    }
                })
                .map_err(|source| ErrorKind::ThreadStart {
                    thread: EPOCH_THREAD.into(),
                    source,
                })?
        };
        let group_members = match config.allocation {
            Allocation::Pooling { slots } => Some(slots as usize),
            Allocation::OnDemand => None,
        };
        Ok(Sandbox {
            inner: Arc::new(Inner {
                policy: Arc::new(policy),
                engine,
                linker,
                cache: Mutex::new(HashMap::new()),
                cache_capacity: config.cache_capacity,
                stop_generation: Arc::new(AtomicU64::new(0)),
                thread_stack_bytes,
                group_members,
                ticker: Ticker {
                    shutdown,
                    crash,
                    handle: Some(handle),
                },
            }),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The stack size, in bytes, of a host thread that runs this sandbox's agents:
    /// `limits.stack_bytes` plus [`SandboxConfig::host_stack_margin`]. A host that
    /// runs agents on threads of its own (a thread pool, tokio's blocking threads,
    /// which have 2 MiB) must give them at least this much, or a deep recursion
    /// overflows the host stack and aborts the process instead of ending with
    /// `stack_overflow`. [`Sandbox::on_agent_thread`] and
    /// [`Sandbox::agent_thread_builder`] do it.
    pub fn thread_stack_bytes(&self) -> usize {
        self.inner.thread_stack_bytes
    }

    /// A thread builder named `name` with a stack of [`Sandbox::thread_stack_bytes`],
    /// for hosts that keep agent threads of their own (join them with
    /// [`join_thread`], so that a panic surfaces as an error naming the thread).
    pub fn agent_thread_builder(&self, name: &str) -> std::thread::Builder {
        std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(self.inner.thread_stack_bytes)
    }

    /// Runs `f` on a new thread named `name`, sized by
    /// [`Sandbox::thread_stack_bytes`], and waits for it. `f` may borrow from the
    /// caller. A thread that cannot start, or that panics, gives
    /// [`ErrorKind::ThreadStart`] or [`ErrorKind::ThreadPanicked`] naming it.
    pub fn on_agent_thread<T: Send>(&self, name: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|scope| {
            let handle = self
                .agent_thread_builder(name)
                .spawn_scoped(scope, f)
                .map_err(|source| ErrorKind::ThreadStart {
                    thread: name.to_string(),
                    source,
                })?;
            handle
                .join()
                .map_err(|panic| panicked(name.to_string(), panic))
        })
    }

    /// The most members a group run may have: the pooling allocator's instance
    /// slots (every member keeps its instance for the whole run). `None` with
    /// on-demand allocation, which has no such bound.
    pub fn max_group_members(&self) -> Option<usize> {
        self.inner.group_members
    }

    /// An error when the epoch thread has died: without it no wall-clock deadline
    /// would fire, so no run may start.
    pub(crate) fn check_threads(&self) -> Result<()> {
        match &self.inner.ticker.handle {
            Some(h) if !h.is_finished() => Ok(()),
            _ => Err(ErrorKind::ThreadStopped {
                thread: EPOCH_THREAD.into(),
                consequence: "wall-clock deadlines cannot be enforced, so no run starts",
            }
            .into()),
        }
    }

    /// Makes the epoch thread panic, to test that its death surfaces.
    #[doc(hidden)]
    pub fn crash_epoch_thread_for_test(&self) {
        self.inner.ticker.crash.store(true, Ordering::SeqCst);
    }

    /// The largest input a run accepts, checked before a run starts.
    pub(crate) fn check_input(&self, len: usize) -> Result<()> {
        let cap = self.inner.policy.limits.input_bytes;
        if len as u64 > cap {
            return Err(ErrorKind::InputTooLarge {
                bytes: len as u64,
                cap,
            }
            .into());
        }
        Ok(())
    }

    /// A handle for the emergency stop.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            generation: self.inner.stop_generation.clone(),
            engine: self.inner.engine.clone(),
        }
    }

    /// Static validation only.
    pub fn validate(&self, bytes: &[u8]) -> Verdict {
        validate(&self.inner.policy, bytes)
    }

    /// Validates and, when admitted, compiles a module (cached by agent id).
    ///
    /// `approved` is true when a person released the module from quarantine: it is then
    /// admitted despite a low score, unless it has a structural finding.
    pub fn admit(&self, bytes: &[u8], approved: bool) -> Result<Admission> {
        let id = crate::text::agent_id(bytes);
        let cached = self
            .inner
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&id).cloned());
        let agent = match cached {
            Some(a) => a,
            None => {
                let verdict = self.validate(bytes);
                let form = match (&verdict.form, verdict.has_structural_finding()) {
                    (Some(form), false) => form.clone(),
                    _ => return Ok(Admission::Rejected(verdict)),
                };
                let guarded = crate::instrument::guard_bulk_operations(bytes)?;
                let module = Module::new(&self.inner.engine, guarded.as_deref().unwrap_or(bytes))
                    .map_err(ErrorKind::Compile)?;
                let pre = self
                    .inner
                    .linker
                    .instantiate_pre(&module)
                    .map_err(ErrorKind::Compile)?;
                let agent = Arc::new(Agent { verdict, form, pre });
                if let Ok(mut c) = self.inner.cache.lock() {
                    if c.len() >= self.inner.cache_capacity {
                        c.clear();
                    }
                    c.insert(id, agent.clone());
                }
                agent
            }
        };
        let v = &agent.verdict;
        if v.admitted || (approved && !v.has_structural_finding()) {
            Ok(Admission::Admitted(agent))
        } else {
            Ok(Admission::Rejected(v.clone()))
        }
    }

    /// Runs `act` once under the policy's limits. Never panics, whatever the module does.
    ///
    /// Input bytes longer than `limits.input_bytes` are refused with
    /// [`ErrorKind::InputTooLarge`] before the run starts (no outcome, no quarantine:
    /// the caller gave too much, the module did nothing).
    ///
    /// Call it on a thread of at least [`Sandbox::thread_stack_bytes`] (see
    /// [`Sandbox::on_agent_thread`]).
    pub fn run(&self, agent: &Agent, input: Input) -> Result<RunReport> {
        self.run_with_fuel(agent, input, self.inner.policy.limits.fuel_per_call)
    }

    /// [`Sandbox::run`] with at most `fuel` to spend instead of the policy's
    /// `limits.fuel_per_call` (a smaller budget, such as an evolution task's budget per
    /// case; a larger one is cut to the policy's). Running out of it ends the run
    /// `out_of_fuel`, as the policy's own limit does.
    pub fn run_with_fuel(&self, agent: &Agent, input: Input, fuel: u64) -> Result<RunReport> {
        let fuel = fuel.min(self.inner.policy.limits.fuel_per_call);
        self.check_threads()?;
        if let Input::Bytes(b) = &input {
            self.check_input(b.len())?;
        }
        let (args, bytes_in) = match (&agent.form, input) {
            (ActForm::Bytes, Input::Bytes(b)) => (Vec::new(), b),
            (ActForm::Typed { params, .. }, Input::Typed(args)) => {
                let fits = args.len() == params.len()
                    && args.iter().zip(params).all(|(a, p)| {
                        matches!(
                            (a, p),
                            (Value::I64(_), Param::I64) | (Value::F64(_), Param::F64)
                        )
                    });
                if !fits {
                    return Err(ErrorKind::Args(format!(
                        "{} argument(s) given do not match act's {} parameter(s)",
                        args.len(),
                        params.len()
                    ))
                    .into());
                }
                (args, Vec::new())
            }
            (ActForm::Bytes, Input::Typed(_)) => {
                return Err(ErrorKind::Args(
                    "this agent has the bytes form: give input bytes, not arguments".into(),
                )
                .into());
            }
            (ActForm::Typed { .. }, Input::Bytes(_)) => {
                return Err(ErrorKind::Args(
                    "this agent has the typed form: give arguments, not input bytes".into(),
                )
                .into());
            }
        };
        Ok(self.run_checked(agent, args, bytes_in, fuel))
    }

    /// A store for one run: limiter, fuel and the epoch deadline set from the policy
    /// (`fuel`, at most the policy's, to spend).
    pub(crate) fn new_store(&self, input: Vec<u8>, fuel: u64) -> (Store<HostState>, Instant) {
        let l = &self.inner.policy.limits;
        let start = Instant::now();
        let mut store = Store::new(&self.inner.engine, HostState::new(l, input));
        store.limiter(|s| &mut s.limiter);
        let _ = store.set_fuel(fuel.min(l.fuel_per_call));
        let wall_ms = l.wall_clock_ms;
        let generation = self.inner.stop_generation.clone();
        let started_at = generation.load(Ordering::SeqCst);
        store.epoch_deadline_callback(move |ctx| {
            if generation.load(Ordering::SeqCst) != started_at {
                return Err(wasmtime::Error::new(HostTrap::EmergencyStop));
            }
            if Instant::now() >= ctx.data().deadline {
                return Err(wasmtime::Error::new(HostTrap::Deadline(wall_ms)));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        (store, start)
    }

    /// Sets up a store and instantiates the agent without calling it: the cost the
    /// instantiation bench measures. True when instantiation succeeded.
    #[doc(hidden)]
    pub fn instantiate_only(&self, agent: &Agent) -> bool {
        let (mut store, _) = self.new_store(Vec::new(), self.inner.policy.limits.fuel_per_call);
        agent.pre.instantiate(&mut store).is_ok()
    }

    fn run_checked(&self, agent: &Agent, args: Vec<Value>, input: Vec<u8>, fuel: u64) -> RunReport {
        let (mut store, start) = self.new_store(input, fuel);
        let mut instantiate = None;
        let result = call(&mut store, agent, &args, start, &mut instantiate);
        let wall = start.elapsed();
        let fuel_used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let (outcome, trap_message, result) = match result {
            Ok(r) => (Outcome::Ok, None, Some(r)),
            Err(e) => {
                let (o, m) = classify(&e);
                (o, Some(m), None)
            }
        };
        let st = store.into_data();
        RunReport {
            outcome,
            trap_message,
            result,
            output: st.output,
            logs: st.logs,
            logs_dropped: st.logs_dropped,
            fuel_used,
            wall,
            instantiate,
        }
    }
}

fn call(
    store: &mut Store<HostState>,
    agent: &Agent,
    args: &[Value],
    start: Instant,
    instantiated: &mut Option<Duration>,
) -> wasmtime::Result<RunResult> {
    let instance = agent.pre.instantiate(&mut *store)?;
    *instantiated = Some(start.elapsed());
    match &agent.form {
        ActForm::Bytes => {
            let act = instance.get_typed_func::<(), i32>(&mut *store, crate::abi::ACT)?;
            Ok(RunResult::Status(act.call(&mut *store, ())?))
        }
        ActForm::Typed { result, .. } => {
            let act = instance
                .get_func(&mut *store, crate::abi::ACT)
                .ok_or_else(|| wasmtime::Error::msg("act export vanished"))?;
            let params: Vec<Val> = args
                .iter()
                .map(|a| match a {
                    Value::I64(v) => Val::I64(*v),
                    Value::F64(b) => Val::F64(*b),
                })
                .collect();
            let mut out = [Val::I64(0)];
            act.call(&mut *store, &params, &mut out)?;
            let v = match (result, &out[0]) {
                (Param::I64, Val::I64(v)) => Value::I64(*v),
                (Param::F64, Val::F64(b)) => Value::F64(*b),
                _ => return Err(wasmtime::Error::msg("act returned an unexpected type")),
            };
            Ok(RunResult::Value(v))
        }
    }
}

/// Joins a thread; a panic becomes [`ErrorKind::ThreadPanicked`] naming it (its name, or
/// `unnamed`), never a silent default.
pub fn join_thread<T>(handle: JoinHandle<T>) -> Result<T> {
    let name = handle.thread().name().unwrap_or("unnamed").to_string();
    handle.join().map_err(|panic| panicked(name, panic))
}

/// [`ErrorKind::ThreadPanicked`] for the thread `thread` and its panic payload.
fn panicked(thread: String, panic: Box<dyn std::any::Any + Send>) -> crate::Error {
    ErrorKind::ThreadPanicked {
        thread,
        message: panic_message(panic.as_ref()),
    }
    .into()
}

/// The message of a panic payload (`&str` or `String`), escaped.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        escape(s)
    } else if let Some(s) = panic.downcast_ref::<String>() {
        escape(s)
    } else {
        "(no message)".into()
    }
}

/// Maps a wasmtime error to an outcome word and an escaped message.
pub(crate) fn classify(err: &wasmtime::Error) -> (Outcome, String) {
    if let Some(h) = err.downcast_ref::<HostTrap>() {
        return (h.outcome(), h.to_string());
    }
    if let Some(t) = err.downcast_ref::<Trap>() {
        let o = match t {
            Trap::StackOverflow => Outcome::StackOverflow,
            Trap::MemoryOutOfBounds
            | Trap::HeapMisaligned
            | Trap::TableOutOfBounds
            | Trap::ArrayOutOfBounds => Outcome::OutOfBounds,
            Trap::IndirectCallToNull
            | Trap::BadSignature
            | Trap::NullReference
            | Trap::CastFailure => Outcome::IndirectCall,
            Trap::IntegerOverflow => Outcome::IntegerOverflow,
            Trap::IntegerDivisionByZero => Outcome::DivisionByZero,
            Trap::BadConversionToInteger => Outcome::BadConversion,
            Trap::UnreachableCodeReached => Outcome::Unreachable,
            Trap::Interrupt => Outcome::Deadline,
            Trap::OutOfFuel => Outcome::OutOfFuel,
            Trap::AllocationTooLarge => Outcome::MemoryLimit,
            _ => Outcome::HostError,
        };
        return (o, t.to_string());
    }
    (Outcome::HostError, escape(&format!("{err:#}")))
}
