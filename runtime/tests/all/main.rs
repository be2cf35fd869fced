//! Integration tests of the runtime crate.

mod admission;
mod bulk;
mod caps;
mod grow;
mod host;
mod hub;
#[path = "../support/modules.rs"]
mod modules;
mod stop;
mod threads;
mod validate;

use runtime::{Admission, Agent, Policy, Sandbox};
use std::sync::Arc;

pub fn sandbox(policy_toml: &str) -> Sandbox {
    Sandbox::new(Policy::from_toml(policy_toml).expect("policy")).expect("sandbox")
}

pub fn admit(sandbox: &Sandbox, wat: &str) -> Arc<Agent> {
    let bytes = wat::parse_str(wat).expect("wat");
    match sandbox.admit(&bytes, false).expect("admit") {
        Admission::Admitted(a) => a,
        Admission::Rejected(v) => panic!("rejected: {:?}", v.findings),
    }
}
