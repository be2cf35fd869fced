//! Errors of the runtime crate.

use crate::text::escape;
use crate::validate::Param;

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the runtime. Match on [`Error::kind`]; `Display` and `source` are the
/// kind's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error {
    kind: Box<ErrorKind>,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The policy file could not be read. (Causes are part of these messages, not
    /// sources, so that each is said once.)
    #[error("cannot read policy {path}: {error}")]
    PolicyIo {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The policy is not valid: unknown field, wrong type or impossible value; the
    /// message names the field.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// The policy is not TOML, or not of the policy's shape.
    #[error("invalid policy: {error}")]
    PolicyToml {
        /// What the TOML reader said.
        error: toml::de::Error,
    },
    /// A pattern's regex does not compile (or is over the regex size limits).
    #[error("invalid policy: patterns `{pattern}`.regex: invalid regex: {error}")]
    PolicyRegex {
        /// The pattern's name.
        pattern: String,
        /// What the regex compiler said.
        error: regex::Error,
    },
    /// wasmtime refused the configuration derived from the policy.
    #[error("cannot build the sandbox engine: {0}")]
    Engine(#[source] wasmtime::Error),
    /// The module was not admitted; the verdict says why.
    #[error("module {agent_id} was not admitted (safety score {safety_score})")]
    Rejected {
        /// The agent id.
        agent_id: String,
        /// Its safety score.
        safety_score: f64,
    },
    /// The module passed validation but wasmtime could not compile it.
    #[error("cannot compile module: {}", escape(&.0.to_string()))]
    Compile(#[source] wasmtime::Error),
    /// The module passed validation but could not be read again to add the bounds
    /// guards of its bulk operations.
    #[error("cannot compile module: {}", escape(&.0.to_string()))]
    Instrument(#[source] wasmparser::BinaryReaderError),
    /// The module's bounds guards could not be added.
    #[error("cannot compile module: cannot add bounds guards: {}", escape(&format!("{:?}", .0)))]
    Guard(#[source] wasm_encoder::reencode::Error),
    /// The arguments do not fit the agent's `act` signature.
    #[error("bad arguments: {0}")]
    Args(String),
    /// An argument of `--args` text is not a number of its parameter's type.
    #[error("bad arguments: argument {index} {:?} is not an {param}: {error}", escape(.text))]
    ArgValue {
        /// Its position, from 1.
        index: usize,
        /// The text given.
        text: String,
        /// The parameter's type.
        param: Param,
        /// Why it does not parse.
        error: ArgParseError,
    },
    /// The input is larger than the policy allows.
    #[error("input of {bytes} bytes is over `limits.input_bytes` = {cap}")]
    InputTooLarge {
        /// The input's length.
        bytes: u64,
        /// `limits.input_bytes`.
        cap: u64,
    },
    /// A group run has more members than the sandbox can hold instances at once.
    #[error(
        "a group run of {members} agents is over the sandbox's {max} instance slots \
         (its pooling allocator's `slots`): run at most {max}"
    )]
    GroupTooLarge {
        /// Members asked for.
        members: usize,
        /// Instance slots of the sandbox.
        max: usize,
    },
    /// A thread of the runtime could not start.
    #[error("thread `{thread}` cannot start: {source}")]
    ThreadStart {
        /// The thread's name.
        thread: String,
        /// Why the system refused it.
        #[source]
        source: std::io::Error,
    },
    /// A thread of the runtime panicked.
    #[error("thread `{thread}` panicked: {message}")]
    ThreadPanicked {
        /// The thread's name.
        thread: String,
        /// The panic's message, escaped.
        message: String,
    },
    /// A thread the runtime needs has stopped.
    #[error("thread `{thread}` has stopped: {consequence}")]
    ThreadStopped {
        /// The thread's name.
        thread: String,
        /// What cannot be done without it.
        consequence: &'static str,
    },
}

/// Why an argument does not parse as its parameter's type.
#[derive(Debug, thiserror::Error)]
pub enum ArgParseError {
    /// Not an `i64` in decimal.
    #[error(transparent)]
    Int(#[from] std::num::ParseIntError),
    /// Not an `f64` as `f64::from_str` reads it.
    #[error(transparent)]
    Float(#[from] std::num::ParseFloatError),
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error {
            kind: Box::new(kind),
        }
    }
}
