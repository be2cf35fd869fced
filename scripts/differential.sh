#!/usr/bin/env bash
# The long differential run: N random modules (default 5000) from seed S (default 1000000,
# past the seeds the tests use) in the sandbox and in wasmi. Prints the outcome
# histogram and every divergence (its seed, both ends, the module written to the temp
# dir); exits non-zero when the engines disagree.
#
#   scripts/differential.sh [N] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/t-developer/target}"
export TDEV_DIFF_MODULES="${1:-5000}"
export TDEV_DIFF_SEED="${2:-1000000}"
cargo test -p fuzzing --all-features --locked --test all -- \
  differential::sandbox_and_wasmi_agree --exact --nocapture
