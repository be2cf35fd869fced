//! The T-Developer engine: storage of agents and quarantine records, and the gate that
//! every untrusted module passes through before and after it runs in the sandbox.
//!
//! With the default feature `aws` the store can also be S3 and DynamoDB (`s3://…`);
//! without it (`--no-default-features`) only `file://` stores, and no AWS SDK or tokio.
//!
//! ```
//! use engine::{Gate, Guard, Origin, Quarantine, store};
//! use runtime::{Input, Policy, Sandbox};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = store::open(dir.path().to_str().unwrap())?;
//! let guard = Guard::new(Sandbox::new(Policy::default_policy())?, Quarantine::new(store.clone()));
//! // An agent that imports WASI is rejected and quarantined.
//! let wasm = wat::parse_str(r#"(module
//!     (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
//!     (func (export "act") (result i32) i32.const 0))"#).unwrap();
//! let origin = Origin::file(std::path::Path::new("agent.wat"));
//! let Gate::Rejected { record, .. } = guard.admit(&wasm, &origin)? else { panic!() };
//! assert_eq!(Quarantine::new(store).list()?[0].agent_id, record.agent_id);
//! # Ok::<(), engine::Error>(())
//! ```

#![deny(missing_docs)]

pub mod alerts;
pub mod control;
mod error;
pub mod evolve;
#[cfg(feature = "aws")]
pub mod fleet;
pub mod genome;
mod guard;
mod id;
pub mod interp;
pub mod mutators;
pub mod propose;
pub mod quarantine;
#[cfg(feature = "aws")]
pub mod queue;
pub mod random;
pub mod records;
pub mod rng;
mod seal;
pub mod store;
pub mod task;
pub mod time;
pub mod typing;
pub mod words;

pub use error::{BoxError, Error, ErrorKind, Result};
pub use guard::{Gate, GroupMember, Guard, GuardedRun};
pub use id::{AgentId, AgentIdError};
pub use quarantine::{Decision, Origin, Quarantine, Record, RunInput, Sighting, Status, TrapEvent};
