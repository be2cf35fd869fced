//! The traps the host raises: a limit of the policy or a bad host call.

use crate::outcome::Outcome;

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
