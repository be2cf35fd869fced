//! The mailboxes of a group run: what `send` and `recv` do with peers (the rules are
//! in the [hub's docs](crate::hub)).

use crate::abi::{SEND_MAILBOX_FULL, SEND_OK, SEND_TOO_LARGE, SEND_UNKNOWN_RECIPIENT};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The hub's state, shared by the mailboxes of one group run.
pub(crate) struct HubState {
    /// Each member's (name, agent id).
    pub(crate) names: Vec<(String, String)>,
    /// Each member's queued messages, with the round they were sent in.
    pub(crate) queues: Vec<VecDeque<(u32, Vec<u8>)>>,
    /// False once a member trapped.
    pub(crate) alive: Vec<bool>,
    /// Messages each member sent.
    pub(crate) sent: Vec<u32>,
    /// Messages each member received.
    pub(crate) received: Vec<u32>,
    /// `limits.mailbox_messages`.
    pub(crate) mailbox_messages: u64,
    /// `limits.message_bytes`.
    pub(crate) message_bytes: u64,
}

/// One member's view of the hub, kept in its store.
pub(crate) struct Mailbox {
    /// The member's index.
    pub(crate) me: usize,
    /// The round being run.
    pub(crate) round: u32,
    /// The hub.
    pub(crate) hub: Arc<Mutex<HubState>>,
}

impl Mailbox {
    /// `send` semantics; see the module docs.
    pub(crate) fn send(&self, to: &[u8], msg: &[u8]) -> i32 {
        let Ok(mut hub) = self.hub.lock() else {
            return SEND_UNKNOWN_RECIPIENT;
        };
        let Some(idx) = hub
            .names
            .iter()
            .position(|(name, id)| name.as_bytes() == to || id.as_bytes() == to)
        else {
            return SEND_UNKNOWN_RECIPIENT;
        };
        if msg.len() as u64 > hub.message_bytes {
            return SEND_TOO_LARGE;
        }
        if !hub.alive[idx] {
            return SEND_UNKNOWN_RECIPIENT;
        }
        if hub.queues[idx].len() as u64 >= hub.mailbox_messages {
            return SEND_MAILBOX_FULL;
        }
        let round = self.round;
        hub.queues[idx].push_back((round, msg.to_vec()));
        hub.sent[self.me] += 1;
        SEND_OK
    }

    /// The next deliverable message's length, if any.
    pub(crate) fn peek_len(&self) -> Option<usize> {
        let hub = self.hub.lock().ok()?;
        hub.queues[self.me]
            .front()
            .filter(|(r, _)| *r < self.round)
            .map(|(_, m)| m.len())
    }

    /// Takes the next deliverable message.
    pub(crate) fn pop(&self) -> Option<Vec<u8>> {
        let mut hub = self.hub.lock().ok()?;
        let round = self.round;
        let q = &mut hub.queues[self.me];
        if q.front().is_some_and(|(r, _)| *r < round) {
            let m = q.pop_front().map(|(_, m)| m);
            hub.received[self.me] += 1;
            m
        } else {
            None
        }
    }
}
