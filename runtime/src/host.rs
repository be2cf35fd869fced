//! The host functions of ABI v1 (import module `agent`) and the state of a run's store.
//!
//! Every host call charges `limits.host_call_fuel` plus `limits.host_fuel_per_byte` for
//! each byte it copies, so fuel bounds host work as well as guest work. Pointer ranges
//! are checked against the exported `memory`; a range outside it traps with
//! `out_of_bounds`.

use crate::abi::{self, HostFunction, RECV_NONE, RECV_TOO_SMALL, SEND_UNKNOWN_RECIPIENT};
use crate::limits::Limiter;
use crate::mailbox::Mailbox;
use crate::policy::Limits;
use crate::text::escape;
use crate::trap::HostTrap;
use std::fmt::Write;
use wasmtime::{Caller, Extern, Linker, Memory};

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
    pub(crate) mailbox: Option<Mailbox>,
}

impl HostState {
    pub(crate) fn new(limits: &Limits, input: Vec<u8>) -> HostState {
        HostState {
            limiter: Limiter::new(limits),
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

type Res<T> = wasmtime::Result<T>;

fn charge(caller: &mut Caller<'_, HostState>, bytes: u64) -> Res<()> {
    let st = caller.data();
    let cost = st
        .host_call_fuel
        .saturating_add(bytes.saturating_mul(st.host_fuel_per_byte));
    let fuel = caller.get_fuel()?;
    if fuel < cost {
        caller.set_fuel(0)?;
        return Err(wasmtime::Error::new(HostTrap::OutOfFuel));
    }
    caller.set_fuel(fuel - cost)
}

fn memory(caller: &mut Caller<'_, HostState>, func: &'static HostFunction) -> Res<Memory> {
    match caller.get_export(abi::MEMORY) {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::new(HostTrap::NoMemory(func.name))),
    }
}

/// The memory range `[ptr, ptr+len)` as a `usize` range, or an `out_of_bounds` trap.
fn range(
    func: &'static HostFunction,
    ptr: i32,
    len: i32,
    size: usize,
) -> Res<std::ops::Range<usize>> {
    let (p, l) = (ptr as u32, len as u32);
    let start = p as usize;
    match start.checked_add(l as usize) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(wasmtime::Error::new(HostTrap::OutOfBounds {
            func: func.name,
            ptr: p,
            len: l,
            size,
        })),
    }
}

/// A log line as it is kept: `raw` (the first bytes of a line of `total` bytes)
/// escaped, and cut so that the stored line — with a ` …[cut N bytes]` marker when
/// anything was left out — is at most `cap` bytes long. The cut falls between escaped
/// characters, never inside an escape such as `\x1b` or a UTF-8 character. When `cap`
/// is too small for the marker, the line is cut without one.
pub(crate) fn log_line(raw: &[u8], total: usize, cap: usize) -> String {
    let marker = |shown: usize| format!(" …[cut {} bytes]", total - shown);
    let budget = cap.saturating_sub(marker(0).len());
    let mut out = String::new();
    // Where the line stands at the last piece that still leaves room for the marker.
    let mut at_budget = (0, 0);
    let mut shown = 0;
    let mut piece = String::new();
    let mut complete = true;
    'outer: for chunk in raw.utf8_chunks() {
        let mut pieces: Vec<(usize, &str)> = Vec::new();
        let valid = chunk.valid();
        for (i, c) in valid.char_indices() {
            pieces.push((c.len_utf8(), &valid[i..i + c.len_utf8()]));
        }
        for (width, text) in pieces {
            piece.clear();
            piece.push_str(&escape(text));
            if out.len() + piece.len() > cap {
                complete = false;
                break 'outer;
            }
            out.push_str(&piece);
            shown += width;
            if out.len() <= budget {
                at_budget = (out.len(), shown);
            }
        }
        for b in chunk.invalid() {
            piece.clear();
            let _ = write!(piece, "\\x{b:02x}");
            if out.len() + piece.len() > cap {
                complete = false;
                break 'outer;
            }
            out.push_str(&piece);
            shown += 1;
            if out.len() <= budget {
                at_budget = (out.len(), shown);
            }
        }
    }
    if complete && shown == total {
        return out;
    }
    if budget == 0 {
        // No room for the marker: the line is simply cut.
        return out;
    }
    out.truncate(at_budget.0);
    out.push_str(&marker(at_budget.1));
    out
}

