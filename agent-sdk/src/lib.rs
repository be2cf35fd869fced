//! Write T-Developer agents in Rust.
//!
//! An agent is a core WebAssembly module that exports `act` (ABI v1). This crate is
//! `no_std` and needs no allocator. It gives safe wrappers over every host function of
//! the `agent` import module and one way to declare the entry point, [`act!`]:
//!
//! ```
//! // Bytes form: input and output through the host.
//! agent_sdk::act! {
//!     fn() -> i32 {
//!         let mut buf = [0u8; 256];
//!         let input = agent_sdk::read_all(&mut buf);
//!         agent_sdk::write(input);
//!         0
//!     }
//! }
//! # agent_sdk::testing::reset(b"hi");
//! # assert_eq!(act(), 0);
//! # assert_eq!(agent_sdk::testing::output(), b"hi");
//! ```
//!
//! ```
//! // Typed form: up to eight i64/f64 parameters and one i64/f64 result.
//! agent_sdk::act! {
//!     fn(a: i64, b: i64) -> i64 { a.wrapping_add(b) }
//! }
//! # assert_eq!(act(2, 40), 42);
//! ```
//!
//! Build for `wasm32-unknown-unknown`; on any other target the host functions are
//! served by an in-memory host ([`testing`]) so agents can be unit-tested natively.
//! A panic in an agent becomes a trap (`unreachable`), never a hang.

#![no_std]

#[cfg(not(target_arch = "wasm32"))]
extern crate std;

mod sys;

#[cfg(all(feature = "alloc", target_arch = "wasm32"))]
pub mod bump;
#[cfg(feature = "fmt")]
mod fmt;
#[cfg(feature = "fmt")]
pub use fmt::LogBuffer;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// `send` returned this: the message was queued.
pub const SEND_OK: i32 = 0;
/// `send` returned this: no agent of that name or id takes part in the run.
pub const SEND_UNKNOWN_RECIPIENT: i32 = -1;
/// `send` returned this: the recipient's mailbox is full.
pub const SEND_MAILBOX_FULL: i32 = -2;
/// `send` returned this: the message is over the policy's message size.
pub const SEND_TOO_LARGE: i32 = -3;
/// `recv` returned this: no message is waiting.
pub const RECV_NONE: i32 = -1;
/// `recv` returned this: the next message is larger than the buffer (it stays queued).
pub const RECV_TOO_SMALL: i32 = -2;

/// Total length of this call's input in bytes.
///
/// ```
/// # agent_sdk::testing::reset(b"abc");
/// assert_eq!(agent_sdk::input_len(), 3);
/// ```
pub fn input_len() -> usize {
    sys::input_len().max(0) as usize
}

/// Reads the next input bytes into `buf`; returns how many were read (0 at the end).
/// Each call continues where the previous one stopped.
///
/// ```
/// # agent_sdk::testing::reset(b"abcde");
/// let mut buf = [0u8; 2];
/// assert_eq!(agent_sdk::read_input(&mut buf), 2);
/// assert_eq!(&buf, b"ab");
/// ```
pub fn read_input(buf: &mut [u8]) -> usize {
    let len = buf.len().min(i32::MAX as usize) as i32;
    sys::read_input(buf.as_mut_ptr(), len).max(0) as usize
}

/// Reads as much input as fits in `buf` and returns the part filled.
///
/// ```
/// # agent_sdk::testing::reset(b"hello");
/// let mut buf = [0u8; 64];
/// assert_eq!(agent_sdk::read_all(&mut buf), b"hello");
/// ```
pub fn read_all(buf: &mut [u8]) -> &[u8] {
    let mut filled = 0;
    while filled < buf.len() {
        let n = read_input(&mut buf[filled..]);
        if n == 0 {
            break;
        }
        filled += n;
    }
    &buf[..filled]
}

/// Appends `bytes` to the output. Past the policy's output cap the host traps the
/// agent (`output_limit`).
///
/// ```
/// # agent_sdk::testing::reset(b"");
/// agent_sdk::write(b"hi");
/// # assert_eq!(agent_sdk::testing::output(), b"hi");
/// ```
pub fn write(bytes: &[u8]) {
    let len = bytes.len().min(i32::MAX as usize) as i32;
    sys::write_output(bytes.as_ptr(), len);
}

/// Writes one log line. Past the policy's log cap lines are dropped and counted; long
/// lines are cut.
///
/// ```
/// # agent_sdk::testing::reset(b"");
/// agent_sdk::log("starting");
/// # assert_eq!(agent_sdk::testing::logs(), ["starting"]);
/// ```
pub fn log(line: &str) {
    log_bytes(line.as_bytes());
}

/// Writes one log line of raw bytes (the host escapes what is not printable).
///
/// ```
/// # agent_sdk::testing::reset(b"");
/// agent_sdk::log_bytes(b"status \x07");
/// ```
pub fn log_bytes(line: &[u8]) {
    let len = line.len().min(i32::MAX as usize) as i32;
    sys::log(line.as_ptr(), len);
}

