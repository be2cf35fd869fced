//! Fuzzing for T-Developer: generators of random modules inside a policy, and the
//! oracles the fuzz targets in `fuzz/` run. Each target is a line over a function here,
//! so the same checks also run under `cargo test` (over the corpus kept in
//! `fuzz/corpus/<target>/` and a fixed set of seeded random inputs), on stable Rust.
//!
//! ```
//! // Arbitrary bytes are admitted or rejected, never a panic.
//! let seen = fuzzing::oracles::admit(b"\0asm\x01\0\0\0garbage");
//! assert_eq!(seen, fuzzing::oracles::Seen::Rejected);
//! ```

#![deny(missing_docs)]

pub mod api_request;
pub mod differential;
pub mod generators;
pub mod oracles;
pub mod probe;

use std::path::{Path, PathBuf};

/// The fuzz targets, by name (the file names under `fuzz/fuzz_targets/`).
pub const TARGETS: [&str; 6] = [
    "admit",
    "run_smith",
    "genome",
    "policy_task",
    "api_decode",
    "differential",
];

/// The body of a target by name.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "admit" => |d| {
            oracles::admit(d);
        },
        "run_smith" => |d| {
            oracles::run_smith(d);
        },
        "genome" => |d| {
            oracles::genome(d);
        },
        "policy_task" => |d| {
            oracles::policy_task(d);
        },
        "api_decode" => |d| {
            oracles::api_decode(d);
        },
        "differential" => |d| {
            if let differential::Diff::Diverge { sandbox, wasmi } = differential::differential(d) {
                if oracles::skip_known() && oracles::known_defect(&sandbox).is_some() {
                    return;
                }
                panic!("the engines disagree: sandbox {sandbox}, wasmi {wasmi}");
            }
        },
        _ => return None,
    })
}

/// `fuzz/corpus/<target>/` in the repository.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The stored corpus of a target: (file name, bytes), sorted by name. Empty when the
/// directory does not exist.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(corpus_dir(target)) {
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push((e.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
    }
    out.sort();
    out
}

/// `n` random inputs from `seed`, of lengths spread up to `max_len`: the same inputs on
/// every run.
pub fn seeded_inputs(seed: u64, n: usize, max_len: usize) -> Vec<Vec<u8>> {
    let mut rng = engine::rng::Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = rng.below(max_len + 1);
            let mut v = Vec::with_capacity(len);
            while v.len() < len {
                v.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
            v.truncate(len);
            v
        })
        .collect()
}