/// Defines the ABI v1 host functions in `linker`.
pub(crate) fn define(linker: &mut Linker<HostState>) -> Res<()> {
    linker.func_wrap(
        abi::MODULE,
        abi::INPUT_LEN.name,
        |mut caller: Caller<'_, HostState>| -> Res<i32> {
            charge(&mut caller, 0)?;
            Ok(i32::try_from(caller.data().input.len()).unwrap_or(i32::MAX))
        },
    )?;

    linker.func_wrap(
        abi::MODULE,
        abi::READ_INPUT.name,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Res<i32> {
            let mem = memory(&mut caller, &abi::READ_INPUT)?;
            let r = range(&abi::READ_INPUT, ptr, len, mem.data_size(&caller))?;
            let st = caller.data();
            let n = (st.input.len() - st.input_pos).min(r.len());
            charge(&mut caller, n as u64)?;
            let (data, st) = mem.data_and_store_mut(&mut caller);
            data[r.start..r.start + n].copy_from_slice(&st.input[st.input_pos..st.input_pos + n]);
            st.input_pos += n;
            Ok(n as i32)
        },
    )?;

    linker.func_wrap(
        abi::MODULE,
        abi::WRITE_OUTPUT.name,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Res<i32> {
            let mem = memory(&mut caller, &abi::WRITE_OUTPUT)?;
            let r = range(&abi::WRITE_OUTPUT, ptr, len, mem.data_size(&caller))?;
            let st = caller.data();
            let wanted = st.output.len() as u64 + r.len() as u64;
            if wanted > st.output_cap {
                return Err(wasmtime::Error::new(HostTrap::OutputLimit {
                    wanted,
                    cap: st.output_cap,
                }));
            }
            charge(&mut caller, r.len() as u64)?;
            let (data, st) = mem.data_and_store_mut(&mut caller);
            st.output.extend_from_slice(&data[r.clone()]);
            Ok(r.len() as i32)
        },
    )?;

    linker.func_wrap(
        abi::MODULE,
        abi::LOG.name,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Res<()> {
            let mem = memory(&mut caller, &abi::LOG)?;
            let r = range(&abi::LOG, ptr, len, mem.data_size(&caller))?;
            let st = caller.data();
            if st.logs.len() as u64 >= st.log_lines {
                charge(&mut caller, 0)?;
                caller.data_mut().logs_dropped += 1;
                return Ok(());
            }
            let cap = usize::try_from(st.log_line_bytes).unwrap_or(usize::MAX);
            // Each kept byte makes at least one byte of the escaped line, so no more
            // than `cap` bytes (and the rest of a character cut there) can show.
            let look = r.len().min(cap.saturating_add(4));
            charge(&mut caller, look as u64)?;
            let (data, st) = mem.data_and_store_mut(&mut caller);
            let line = log_line(&data[r.start..r.start + look], r.len(), cap);
            st.logs.push(line);
            Ok(())
        },
    )?;

    linker.func_wrap(
        abi::MODULE,
        abi::SEND.name,
        |mut caller: Caller<'_, HostState>,
         to_ptr: i32,
         to_len: i32,
         msg_ptr: i32,
         msg_len: i32|
         -> Res<i32> {
            let mem = memory(&mut caller, &abi::SEND)?;
            let size = mem.data_size(&caller);
            let to = range(&abi::SEND, to_ptr, to_len, size)?;
            let msg = range(&abi::SEND, msg_ptr, msg_len, size)?;
            charge(&mut caller, (to.len() + msg.len()) as u64)?;
            let (data, st) = mem.data_and_store_mut(&mut caller);
            Ok(match &st.mailbox {
                Some(mb) => mb.send(&data[to], &data[msg]),
                // A single run has no peers: every recipient is unknown.
                None => SEND_UNKNOWN_RECIPIENT,
            })
        },
    )?;

    linker.func_wrap(
        abi::MODULE,
        abi::RECV.name,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Res<i32> {
            let mem = memory(&mut caller, &abi::RECV)?;
            let r = range(&abi::RECV, ptr, len, mem.data_size(&caller))?;
            let next = caller.data().mailbox.as_ref().and_then(|mb| mb.peek_len());
            let Some(n) = next else {
                charge(&mut caller, 0)?;
                return Ok(RECV_NONE);
            };
            if n > r.len() {
                charge(&mut caller, 0)?;
                return Ok(RECV_TOO_SMALL);
            }
            charge(&mut caller, n as u64)?;
            let (data, st) = mem.data_and_store_mut(&mut caller);
            let msg = st
                .mailbox
                .as_ref()
                .and_then(|mb| mb.pop())
                .unwrap_or_default();
            data[r.start..r.start + msg.len()].copy_from_slice(&msg);
            Ok(msg.len() as i32)
        },
    )?;
    Ok(())
}
