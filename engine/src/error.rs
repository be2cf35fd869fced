//! Errors of the engine crate.

use std::fmt;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the engine. Match on [`Error::kind`].
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A store URI that cannot be used.
    #[error("bad store URI {uri:?}: {reason}")]
    StoreUri {
        /// The URI.
        uri: String,
        /// Why.
        reason: String,
    },
    /// A key that is not safe to store under.
    #[error("bad storage key {0:?}")]
    Key(String),
    /// I/O on the store failed.
    #[error("store I/O on {path}: {source}")]
    Io {
        /// The object or file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Stored data is not what it should be.
    #[error("corrupt stored object {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// An unknown or malformed agent id, evolution or generation (the message names
    /// which).
    #[error("not found: {0}")]
    NotFound(String),
    /// An id prefix that matches more than one record.
    #[error("agent id prefix {0:?} is ambiguous")]
    Ambiguous(String),
    /// The remote store (S3, DynamoDB) refused or could not be reached.
    #[error("remote store: {0}")]
    Remote(String),
    /// Another process committed the same thing differently.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A task file that cannot be used.
    #[error("invalid task: {0}")]
    Task(String),
    /// An evolution that cannot go on as asked.
    #[error("evolution: {0}")]
    Evolution(String),
    /// A worker thread of the engine panicked; its work is lost, so what it was part of
    /// stops with this error.
    #[error("thread {thread} panicked while {doing}: {message}")]
    ThreadPanicked {
        /// The thread's name.
        thread: String,
        /// What it was doing.
        doing: String,
        /// The panic's message.
        message: String,
    },
    /// A worker thread could not be started.
    #[error("cannot start thread {thread}: {source}")]
    ThreadStart {
        /// The thread's name.
        thread: String,
        /// Why.
        source: std::io::Error,
    },
    /// An error of the sandbox.
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
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

impl<E: Into<ErrorKind>> From<E> for Error {
    fn from(kind: E) -> Self {
        Error {
            kind: Box::new(kind.into()),
        }
    }
}
