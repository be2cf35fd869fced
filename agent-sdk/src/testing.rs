//! The in-memory host used when an agent is built for a target other than wasm32, so
//! agents can be unit-tested with `cargo test`. It follows the runtime's semantics for
//! input, output, logs and messages, without the limits (those are the sandbox's job).
//!
//! ```
//! agent_sdk::testing::reset(b"input");
//! assert_eq!(agent_sdk::input_len(), 5);
//! agent_sdk::write(b"out");
//! assert_eq!(agent_sdk::testing::output(), b"out");
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::string::String;
use std::vec::Vec;

/// The state of the in-memory host (one per thread).
#[derive(Default)]
pub struct Host {
    pub(crate) input: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) output: Vec<u8>,
    pub(crate) logs: Vec<String>,
    pub(crate) peers: Vec<String>,
    pub(crate) inbox: VecDeque<Vec<u8>>,
    pub(crate) sent: Vec<(String, Vec<u8>)>,
}

std::thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host::default());
}

pub(crate) fn with_host<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// Starts a fresh call with `input`: clears output, logs, peers and messages.
pub fn reset(input: &[u8]) {
    with_host(|h| {
        *h = Host {
            input: input.to_vec(),
            ..Host::default()
        }
    });
}

/// The output written so far.
pub fn output() -> Vec<u8> {
    with_host(|h| h.output.clone())
}

/// The log lines written so far.
pub fn logs() -> Vec<String> {
    with_host(|h| h.logs.clone())
}

/// Makes `name` a known recipient for [`crate::send`].
pub fn add_peer(name: &str) {
    with_host(|h| h.peers.push(name.into()));
}

/// Puts a message in the agent's mailbox for [`crate::recv`].
pub fn deliver(msg: &[u8]) {
    with_host(|h| h.inbox.push_back(msg.to_vec()));
}

/// Takes the messages sent so far, as (recipient, message).
pub fn take_sent() -> Vec<(String, Vec<u8>)> {
    with_host(|h| core::mem::take(&mut h.sent))
}

/// How many messages wait in the agent's mailbox.
pub fn pending() -> usize {
    with_host(|h| h.inbox.len())
}

/// Runs `f` with `host` as this thread's host and keeps what it did in `host`, so one
/// thread can play several agents of a group run, each with a host of its own.
///
/// ```
/// let (mut a, mut b) = Default::default();
/// agent_sdk::testing::with(&mut a, || agent_sdk::testing::deliver(b"for a"));
/// assert_eq!(agent_sdk::testing::with(&mut a, agent_sdk::testing::pending), 1);
/// assert_eq!(agent_sdk::testing::with(&mut b, agent_sdk::testing::pending), 0);
/// ```
pub fn with<R>(host: &mut Host, f: impl FnOnce() -> R) -> R {
    with_host(|h| core::mem::swap(h, host));
    let result = f();
    with_host(|h| core::mem::swap(h, host));
    result
}

/// Starts another call in the same group run, as the hub does: the input is read from
/// its start again; output, logs, peers and mail are kept.
pub fn rewind() {
    with_host(|h| h.pos = 0);
}
