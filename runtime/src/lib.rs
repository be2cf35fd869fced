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

//!
//! # Modules
//!
//! Each module depends only on the ones below it (no cycle):
//!
//! ```text
//! hub (group runs)
//!  └─ sandbox (admit, run, classify)
//!      ├─ instrument (bounds guards)     ├─ validate ─ policy ─ abi
//!      └─ host (host functions, HostState)
//!          ├─ mailbox ─ abi
//!          ├─ limits (ResourceLimiter) ─ trap ─ outcome
//!          └─ abi, trap, text
//! ```
//!
//! `abi`, `outcome`, `text` and `error` depend on no other module of the crate
//! (`policy` on `abi` and `outcome`).

#![deny(missing_docs)]

pub mod abi;
mod error;
mod host;
pub mod hub;
mod instrument;
mod limits;
mod mailbox;
mod outcome;
mod policy;
mod remedy;
mod sandbox;
mod text;
mod trap;
mod validate;

pub use abi::{
    ABI_V1_IMPORTS, RECV_NONE, RECV_TOO_SMALL, SEND_MAILBOX_FULL, SEND_OK, SEND_TOO_LARGE,
    SEND_UNKNOWN_RECIPIENT, abi_signature,
};
pub use error::{ArgParseError, Error, ErrorKind, Result};
pub use hub::{GroupReport, Member, MemberReport};
pub use outcome::Outcome;
pub use policy::{
    DEFAULT_POLICY_TOML, Features, Limits, Pattern, Policy, ProposerLimits, QuarantineRules, Scope,
    TrapWeights, Weights,
};
pub use remedy::remedy;
pub use sandbox::{
    Admission, Agent, Allocation, DEFAULT_HOST_STACK_MARGIN, EPOCH_THREAD, Input, RunReport,
    RunResult, Sandbox, SandboxConfig, StopHandle, Value, join_thread, parse_args,
};
pub use text::{
    HexError, agent_id, decode_hex, escape, escape_bytes, from_hex, is_agent_id, to_hex,
};
pub use validate::{
    ActForm, Finding, FindingKind, Param, Verdict, safety_score, text_form, validate,
};
