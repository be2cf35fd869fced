#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each (default 60) with cargo-fuzz
# and libFuzzer, and prints per target: executions, coverage (cov/ft of libFuzzer's last
# status line), corpus size and crashes. Exits non-zero when a target crashed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The stored corpus (fuzz/corpus/<target>/) is read, never written: new inputs go to a
# working corpus under $FUZZ_WORK (default ~/.cache/t-developer/fuzz-work), crashes to
# $FUZZ_WORK/artifacts/<target>/. Replay one with `scripts/fuzz.sh` 's printed command.
# FUZZ_SANITIZER=none|address (default address), FUZZ_JOBS=N runs N targets at once,
# FUZZ_FLAGS adds libFuzzer flags.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(admit run_smith genome policy_task api_decode differential)
fi
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-1}"
work="${FUZZ_WORK:-$HOME/.cache/t-developer/fuzz-work}"
# A target dir of its own: the instrumented build must not evict the normal one.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/t-developer/target-fuzzbuild}"
# cargo-fuzz needs nightly-only sanitizer flags; the bootstrap variable allows them on
# the stable toolchain.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

echo "== build (sanitizer: $sanitizer)"
start=$(date +%s)
for t in "${targets[@]}"; do
  (cd fuzz && cargo fuzz build --sanitizer "$sanitizer" "$t" 2>&1 | tail -2) ||
    { echo "fuzz.sh: build of $t failed" >&2; exit 1; }
done
echo "build: $(( $(date +%s) - start )) s"
bin_dir="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

max_len() {
  case "$1" in
    run_smith | differential | genome) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# The targets that build a module out of their input (wasm-smith, the genome decoder)
# start at the whole length: libFuzzer's default length control would keep their inputs
# at a few bytes (and so their modules minimal) for most of a run.
len_flags() {
  case "$1" in
    run_smith | differential | genome) echo "-len_control=0" ;;
    *) echo "" ;;
  esac
}

run_one() {
  local t="$1"
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "$work/logs"
  local log="$work/logs/$t.log"
  mkdir -p "fuzz/corpus/$t"
  # The binary built above, run as `cargo fuzz run` would run it, but without its build
  # step: an edit of the tree during a long run does not rebuild or change the target.
  # shellcheck disable=SC2086
  (cd fuzz && ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}" "$bin_dir/$t" \
    "$work/corpus/$t" "corpus/$t" \
    -max_total_time="$seconds" -print_final_stats=1 -max_len="$(max_len "$t")" \
    -timeout=20 -rss_limit_mb=4096 -artifact_prefix="$work/artifacts/$t/" \
    $(len_flags "$t") ${FUZZ_FLAGS:-}) >"$log" 2>&1 || true
}

summary() {
  local t="$1" log="$work/logs/$1.log"
  local execs cov ft crashes corpus
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  if [ -z "$execs" ]; then
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  fi
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  corpus=$(find "$work/corpus/$t" -type f | wc -l)
  crashes=$(find "$work/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  printf '%-13s %6s s  execs %-10s cov %-6s ft %-7s corpus %-6s crashes %s\n' \
    "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$crashes"
  if [ "$crashes" -gt 0 ]; then
    find "$work/artifacts/$t" -type f | sed "s|^|    replay: (cd fuzz \&\& RUSTC_BOOTSTRAP=1 cargo fuzz run $t |; s|$|)|"
    grep -m3 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | sed 's/^/    /' || true
  fi
  [ "$crashes" -eq 0 ]
}

echo "== run: ${targets[*]} for $seconds s each (logs in $work/logs)"
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

status=0
for t in "${targets[@]}"; do
  summary "$t" || status=1
done
exit "$status"
