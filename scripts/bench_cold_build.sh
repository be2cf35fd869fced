#!/usr/bin/env bash
# Cold dev build of the engine, file-only (--no-default-features) then with the AWS stack
# (default), each in an empty target dir under ~/.cache, one after the other; prints the
# wall time, the number of crates (rlibs) built and the target dir size.
set -u
cd "$(dirname "$0")/.."
for variant in no-default default; do
  dir=$HOME/.cache/t-developer/target-cold-$variant
  rm -rf "$dir"
  flags=""
  [ "$variant" = no-default ] && flags="--no-default-features"
  start=$(date +%s.%N)
  CARGO_TARGET_DIR=$dir cargo build -p engine $flags --locked 2>&1 | tail -1
  end=$(date +%s.%N)
  crates=$(ls "$dir/debug/deps"/*.rlib 2>/dev/null | wc -l)
  echo "$variant: $(echo "$end - $start" | bc) s, $crates rlibs, $(du -sh "$dir" | cut -f1)"
done
