//! Errors of the engine crate.

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the remote store's SDK, boxed (the SDK's error types are many and large).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of the engine. Match on [`Error::kind`].
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(Box<ErrorKind>);

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
    /// An `s3://` store asked of a build without the `aws` feature.
    #[error("store URI {uri:?}: this build has no S3 support (cargo feature `aws`)")]
    NoAws {
        /// The URI.
        uri: String,
    },
    /// A key that is not safe to store under.
    #[error("bad storage key {0:?}")]
    Key(String),
    /// I/O on the store failed.
    #[error("store I/O on {path}")]
    Io {
        /// The object or file.
        path: String,
        /// The I/O error.
        #[source]
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
    /// A stored record that does not parse as JSON of its shape.
    #[error("corrupt stored object {key}")]
    Decode {
        /// The key.
        key: String,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A record that could not be written as JSON.
    #[error("cannot encode {what} as JSON")]
    Encode {
        /// The record.
        what: String,
        /// What the serializer said.
        #[source]
        source: serde_json::Error,
    },
    /// A stored agent id that is not one.
    #[error("corrupt stored object {key}")]
    StoredId {
        /// The key (or table row).
        key: String,
        /// The id's problem.
        #[source]
        source: crate::AgentIdError,
    },
    /// A stored word (status, flag, …) the engine does not know.
    #[error("corrupt stored object {key}")]
    StoredWord {
        /// The key (or table row).
        key: String,
        /// The word's problem.
        #[source]
        source: crate::words::UnknownWord,
    },
    /// A string that is not an agent id where one is needed.
    #[error(transparent)]
    AgentId(#[from] crate::AgentIdError),
    /// An unknown or malformed agent id, evolution or generation (the message names
    /// which).
    #[error("not found: {0}")]
    NotFound(String),
    /// An id prefix that matches more than one record.
    #[error("agent id prefix {0:?} is ambiguous")]
    Ambiguous(String),
    /// A call to the remote store (S3, DynamoDB) failed: refused, unreachable or
    /// malformed.
    #[error("remote store: {what}")]
    Remote {
        /// The call (`put KEY`, `query state`, …).
        what: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The remote store has a table or bucket of another shape than the layout's.
    #[error("remote store: {what}: {reason}")]
    RemoteShape {
        /// The table or bucket.
        what: String,
        /// How it differs.
        reason: String,
    },
    /// Another process committed the same thing differently.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A resume under a policy other than the one the evolution was started under.
    #[error(
        "evolution {id} was started under another policy ({key}): resume it without \
         --policy (its own policy is used) or with the same policy"
    )]
    PolicyDiffers {
        /// The evolution.
        id: String,
        /// Where its policy is stored.
        key: String,
    },
    /// A policy that cannot be written as TOML.
    #[error("cannot write the policy as TOML: {0}")]
    PolicyEncode(#[from] toml::ser::Error),
    /// A task file that cannot be used.
    #[error("invalid task: {0}")]
    Task(String),
    /// A task file that cannot be read.
    #[error("cannot read the file: {0}")]
    TaskRead(std::io::Error),
    /// A task file that is not valid JSON of a task's shape.
    #[error("invalid task")]
    TaskJson(#[source] serde_json::Error),
    /// A task file that is not valid TOML of a task's shape.
    #[error("invalid task")]
    TaskToml(#[source] toml::de::Error),
    /// A seed module without a typed `act` (params and result i64 or f64).
    #[error("seed agent {number} has no typed `act`")]
    SeedUntyped {
        /// Its number, from 1.
        number: usize,
    },
    /// A seed module whose `act` does not have the task's signature.
    #[error("seed agent {number}'s act does not have the task's signature")]
    SeedSignature {
        /// Its number, from 1.
        number: usize,
    },
    /// Evolution parameters that cannot work.
    #[error("evolution: {0}")]
    Config(&'static str),
    /// A job on the queue that is not one.
    #[error("not a job: {0}")]
    Job(String),
    /// An alerts config that cannot work.
    #[error("alerts: {0}")]
    Alerts(String),
    /// A proposer that cannot be used, or whose request failed.
    #[error("proposer: {0}")]
    Proposer(String),
    /// The sandbox scores the reported best of a generation differently from the
    /// evaluation (the screening interpreter and the sandbox disagree).
    #[error("the sandbox scores {agent_id} at {sandbox:?}, the evaluation said {evaluated}")]
    Unconfirmed {
        /// The best agent.
        agent_id: crate::AgentId,
        /// The sandbox's mean train error.
        sandbox: f64,
        /// The evaluation's.
        evaluated: f64,
    },
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
    #[error("cannot start thread {thread}")]
    ThreadStart {
        /// The thread's name.
        thread: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pool of scoring threads could not be built.
    #[error("cannot start the scoring threads")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),
    /// An error of the sandbox.
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
/// An error and its sources, as one line: `error: source: source`.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// `serde_json::to_vec_pretty`, its error named after `what`.
pub(crate) fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|source| {
        ErrorKind::Encode {
            what: what.to_string(),
            source,
        }
        .into()
    })
}

/// [`to_json`] with a checksum ([`crate::seal`]): for the records of an evolution.
pub(crate) fn to_sealed_json<T: serde::Serialize>(what: &str, v: &T) -> Result<Vec<u8>> {
    Ok(crate::seal::seal(to_json(what, v)?))
}

/// `serde_json::from_slice` of the object under `key`; a sealed object's checksum is
/// checked first.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    let bytes = crate::seal::unseal(key, bytes)?;
    serde_json::from_slice(&bytes).map_err(|source| {
        ErrorKind::Decode {
            key: key.to_string(),
            source,
        }
        .into()
    })
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }
}

impl<E: Into<ErrorKind>> From<E> for Error {
    fn from(kind: E) -> Self {
        Error(Box::new(kind.into()))
    }
}
