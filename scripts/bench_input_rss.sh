#!/usr/bin/env bash
# Peak RSS of `tdev run echo.wasm --input F` for inputs of 1 KiB to 1 GiB (sparse
# files), under the default policy (limits.input_bytes = 1 MiB) and under a policy that
# admits 1 GiB. Prints a Markdown table for BENCHMARKS.md.
#
#   scripts/bench_input_rss.sh [TDEV]      (default: the release binary)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tdev=${1:-${CARGO_TARGET_DIR:-$root/target}/release/tdev}
[ -x "$tdev" ] || { echo "bench_input_rss.sh: no $tdev (cargo build --release -p cli)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_input_rss.sh: needs /usr/bin/time (GNU time)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '[limits]\ninput_bytes = 1073741824\n' > "$dir/gib.toml"
agent="$root/fixtures/agents/echo.wasm"

# Runs tdev on an input of $1 bytes under policy $2 (empty: default); prints
# "exit, peak RSS in MB".
measure() {
  truncate -s 0 "$dir/in" && truncate -s "$1" "$dir/in"
  local pol=()
  [ -n "$2" ] && pol=(--policy "$2")
  set +e
  /usr/bin/time -f '%M' -o "$dir/rss" "$tdev" run "$agent" "${pol[@]}" --input "$dir/in" \
    --store "file://$dir/store" --json >/dev/null 2>"$dir/err"
  local code=$?
  set -e
  rm -rf "$dir/store"
  printf '%d, %.1f MB' "$code" "$(echo "$(tail -1 "$dir/rss") / 1024" | bc -l)"
}

echo "| input | default policy (cap 1 MiB): exit, peak RSS | \`input_bytes = 1 GiB\`: exit, peak RSS |"
echo "|---|---|---|"
for size in 1024:1KiB 65536:64KiB 1048576:1MiB 1048577:"1 MiB + 1" 16777216:16MiB \
            268435456:256MiB 1073741824:1GiB 1073741825:"1 GiB + 1"; do
  bytes=${size%%:*}
  name=${size#*:}
  echo "| $name | $(measure "$bytes" "") | $(measure "$bytes" "$dir/gib.toml") |"
done
