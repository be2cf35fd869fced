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

echo "== headless Chromium and curl (the dashboard and README API tests)"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 ||
  ! command -v curl >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  pkgs="chromium chromium-driver curl"
  # Without them only the dashboard and README API tests fail (naming what is missing).
  $sudo apt-get install -y -q $pkgs >/dev/null ||
    { $sudo apt-get update -q && $sudo apt-get install -y -q $pkgs >/dev/null; } ||
    echo "test.sh: could not install $pkgs; the browser tests will fail" >&2
fi

echo "== S3 and DynamoDB on loopback (moto)"
venv="$HOME/.cache/t-developer/moto-venv"
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'moto[s3,dynamodb,server]==5.2.5' flask==3.1.3 flask-cors==6.0.5
fi
if ! "$venv/bin/python" -c 'import hcl2' 2>/dev/null; then
  "$venv/bin/pip" install --quiet python-hcl2==8.1.4
fi
# tests/e2e/deploy.rs checks deploy/main.tf with this interpreter
export TDEV_PYTHON="$venv/bin/python"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# moto with atomic S3 conditional writes (see the script)
"$venv/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$port" >"$CARGO_TARGET_DIR/moto.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("moto did not start")
PY
# The AWS tests (and any tdev they start) talk to this server.
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN

echo "== lints (rustfmt, clippy, rustdoc; warnings are errors)"
lint_status=0
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all --check || { echo "test.sh: cargo fmt --check failed" >&2; lint_status=1; }
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings ||
  { echo "test.sh: clippy failed" >&2; lint_status=1; }
# The file-only build (no AWS SDK, no tokio in the engine) must stay warning-free too.
cargo clippy -p engine --all-targets --no-default-features --locked -- -D warnings ||
  { echo "test.sh: clippy (engine, no default features) failed" >&2; lint_status=1; }
# And a file-only tdev (the CLI without the AWS stack) must build.
cargo clippy -p cli --no-default-features --locked -- -D warnings ||
  { echo "test.sh: clippy (cli, no default features) failed" >&2; lint_status=1; }
# The agents as they are built: no_std for wasm32.
cargo clippy -p agent-sdk --examples --target wasm32-unknown-unknown --locked -- -D warnings ||
  { echo "test.sh: clippy (agent-sdk, wasm32) failed" >&2; lint_status=1; }
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked ||
  { echo "test.sh: cargo doc failed" >&2; lint_status=1; }

echo "== build"
cargo build --workspace --all-features --locked --all-targets

echo "== tests"
cargo test --workspace --all-features --locked --no-fail-fast 2>&1 | tee "$CARGO_TARGET_DIR/test-output.log"
status=${PIPESTATUS[0]}
if [ "$lint_status" -ne 0 ]; then status=1; fi

# The fuzz targets' bodies over their stored corpora and seeded inputs, and the wasmi
# differential, ran above as the `fuzzing` crate's tests. A real libFuzzer run needs a
# sanitizer build of its own (longer than this script's budget when cold): opt in with
# TDEV_FUZZ_SECONDS=N (see docs/security.md).
if [ -n "${TDEV_FUZZ_SECONDS:-}" ]; then
  echo "== fuzz ($TDEV_FUZZ_SECONDS s per target)"
  scripts/fuzz.sh "$TDEV_FUZZ_SECONDS" || status=1
fi

# One closing line over every test binary and doc test.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' \
  "$CARGO_TARGET_DIR/test-output.log"
exit "$status"
