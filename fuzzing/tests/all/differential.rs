//! The sandbox against wasmi on seeded random modules: the same outcome class and the
//! same result bits, or the case is skipped for a reason only one side has (see
//! `fuzzing::differential`). Strict: any divergence fails the test, naming its seeds
//! and writing each diverging module to the temp dir.
//!
//! `TDEV_DIFF_MODULES` (default 300) and `TDEV_DIFF_SEED` (default 0) set the count and
//! the first seed; `scripts/differential.sh N` is the long run.

use fuzzing::differential::{self, Diff};
use std::collections::BTreeMap;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The input bytes for module `seed`: 1–16 KiB from the seeded generator.
fn bytes_for(seed: u64) -> Vec<u8> {
    let mut rng = engine::rng::Rng::new(seed);
    let len = 1024 + rng.below(15 * 1024);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

#[test]
fn sandbox_and_wasmi_agree() {
    let n = env_u64("TDEV_DIFF_MODULES", 300);
    let first = env_u64("TDEV_DIFF_SEED", 0);
    let mut histogram: BTreeMap<String, u64> = BTreeMap::new();
    let mut divergences = Vec::new();
    let started = std::time::Instant::now();
    for seed in first..first + n {
        let bytes = bytes_for(seed);
        let mut u = arbitrary::Unstructured::new(&bytes);
        let diff = match differential::case(differential::sandbox().policy(), &mut u) {
            Ok(case) => {
                let d = differential::compare(&case);
                if let Diff::Diverge { sandbox, wasmi } = &d {
                    let path = std::env::temp_dir().join(format!("tdev-differential-{seed}.wasm"));
                    let _ = std::fs::write(&path, &case.wasm);
                    divergences.push(format!(
                        "seed {seed}: sandbox {sandbox} / wasmi {wasmi} ({})",
                        path.display()
                    ));
                }
                d
            }
            Err(_) => Diff::NotGenerated,
        };
        *histogram.entry(diff.key()).or_insert(0) += 1;
    }
    let agree: u64 = histogram
        .iter()
        .filter(|(k, _)| k.starts_with("agree:"))
        .map(|(_, v)| v)
        .sum();
    let compared = agree + divergences.len() as u64;
    println!(
        "differential: seeds {first}..{}: {n} modules in {:.1} s; compared {compared}, agree {agree}, diverge {}",
        first + n,
        started.elapsed().as_secs_f64(),
        divergences.len()
    );
    for (k, v) in &histogram {
        println!("  {k}: {v}");
    }
    for d in &divergences {
        println!("  DIVERGENCE {d}");
    }
    assert!(
        compared * 2 >= n,
        "fewer than half the modules were compared: {histogram:?}"
    );
    assert!(
        divergences.is_empty(),
        "{} divergence(s):\n{}",
        divergences.len(),
        divergences.join("\n")
    );
}
