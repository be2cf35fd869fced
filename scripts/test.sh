#!/usr/bin/env bash
# Installs what the tests need, starts the servers they need, and runs every test.
# Works on a fresh machine; reruns reuse cargo's target dir under ~/.cache.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/t-developer/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is not installed (https://rustup.rs)" >&2
  exit 1
fi

echo "== toolchain"
# Agents are built for wasm32 by the tests (SDK examples, the guide's agent).
rustup target add wasm32-unknown-unknown

echo "== build"
cargo build --workspace --all-features --locked --all-targets

echo "== tests"
cargo test --workspace --all-features --locked --no-fail-fast 2>&1 | tee "$CARGO_TARGET_DIR/test-output.log"
status=${PIPESTATUS[0]}

# One closing line over every test binary and doc test.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' \
  "$CARGO_TARGET_DIR/test-output.log"
exit "$status"
