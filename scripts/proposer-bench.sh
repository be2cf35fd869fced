#!/usr/bin/env bash
# Mutators alone against mutators plus the template proposer
# (scripts/proposers/templates.py, sync mode), on the loop tasks of the program-synthesis
# benchmark: the psb bench's table twice. Knobs as the bench's (BENCH_SEEDS, BENCH_TASKS,
# BENCH_POPULATION, BENCH_GENERATIONS, BENCH_PROPOSER_SHARE).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/t-developer/target}"
export BENCH_TASKS="${BENCH_TASKS:-gcd,sum_of_squares,sum_range,collatz_numbers,even_5_parity}"
export BENCH_SEEDS="${BENCH_SEEDS:-5}"
export BENCH_POPULATION="${BENCH_POPULATION:-200}"
export BENCH_GENERATIONS="${BENCH_GENERATIONS:-40}"
cargo bench -p engine --bench psb --locked --no-run
echo "## mutators alone"
cargo bench -p engine --bench psb --locked 2>/dev/null
echo
echo "## mutators and the template proposer"
BENCH_PROPOSER="command:python3 scripts/proposers/templates.py" \
  cargo bench -p engine --bench psb --locked 2>/dev/null
