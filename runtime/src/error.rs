//! Errors of the runtime crate.

use std::fmt;

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the runtime. Match on [`Error::kind`].
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The policy file could not be read.
    #[error("cannot read policy {path}: {source}")]
    PolicyIo {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The policy is not valid: unknown field, wrong type or impossible value.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// wasmtime refused the configuration derived from the policy.
    #[error("cannot build the sandbox engine: {0}")]
    Engine(String),
    /// The module was not admitted; the verdict says why.
    #[error("module {agent_id} was not admitted (safety score {safety_score})")]
    Rejected {
        /// The agent id.
        agent_id: String,
        /// Its safety score.
        safety_score: f64,
    },
    /// The module passed validation but wasmtime could not compile it.
    #[error("cannot compile module: {0}")]
    Compile(String),
    /// The arguments do not fit the agent's `act` signature.
    #[error("bad arguments: {0}")]
    Args(String),
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
    /// A thread of the runtime could not start or panicked.
    #[error("thread `{thread}` {message}")]
    Thread {
        /// The thread's name.
        thread: String,
        /// What happened to it.
        message: String,
    },
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error {
            kind: Box::new(kind),
        }
    }
}
