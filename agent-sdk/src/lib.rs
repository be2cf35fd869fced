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
//! A panic in an agent is logged (`panicked at FILE:LINE: MESSAGE`) and becomes a trap
//! (`unreachable`), never a hang.

#![no_std]
#![deny(unsafe_code)]

#[cfg(not(target_arch = "wasm32"))]
extern crate std;

// The FFI to the host and the allocator: the only `unsafe` of the crate.
#[allow(unsafe_code)]
mod sys;

#[cfg(all(feature = "alloc", target_arch = "wasm32"))]
pub use sys::bump;
#[cfg(feature = "fmt")]
mod fmt;
#[cfg(feature = "fmt")]
pub use fmt::LogBuffer;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// ABI v1 as the SDK links it: the import module, its host functions and the codes
/// they answer. The runtime's `runtime::abi` holds the same values; a test of this
/// crate holds them equal.
pub mod abi {
    /// The import module of every host function.
    pub const MODULE: &str = "agent";
    /// The export the host calls.
    pub const ACT: &str = "act";
    /// The memory export the host functions read and write.
    pub const MEMORY: &str = "memory";
    /// The host functions: (name, `i32` parameters, `i32` results).
    pub const HOST_FUNCTIONS: [(&str, usize, usize); 6] = [
        ("input_len", 0, 1),
        ("read_input", 2, 1),
        ("write_output", 2, 1),
        ("log", 2, 0),
        ("send", 4, 1),
        ("recv", 2, 1),
    ];
    /// `recv` returned this: no message is waiting.
    pub const RECV_NONE: i32 = -1;
    /// `recv` returned this: the next message is larger than the buffer (it stays
    /// queued).
    pub const RECV_TOO_SMALL: i32 = -2;
    /// `send` returned this: the message was queued.
    pub const SEND_OK: i32 = 0;
    /// `send` returned this: no agent of that name or id takes part in the run.
    pub const SEND_UNKNOWN_RECIPIENT: i32 = -1;
    /// `send` returned this: the recipient's mailbox is full.
    pub const SEND_MAILBOX_FULL: i32 = -2;
    /// `send` returned this: the message is over the policy's message size.
    pub const SEND_TOO_LARGE: i32 = -3;
}

pub use abi::{
    RECV_NONE, RECV_TOO_SMALL, SEND_MAILBOX_FULL, SEND_OK, SEND_TOO_LARGE, SEND_UNKNOWN_RECIPIENT,
};

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

/// The input, read chunk by chunk through a buffer: [`InputChunks::next_chunk`] gives
/// the next bytes until the input is used up.
///
/// ```
/// # agent_sdk::testing::reset(b"abcde");
/// let mut buf = [0u8; 2];
/// let mut input = agent_sdk::input_chunks(&mut buf);
/// let mut seen = 0;
/// while let Some(chunk) = input.next_chunk() {
///     seen += chunk.len();
/// }
/// assert_eq!(seen, 5);
/// ```
pub fn input_chunks(buf: &mut [u8]) -> InputChunks<'_> {
    InputChunks { buf }
}

/// The input read through a buffer; see [`input_chunks`].
pub struct InputChunks<'a> {
    buf: &'a mut [u8],
}

impl InputChunks<'_> {
    /// The next input bytes (at most the buffer's length), or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<&[u8]> {
        let n = read_input(self.buf);
        (n > 0).then(|| &self.buf[..n])
    }
}

/// `n` in decimal, written at the end of `buf`; returns the digits.
///
/// ```
/// let mut buf = [0u8; 20];
/// assert_eq!(agent_sdk::decimal(1207, &mut buf), b"1207");
/// assert_eq!(agent_sdk::decimal(0, &mut buf), b"0");
/// ```
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
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
        $crate::act!(@entry "The agent's entry point (bytes form)." () -> i32 $body);
    };
    (fn($($arg:ident : $ty:ty),+ $(,)?) -> $ret:ty $body:block) => {
        $crate::act!(@entry "The agent's entry point (typed form)." ($($arg: $ty),+) -> $ret {
            const _: () = {
                $( $crate::assert_typed::<$ty>(); )+
                $crate::assert_typed::<$ret>();
            };
            $body
        });
    };
    // The export on wasm32; elsewhere a plain function the in-memory host's tests call
    // (a panic then unwinds to the test instead of aborting an `extern "C"` frame).
    (@entry $doc:literal ($($params:tt)*) -> $ret:ty $body:block) => {
        #[doc = $doc]
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn act($($params)*) -> $ret $body

        #[doc = $doc]
        #[cfg(not(target_arch = "wasm32"))]
        pub fn act($($params)*) -> $ret $body
    };
}

