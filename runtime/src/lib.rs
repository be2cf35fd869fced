//! The T-Developer sandbox: admit or reject untrusted WebAssembly agents against a
//! [`Policy`], run them under fuel, memory, table, stack, output, log and wall-clock
//! limits, and report an exact [`Outcome`].
//!
//! ```
//! use runtime::{Admission, Input, Outcome, Policy, RunResult, Sandbox, Value};
//!
//! let sandbox = Sandbox::new(Policy::default_policy())?;
//! let wasm = wat::parse_str(r#"(module
//!     (func (export "act") (param i64 i64) (result i64)
//!         local.get 0 local.get 1 i64.add))"#).unwrap();
//! let Admission::Admitted(agent) = sandbox.admit(&wasm, false)? else { panic!() };
//! let report = sandbox.run(&agent, Input::Typed(vec![Value::I64(2), Value::I64(40)]))?;
//! assert_eq!(report.outcome, Outcome::Ok);
//! assert_eq!(report.result, Some(RunResult::Value(Value::I64(42))));
//!
//! let spin = wat::parse_str(r#"(module
//!     (func (export "act") (result i32) (loop (br 0)) i32.const 0))"#).unwrap();
//! let Admission::Admitted(agent) = sandbox.admit(&spin, false)? else { panic!() };
//! let report = sandbox.run(&agent, Input::Bytes(vec![]))?;
//! assert_eq!(report.outcome, Outcome::OutOfFuel);
//! # Ok::<(), runtime::Error>(())
//! ```

#![deny(missing_docs)]

mod error;
mod host;
pub mod hub;
mod instrument;
mod limits;
mod outcome;
mod policy;
mod sandbox;
mod text;
mod validate;

pub use error::{Error, ErrorKind, Result};
pub use host::{RECV_NONE, SEND_MAILBOX_FULL, SEND_OK, SEND_UNKNOWN_RECIPIENT};
pub use hub::{GroupReport, Member, MemberReport, RECV_TOO_SMALL, SEND_TOO_LARGE};
pub use outcome::Outcome;
pub use policy::{
    ABI_V1_IMPORTS, DEFAULT_POLICY_TOML, Features, Limits, Pattern, Policy, Scope, TrapWeights,
    Weights,
};
pub use sandbox::{
    Admission, Agent, Allocation, DEFAULT_HOST_STACK_MARGIN, EPOCH_THREAD, Input, RunReport,
    RunResult, Sandbox, SandboxConfig, StopHandle, Value, join_thread, parse_args,
};
pub use text::{agent_id, escape, escape_bytes, from_hex, is_agent_id, to_hex};
pub use validate::{
    ActForm, Finding, FindingKind, Param, Verdict, abi_signature, safety_score, text_form, validate,
};
