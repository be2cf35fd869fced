//! Every fuzz target's body over its stored corpus (`fuzz/corpus/<target>/`) and a fixed
//! set of seeded random inputs: the same checks as `cargo fuzz run`, on stable, in
//! seconds. A failing input is named; `cargo fuzz run TARGET FILE` replays it.

use fuzzing::oracles::{self, Seen};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;

/// Runs `body` over the corpus and `inputs`; fails naming every input that panicked.
/// Returns how often each kind of result was seen.
fn replay(
    target: &str,
    inputs: Vec<Vec<u8>>,
    body: impl Fn(&[u8]) -> Seen,
) -> BTreeMap<Seen, usize> {
    let mut seen = BTreeMap::new();
    let mut failed = Vec::new();
    let corpus = fuzzing::corpus(target);
    let stored = corpus.len();
    let all = corpus.into_iter().chain(
        inputs
            .into_iter()
            .enumerate()
            .map(|(i, b)| (format!("seeded #{i}"), b)),
    );
    for (name, bytes) in all {
        match std::panic::catch_unwind(AssertUnwindSafe(|| body(&bytes))) {
            Ok(s) => *seen.entry(s).or_insert(0) += 1,
            Err(_) => failed.push(name),
        }
    }
    println!("{target}: {stored} stored inputs; {seen:?}");
    assert!(failed.is_empty(), "{target} failed on: {failed:?}");
    seen
}

/// How many seeded inputs a target gets: `default`, or `TDEV_FUZZ_INPUTS` for a longer
/// random run; `TDEV_FUZZ_SEED` moves the seeds.
fn count(default: usize) -> usize {
    std::env::var("TDEV_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `count(n)` seeded inputs of up to `len` bytes from seed `seed(k)`.
fn seeded(k: u64, n: usize, len: usize) -> Vec<Vec<u8>> {
    fuzzing::seeded_inputs(seed(k), count(n), len)
}

/// How often `kind` was seen.
fn times(seen: &BTreeMap<Seen, usize>, kind: Seen) -> usize {
    seen.get(&kind).copied().unwrap_or(0)
}

fn seed(n: u64) -> u64 {
    n + std::env::var("TDEV_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

fn with_wasm_header(mut inputs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    for (i, v) in inputs.iter_mut().enumerate() {
        if i % 2 == 0 {
            let mut h = b"\0asm\x01\0\0\0".to_vec();
            h.append(v);
            *v = h;
        }
    }
    inputs
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/agents");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "wasm") {
            out.extend(std::fs::read(e.path()));
        }
    }
    assert!(!out.is_empty(), "no fixture agents");
    out
}

#[test]
fn admit() {
    let mut inputs = fixtures();
    inputs.extend(with_wasm_header(seeded(1, 300, 600)));
    let seen = replay("admit", inputs, oracles::admit);
    assert!(times(&seen, Seen::Accepted) > 0, "{seen:?}");
}

#[test]
fn run_smith() {
    let seen = replay("run_smith", seeded(2, 200, 8192), oracles::run_smith);
    let ran: usize = seen
        .iter()
        .filter(|(k, _)| matches!(k, Seen::Ran(_)))
        .map(|(_, n)| n)
        .sum();
    assert!(ran >= 50, "too few modules ran: {seen:?}");
}

#[test]
fn genome() {
    let seen = replay("genome", seeded(3, 300, 4096), oracles::genome);
    assert!(times(&seen, Seen::Accepted) >= 50, "{seen:?}");
}

#[test]
fn policy_task() {
    let mut inputs = seeded(4, 300, 400);
    // valid files among them, so the accepting paths run too
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut add = |kind: u8, path: std::path::PathBuf| {
        if let Ok(text) = std::fs::read(&path) {
            let mut v = vec![kind];
            v.extend(text);
            inputs.push(v);
        }
    };
    for dir in ["policies", "fixtures/tasks"] {
        for e in std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path();
            match p.extension().and_then(|x| x.to_str()) {
                Some("toml") if dir == "policies" => add(0, p),
                Some("toml") => add(1, p),
                Some("json") => add(2, p),
                _ => {}
            }
        }
    }
    let seen = replay("policy_task", inputs, oracles::policy_task);
    assert!(times(&seen, Seen::Accepted) >= 2, "{seen:?}");
}

#[test]
fn api_decode() {
    let seen = replay("api_decode", seeded(5, 1000, 200), oracles::api_decode);
    assert!(times(&seen, Seen::Accepted) >= 100, "{seen:?}");
}

#[test]
fn api_requests_through_the_api_decoder() {
    // The run-request branch of `api_decode` alone: random requests must reach both
    // answers, or the branch checks nothing.
    let seen = replay(
        "api_decode",
        fuzzing::seeded_inputs(seed(6), count(2000), 600),
        |data| fuzzing::api_request::check(&mut arbitrary::Unstructured::new(data)),
    );
    for kind in [Seen::Accepted, Seen::Rejected] {
        assert!(seen.get(&kind).copied().unwrap_or(0) >= 50, "{seen:?}");
    }
}
