//! The resource limiter of a store: memory and table growth against the policy's caps.

use crate::trap::HostTrap;
use wasmtime::ResourceLimiter;

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

impl Limiter {
    /// The caps of `limits`.
    pub(crate) fn new(limits: &crate::policy::Limits) -> Limiter {
        Limiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
        }
    }
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