/// Why a message was not sent.
///
/// ```
/// # agent_sdk::testing::reset(b"");
/// match agent_sdk::send("pong", b"ping") {
///     Ok(()) => {}
///     Err(agent_sdk::SendError::UnknownRecipient) => agent_sdk::log("pong is not here"),
///     Err(e) => agent_sdk::log("not sent"),
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No agent of that name or id takes part in this run.
    UnknownRecipient,
    /// The recipient's mailbox is full.
    MailboxFull,
    /// The message is over the policy's message size.
    TooLarge,
    /// Another refusal code from the host.
    Other(i32),
}

/// Sends `msg` to another agent of the run, named by its name in the group or its
/// agent id. The recipient can read it from the next round on.
///
/// ```
/// # agent_sdk::testing::reset(b"");
/// # agent_sdk::testing::add_peer("pong");
/// assert_eq!(agent_sdk::send("pong", b"ping"), Ok(()));
/// assert_eq!(agent_sdk::send("nobody", b"ping"), Err(agent_sdk::SendError::UnknownRecipient));
/// ```
pub fn send(to: &str, msg: &[u8]) -> Result<(), SendError> {
    let code = sys::send(
        to.as_ptr(),
        to.len().min(i32::MAX as usize) as i32,
        msg.as_ptr(),
        msg.len().min(i32::MAX as usize) as i32,
    );
    match code {
        SEND_OK => Ok(()),
        SEND_UNKNOWN_RECIPIENT => Err(SendError::UnknownRecipient),
        SEND_MAILBOX_FULL => Err(SendError::MailboxFull),
        SEND_TOO_LARGE => Err(SendError::TooLarge),
        other => Err(SendError::Other(other)),
    }
}

/// Why no message was received.
///
/// ```
/// # agent_sdk::testing::reset(b"");
/// let mut small = [0u8; 2];
/// # agent_sdk::testing::deliver(b"a long message");
/// assert_eq!(agent_sdk::recv(&mut small), Err(agent_sdk::RecvError::TooSmall));
/// let mut big = [0u8; 64];
/// assert_eq!(agent_sdk::recv(&mut big), Ok(Some(14)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The next message is larger than the buffer; it stays queued.
    TooSmall,
    /// Another code from the host.
    Other(i32),
}

/// Receives the next message into `buf`: `Ok(Some(len))`, or `Ok(None)` when no
/// message is waiting.
///
/// ```
/// # agent_sdk::testing::reset(b"");
/// # agent_sdk::testing::deliver(b"pong");
/// let mut buf = [0u8; 16];
/// assert_eq!(agent_sdk::recv(&mut buf), Ok(Some(4)));
/// assert_eq!(agent_sdk::recv(&mut buf), Ok(None));
/// ```
pub fn recv(buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
    let len = buf.len().min(i32::MAX as usize) as i32;
    match sys::recv(buf.as_mut_ptr(), len) {
        n if n >= 0 => Ok(Some(n as usize)),
        RECV_NONE => Ok(None),
        RECV_TOO_SMALL => Err(RecvError::TooSmall),
        other => Err(RecvError::Other(other)),
    }
}

/// Types a typed-form `act` may take and return: `i64` and `f64`.
///
/// ```
/// fn takes<T: agent_sdk::TypedValue>(_: T) {}
/// takes(1i64);
/// takes(2.5f64);
/// ```
pub trait TypedValue: sealed::Sealed {}
impl TypedValue for i64 {}
impl TypedValue for f64 {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for i64 {}
    impl Sealed for f64 {}
}

/// Compile-time check used by [`act!`]: `T` must be `i64` or `f64`.
#[doc(hidden)]
pub const fn assert_typed<T: TypedValue>() {}

/// Declares the agent's entry point, the `act` export.
///
/// Bytes form: `fn() -> i32 { … }` — read input with [`read_input`], write output with
/// [`write()`], return 0 for success. Typed form: `fn(a: i64, x: f64, …) -> i64 { … }`
/// with up to eight `i64`/`f64` parameters and an `i64` or `f64` result; any other
/// type does not compile.
///
/// ```
/// agent_sdk::act! {
///     fn(x: f64) -> f64 { x * x }
/// }
/// # assert_eq!(act(3.0), 9.0);
/// ```
#[macro_export]
macro_rules! act {
    (fn() -> i32 $body:block) => {
        /// The agent's entry point (bytes form).
        #[unsafe(no_mangle)]
        pub extern "C" fn act() -> i32 $body
    };
    (fn($($arg:ident : $ty:ty),+ $(,)?) -> $ret:ty $body:block) => {
        /// The agent's entry point (typed form).
        #[unsafe(no_mangle)]
        pub extern "C" fn act($($arg: $ty),+) -> $ret {
            const _: () = {
                $( $crate::assert_typed::<$ty>(); )+
                $crate::assert_typed::<$ret>();
            };
            $body
        }
    };
}

#[cfg(all(target_arch = "wasm32", feature = "panic-handler"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
