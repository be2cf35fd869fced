//! Per-run state of the host: the resource limiter, the output and log buffers and the
//! traps the host raises.

use crate::outcome::Outcome;
use crate::policy::Limits;
use wasmtime::ResourceLimiter;

/// A trap raised by the host (a limit or a bad host call). Carried through wasmtime as
/// the error of the trapping call and turned back into an [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostTrap {
    #[error("fuel exhausted")]
    OutOfFuel,
    #[error("wall-clock deadline of {0} ms passed")]
    Deadline(u64),
    #[error("interrupted by an emergency stop")]
    EmergencyStop,
    #[error("memory growth to {desired} bytes is over the cap of {cap} bytes")]
    MemoryLimit { desired: usize, cap: u64 },
    #[error("table growth to {desired} elements is over the cap of {cap}")]
    TableLimit { desired: usize, cap: u64 },
    #[error("output of {wanted} bytes is over the cap of {cap} bytes")]
    OutputLimit { wanted: u64, cap: u64 },
    #[error("host call `{func}`: range {ptr}+{len} is outside memory of {size} bytes")]
    OutOfBounds {
        func: &'static str,
        ptr: u32,
        len: u32,
        size: usize,
    },
    #[error("host call `{0}`: the module exports no `memory`")]
    NoMemory(&'static str),
}

impl HostTrap {
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            HostTrap::OutOfFuel => Outcome::OutOfFuel,
            HostTrap::Deadline(_) => Outcome::Deadline,
            HostTrap::EmergencyStop => Outcome::EmergencyStop,
            HostTrap::MemoryLimit { .. } => Outcome::MemoryLimit,
            HostTrap::TableLimit { .. } => Outcome::TableLimit,
            HostTrap::OutputLimit { .. } => Outcome::OutputLimit,
            HostTrap::OutOfBounds { .. } => Outcome::OutOfBounds,
            HostTrap::NoMemory(_) => Outcome::HostError,
        }
    }
}

/// Memory and table caps of one store.
///
/// Growth is judged in the order the Wasm spec and the policy ask for:
/// 1. past the memory's or table's own maximum (the one the module declares, or the
///    4 GiB / 2^32-element range of a 32-bit index): `memory.grow`/`table.grow`
///    answers `-1` and the program goes on, as in every engine;
/// 2. within that maximum but past the policy's cap (`limits.memory_bytes`,
///    `limits.table_elements`): the run traps with `memory_limit` / `table_limit`, so
///    a module that asks for more than the policy allows is stopped and judged.
///
/// wasmtime answers `-1` itself for growth a memory type cannot represent (past
/// 4 GiB) before it asks the limiter.
pub(crate) struct Limiter {
    memory_bytes: u64,
    table_elements: u64,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // `maximum` is the memory type's own: its declared maximum, or 4 GiB for a
        // 32-bit memory without one.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        if desired as u64 > self.memory_bytes {
            return Err(wasmtime::Error::new(HostTrap::MemoryLimit {
                desired,
                cap: self.memory_bytes,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // With the pooling allocator `maximum` is the smaller of the declared maximum
        // and the pool's slot (the policy cap), so only a maximum below the cap is
        // known to be the module's own. A declared maximum at or above the cap is
        // checked by the guard compiled in before every `table.grow`
        // (see `instrument`), which answers `-1` before wasmtime is asked.
        if maximum.is_some_and(|max| (max as u64) < self.table_elements && desired > max) {
            return Ok(false);
        }
        if desired as u64 > self.table_elements {
            return Err(wasmtime::Error::new(HostTrap::TableLimit {
                desired,
                cap: self.table_elements,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }
}

/// The data of one run's store.
pub(crate) struct HostState {
    pub(crate) limiter: Limiter,
    pub(crate) input: Vec<u8>,
    pub(crate) input_pos: usize,
    pub(crate) output: Vec<u8>,
    pub(crate) output_cap: u64,
    pub(crate) logs: Vec<String>,
    pub(crate) logs_dropped: u64,
    pub(crate) log_lines: u64,
    pub(crate) log_line_bytes: u64,
    pub(crate) host_call_fuel: u64,
    pub(crate) host_fuel_per_byte: u64,
    /// When the current call's wall-clock deadline passes.
    pub(crate) deadline: std::time::Instant,
    /// The group-run mailbox, when the agent runs with peers.
    pub(crate) mailbox: Option<crate::hub::Mailbox>,
}

impl HostState {
    pub(crate) fn new(limits: &Limits, input: Vec<u8>) -> HostState {
        HostState {
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                table_elements: limits.table_elements,
            },
            input,
            input_pos: 0,
            output: Vec::new(),
            output_cap: limits.output_bytes,
            logs: Vec::new(),
            logs_dropped: 0,
            log_lines: limits.log_lines,
            log_line_bytes: limits.log_line_bytes,
            host_call_fuel: limits.host_call_fuel,
            host_fuel_per_byte: limits.host_fuel_per_byte,
            deadline: std::time::Instant::now()
                + std::time::Duration::from_millis(limits.wall_clock_ms),
            mailbox: None,
        }
    }
}