/// The log line of a panic: `panicked at FILE:LINE: MESSAGE`, cut to 256 bytes. Built
/// by hand rather than with `core::fmt`, which would add kilobytes to every agent; a
/// message with arguments (`panic!("{x}")`) is logged in full only with the `fmt`
/// feature (which brings `core::fmt` anyway), else its place is named.
#[cfg(any(feature = "panic-message", not(target_arch = "wasm32")))]
#[doc(hidden)]
pub struct PanicLine {
    buf: [u8; 256],
    len: usize,
}

#[cfg(any(feature = "panic-message", not(target_arch = "wasm32")))]
impl PanicLine {
    /// The line of a panic at `file:line` with `message` (`None`: a formatted one).
    pub fn new(location: Option<(&str, u32)>, message: Option<&str>) -> PanicLine {
        let mut l = PanicLine {
            buf: [0; 256],
            len: 0,
        };
        l.push(b"panicked");
        if let Some((file, line)) = location {
            l.push(b" at ");
            l.push(file.as_bytes());
            l.push(b":");
            let mut digits = [0u8; 10];
            let mut n = line;
            let mut i = digits.len();
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            l.push(&digits[i..]);
        }
        if let Some(m) = message {
            l.push(b": ");
            l.push(m.as_bytes());
        }
        l
    }

    /// Appends what fits.
    pub fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// The line so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(feature = "fmt")]
#[cfg(any(feature = "panic-message", not(target_arch = "wasm32")))]
impl core::fmt::Write for PanicLine {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// The log line of a panic, from its info (the handler's, and the testing support's
/// on native targets).
#[cfg(any(feature = "panic-message", not(target_arch = "wasm32")))]
#[doc(hidden)]
pub fn panic_line(info: &core::panic::PanicInfo<'_>) -> PanicLine {
    let location = info.location().map(|l| (l.file(), l.line()));
    let message = info.message();
    match message.as_str() {
        Some(m) => PanicLine::new(location, Some(m)),
        None => {
            let mut l = PanicLine::new(location, None);
            #[cfg(feature = "fmt")]
            {
                let _ = core::fmt::Write::write_fmt(&mut l, format_args!(": {message}"));
            }
            #[cfg(not(feature = "fmt"))]
            l.push(b": (a formatted message: the SDK's `fmt` feature logs it)");
            l
        }
    }
}

/// Logs the panic through `agent.log` (the host shows it: `tdev run` prints it under
/// `log:`), then traps with `unreachable`. With the `panic-message` feature the line
/// says where and why (`panicked at FILE:LINE: MESSAGE`); without it, only that the
/// agent panicked: reading the panic's location keeps every panic site's message and
/// its formatting code in the module, about 2.6 KB (docs/writing-agents.md).
#[cfg(all(target_arch = "wasm32", feature = "panic-handler"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(feature = "panic-message")]
    log_bytes(panic_line(info).as_bytes());
    #[cfg(not(feature = "panic-message"))]
    {
        let _ = info;
        log_bytes(b"panicked");
    }
    core::arch::wasm32::unreachable()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::PanicLine;

    #[test]
    fn a_panic_line_names_the_file_line_and_message_and_is_cut_at_256_bytes() {
        let line = |loc, msg| PanicLine::new(loc, msg).as_bytes().to_vec();
        assert_eq!(
            line(Some(("src/lib.rs", 0)), Some("boom")),
            b"panicked at src/lib.rs:0: boom"
        );
        assert_eq!(
            line(Some(("a.rs", u32::MAX)), None),
            b"panicked at a.rs:4294967295"
        );
        assert_eq!(line(None, Some("x")), b"panicked: x");
        let long = "y".repeat(300);
        let cut = line(Some(("f.rs", 12)), Some(&long));
        assert_eq!(cut.len(), 256);
        assert!(cut.starts_with(b"panicked at f.rs:12: yyy"));
    }
}
