//! The communication hub: a group of bytes-form agents that exchange messages through
//! `send`/`recv`, run in rounds.
//!
//! Every member is instantiated once and keeps its instance (and so its memory and
//! globals) for the whole group run. Round 0 calls every member; each later round calls
//! the members that have mail. A message sent in round r can be received from round
//! r+1 on. The run ends when no live member has mail waiting (quiescent), or after
//! `limits.max_rounds` rounds. Each call gets the full `limits.fuel_per_call` and
//! `limits.wall_clock_ms` and sees the member's input from its start. A member that
//! traps leaves the group; mail to it is dropped.
//!
//! Recipients are named by their member name or their agent id. `send` answers 0, or
//! `-1` unknown recipient, `-2` the recipient's mailbox already holds
//! `limits.mailbox_messages` messages, `-3` the message is over `limits.message_bytes`.
//! `recv` answers the message length, `-1` when no message is waiting, or `-2` when the
//! next message is longer than the buffer (it stays queued).
//!
//! A group has at most [`Sandbox::max_group_members`] members (the pooling allocator's
//! instance slots); a larger one is refused up front with
//! [`ErrorKind::GroupTooLarge`]. Each member's input
//! is capped by `limits.input_bytes`. The members run one after another on the
//! calling thread, which must have [`Sandbox::thread_stack_bytes`] of stack.

pub use crate::abi::{RECV_TOO_SMALL, SEND_TOO_LARGE};
use crate::error::{ErrorKind, Result};
use crate::mailbox::{HubState, Mailbox};
use crate::outcome::Outcome;
use crate::sandbox::{Agent, RunReport, RunResult, Sandbox, classify};
use crate::validate::ActForm;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A member of a group run.
pub struct Member {
    /// Its name in the group (what peers pass to `send`).
    pub name: String,
    /// The admitted agent; it must have the bytes form.
    pub agent: Arc<Agent>,
    /// Its input bytes.
    pub input: Vec<u8>,
}

/// How one member fared.
#[derive(Clone, Debug)]
pub struct MemberReport {
    /// Its name.
    pub name: String,
    /// Its agent id.
    pub agent_id: String,
    /// Outcome (the trap that removed it, or ok), last status, all output and logs,
    /// fuel and wall time summed over its calls.
    pub report: RunReport,
    /// How many times `act` was called.
    pub calls: u32,
    /// Messages it sent.
    pub messages_sent: u32,
    /// Messages it received.
    pub messages_received: u32,
}

/// The report of a group run.
#[derive(Clone, Debug)]
pub struct GroupReport {
    /// Rounds run.
    pub rounds: u32,
    /// True when the run ended because no mail was left; false when it hit
    /// `limits.max_rounds`.
    pub quiescent: bool,
    /// One report per member, in the order given.
    pub members: Vec<MemberReport>,
}

struct Live {
    store: wasmtime::Store<crate::host::HostState>,
    act: Option<wasmtime::TypedFunc<(), i32>>,
    report: RunReport,
    calls: u32,
}

