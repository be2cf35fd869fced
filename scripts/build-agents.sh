#!/usr/bin/env bash
# Builds the SDK's example agents for wasm32 with the size-tuned `agent` profile and
# copies them into fixtures/agents/, listing their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build -p agent-sdk --examples --target wasm32-unknown-unknown --profile agent --locked
# greet and divide need optional features; built apart so the others stay without them
cargo build -p agent-sdk --example greet --features fmt,alloc --target wasm32-unknown-unknown --profile agent --locked
cargo build -p agent-sdk --example divide --features panic-message --target wasm32-unknown-unknown --profile agent --locked
for name in empty echo wc sort rle gcd divide ping pong greet; do
  cp "$target_dir/wasm32-unknown-unknown/agent/examples/$name.wasm" "fixtures/agents/$name.wasm"
  printf '%-6s %5d bytes\n' "$name" "$(wc -c < "fixtures/agents/$name.wasm")"
done
