//! The in-memory host used when an agent is built for a target other than wasm32, so
//! agents can be unit-tested with `cargo test`. It follows the runtime's semantics for
//! input, output, logs and messages, without the limits (those are the sandbox's job).
//!
//! ```
//! let _host = agent_sdk::testing::reset(b"input");
//! assert_eq!(agent_sdk::input_len(), 5);
//! agent_sdk::write(b"out");
//! assert_eq!(agent_sdk::testing::output(), b"out");
//! ```
//!
//! Tests run on several threads at once, and an agent's `static` buffers are shared by
//! all of them: keep the lock [`reset`] returns (`let _host = reset(…)`) for the whole
//! test, and the tests that do run one at a time, as calls of a wasm32 agent do. Call
//! `act` through [`call`] to get a panic back as an error with its log line, as the
//! sandbox reports it (a plain call panics the test, which `#[should_panic]` expects).

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

/// The lock of the agent's shared state: one test at a time holds it.
static SHARED: std::sync::Mutex<()> = std::sync::Mutex::new(());

std::thread_local! {
    /// Whether this thread holds [`SHARED`] (a second `reset` in one test keeps it).
    static HELD: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    /// The log line of the last panic on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A test's hold on the agent's shared state, from [`reset`] until dropped.
pub struct HostLock(Option<std::sync::MutexGuard<'static, ()>>);

impl Drop for HostLock {
    fn drop(&mut self) {
        if self.0.is_some() {
            HELD.with(|h| h.set(false));
        }
    }
}

/// Starts a fresh call with `input`: clears output, logs, peers and messages. Returns
/// the test's hold on the agent's shared state: kept (`let _host = reset(…)`), it makes
/// the tests that keep theirs run one at a time; a thread that holds it already keeps
/// its one hold.
pub fn reset(input: &[u8]) -> HostLock {
    let guard = if HELD.with(|h| h.get()) {
        None
    } else {
        // A test that panicked while holding it leaves it poisoned: the state is reset
        // here anyway.
        let g = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        HELD.with(|h| h.set(true));
        Some(g)
    };
    with_host(|h| {
        *h = Host {
            input: input.to_vec(),
            ..Host::default()
        }
    });
    HostLock(guard)
}

/// A panic of the agent, as [`call`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked {
    /// Its log line, as the wasm32 panic handler with `panic-message` writes it:
    /// `panicked at FILE:LINE: MESSAGE`.
    pub message: String,
}

/// Calls `f` (the agent's `act`): a panic comes back as an error with its log line,
/// which is also in [`logs`], as on wasm32, where the sandbox answers `unreachable`.
///
/// ```
/// let _host = agent_sdk::testing::reset(b"");
/// let r = agent_sdk::testing::call(|| -> i64 { panic!("no") });
/// assert!(r.unwrap_err().message.ends_with(": no"));
/// assert_eq!(agent_sdk::testing::logs().len(), 1);
/// ```
pub fn call<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(std::boxed::Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str));
            let location = info.location().map(|l| (l.file(), l.line()));
            let line = crate::PanicLine::new(location, message);
            let text = String::from_utf8_lossy(line.as_bytes()).into_owned();
            LAST_PANIC.with(|l| *l.borrow_mut() = Some(text));
            previous(info);
        }));
    });
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
        let message = LAST_PANIC
            .with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| "panicked".into());
        with_host(|h| h.logs.push(message.clone()));
        Panicked { message }
    })
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