impl Sandbox {
    /// Runs a group of bytes-form agents that talk through `send`/`recv`, in rounds.
    /// See the [module docs](crate::hub) for the rules.
    pub fn run_group(&self, members: Vec<Member>) -> Result<GroupReport> {
        if members.is_empty() {
            return Err(ErrorKind::Args("a group run needs at least one agent".into()).into());
        }
        // Every member keeps its instance for the whole run: more members than the
        // pool has slots would leave the last ones without an instance.
        if let Some(max) = self.max_group_members()
            && members.len() > max
        {
            return Err(ErrorKind::GroupTooLarge {
                members: members.len(),
                max,
            }
            .into());
        }
        self.check_threads()?;
        for m in &members {
            self.check_input(m.input.len())?;
        }
        for m in &members {
            if m.agent.form() != &ActForm::Bytes {
                return Err(ErrorKind::Args(format!(
                    "{} has the typed form; only bytes-form agents can exchange messages",
                    crate::text::escape(&m.name)
                ))
                .into());
            }
        }
        let limits = self.policy().limits.clone();
        let n = members.len();
        let hub = Arc::new(Mutex::new(HubState {
            names: members
                .iter()
                .map(|m| (m.name.clone(), m.agent.id().to_string()))
                .collect(),
            queues: vec![VecDeque::new(); n],
            alive: vec![true; n],
            sent: vec![0; n],
            received: vec![0; n],
            mailbox_messages: limits.mailbox_messages,
            message_bytes: limits.message_bytes,
        }));
        let wall = Duration::from_millis(limits.wall_clock_ms);
        let mut live: Vec<Live> = Vec::with_capacity(n);
        for (i, m) in members.iter().enumerate() {
            let (mut store, start) =
                self.new_store(m.input.clone(), self.policy().limits.fuel_per_call);
            store.data_mut().mailbox = Some(Mailbox {
                me: i,
                round: 0,
                hub: hub.clone(),
            });
            let res = m
                .agent
                .pre
                .instantiate(&mut store)
                .and_then(|inst| inst.get_typed_func::<(), i32>(&mut store, crate::abi::ACT));
            let fuel_used = limits
                .fuel_per_call
                .saturating_sub(store.get_fuel().unwrap_or(0));
            let mut report = RunReport {
                outcome: Outcome::Ok,
                trap_message: None,
                result: None,
                output: Vec::new(),
                logs: Vec::new(),
                logs_dropped: 0,
                fuel_used,
                wall: start.elapsed(),
                instantiate: res.is_ok().then(|| start.elapsed()),
            };
            let act = match res {
                Ok(f) => Some(f),
                Err(e) => {
                    let (o, msg) = classify(&e);
                    report.outcome = o;
                    report.trap_message = Some(msg);
                    if let Ok(mut h) = hub.lock() {
                        h.alive[i] = false;
                    }
                    None
                }
            };
            live.push(Live {
                store,
                act,
                report,
                calls: 0,
            });
        }

        let mut round = 0u32;
        let quiescent = loop {
            if u64::from(round) >= limits.max_rounds {
                break false;
            }
            for l in live.iter_mut() {
                let Some(act) = l.act.clone() else { continue };
                let has_mail = match &mut l.store.data_mut().mailbox {
                    Some(mb) => {
                        mb.round = round;
                        mb.peek_len().is_some()
                    }
                    None => false,
                };
                if round > 0 && !has_mail {
                    continue;
                }
                let st = l.store.data_mut();
                st.input_pos = 0;
                let start = Instant::now();
                st.deadline = start + wall;
                let _ = l.store.set_fuel(limits.fuel_per_call);
                let res = act.call(&mut l.store, ());
                l.calls += 1;
                l.report.wall += start.elapsed();
                l.report.fuel_used += limits
                    .fuel_per_call
                    .saturating_sub(l.store.get_fuel().unwrap_or(0));
                match res {
                    Ok(status) => l.report.result = Some(RunResult::Status(status)),
                    Err(e) => {
                        let (o, msg) = classify(&e);
                        l.report.outcome = o;
                        l.report.trap_message = Some(msg);
                        l.act = None;
                        if let Some(mb) = &l.store.data().mailbox
                            && let Ok(mut h) = mb.hub.lock()
                        {
                            h.alive[mb.me] = false;
                            h.queues[mb.me].clear();
                        }
                    }
                }
            }
            round += 1;
            let pending = hub
                .lock()
                .is_ok_and(|h| (0..n).any(|i| h.alive[i] && !h.queues[i].is_empty()));
            if !pending {
                break true;
            }
        };

        let (sent, received) = hub
            .lock()
            .map(|h| (h.sent.clone(), h.received.clone()))
            .unwrap_or_else(|_| (vec![0; n], vec![0; n]));
        let reports = members
            .into_iter()
            .zip(live)
            .enumerate()
            .map(|(i, (m, l))| {
                let mut report = l.report;
                let st = l.store.into_data();
                report.output = st.output;
                report.logs = st.logs;
                report.logs_dropped = st.logs_dropped;
                MemberReport {
                    name: m.name,
                    agent_id: m.agent.id().to_string(),
                    report,
                    calls: l.calls,
                    messages_sent: sent[i],
                    messages_received: received[i],
                }
            })
            .collect();
        Ok(GroupReport {
            rounds: round,
            quiescent,
            members: reports,
        })
    }
}
