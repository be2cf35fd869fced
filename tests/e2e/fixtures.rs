//! The hostile fixtures' manifest (`fixtures/hostile/manifest.toml`) and the outcomes
//! that are right for each. Shared with `cli/benches/load.rs` through `#[path]`.

#![allow(dead_code)]

use serde::Deserialize;
use std::path::PathBuf;

/// `fixtures/hostile`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hostile")
}

/// The manifest: one entry per hostile module.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub fixture: Vec<Fixture>,
}

/// One hostile module and what it must get.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub file: String,
    /// The outcome word it gets on an idle machine (see [`is_right`]).
    pub outcome: String,
    pub findings: Vec<String>,
    pub args: Option<String>,
    pub input: Option<String>,
    pub policy: Option<String>,
    pub quarantined: Option<bool>,
    pub output_hex: Option<String>,
    pub result_bits: Option<String>,
    pub logs_dropped: Option<u64>,
}

/// The manifest, parsed.
pub fn manifest() -> Manifest {
    let text = std::fs::read_to_string(dir().join("manifest.toml")).expect("hostile manifest");
    toml::from_str(&text).expect("manifest parses")
}

/// Whether `got` is a right outcome for a module whose manifest outcome is `want`.
/// The one place where a limit may stand in for another: a module that runs until its
/// fuel runs out (`out_of_fuel`) may, on a loaded machine, reach the policy's
/// wall-clock deadline first (`deadline`), and either limit is a right answer for an
/// endless loop. Every other outcome is exact.
pub fn is_right(want: &str, got: &str) -> bool {
    got == want || (want == "out_of_fuel" && got == "deadline")
}
