#!/usr/bin/env bash
# The fleet bench: starts the S3, DynamoDB and SQS server on loopback (moto, as
# scripts/test.sh does) and runs `cargo bench -p engine --bench fleet`, which prints its
# tables. Knobs: BENCH_POP, BENCH_K, BENCH_ISLANDS, BENCH_EPOCHS, BENCH_OPS.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/t-developer/target}"
venv="$HOME/.cache/t-developer/moto-venv"
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'moto[s3,dynamodb,server]==5.2.5' flask==3.1.3 flask-cors==6.0.5
fi
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$port" >"$CARGO_TARGET_DIR/moto-bench.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
"$venv/bin/python" - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("moto did not start")
PY
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
cargo bench -p engine --bench fleet --locked
