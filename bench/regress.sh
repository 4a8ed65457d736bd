#!/usr/bin/env bash
# bench/regress.sh OLD NEW: the kernel times of make bench's configurations
# (bench/run.sh) under two spatc binaries, alternating OLD and NEW within
# each of ROUNDS rounds so that a passing load on this shared machine hits
# both, and the ratio of their medians (NEW / OLD: above 1.03 is a
# regression of more than 3%).  Prints a markdown table on stdout.
# Environment: REPEATS (timed runs per call, default 5), ROUNDS (default 3).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bench/regress.sh OLD_SPATC NEW_SPATC" >&2; exit 2; }
OLD=$1 NEW=$2
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-3}
configs=(
  "bench/window.pat --pattern window_only --len 4096 --heads 8 --dim 64"
  "bench/window.pat --pattern window_only --len 4096 --heads 8 --dim 64 --threads 1"
  "bench/window.pat --pattern window_only --len 4096 --heads 8 --dim 128"
  "bench/window.pat --pattern window_only --len 16384 --heads 2 --dim 64"
  "bench/window.pat --pattern causal_only --len 4096 --heads 4 --dim 64"
  "patterns/longformer.pat --len 4096 --heads 8 --dim 64"
  "patterns/bigbird.pat --len 4096 --heads 8 --dim 64"
  "patterns/streaming_llm.pat --len 4096 --heads 8 --dim 64"
  "patterns/streaming_llm.pat --lq 256 --lk 16384 --heads 8 --dim 64"
  "patterns/sparse_transformer.pat --pattern strided --len 4096 --heads 8 --dim 64"
  "patterns/sparse_transformer.pat --pattern fixed --len 4096 --heads 8 --dim 64"
  "patterns/prefix_lm.pat --pattern prefix_lm --len 4096 --heads 8 --dim 64"
  "patterns/document.pat --pattern document --len 4096 --heads 8 --dim 64"
  "patterns/dilated.pat --len 4096 --heads 8 --dim 64"
  "patterns/nsa.pat --len 4096 --heads 8 --kv-heads 2 --dim 64"
)
ms() { "$1" bench $2 --repeats "$REPEATS" --no-dense --json 2>/dev/null | tail -1 |
  sed -n 's/.*"kernel_ms": \([0-9.eE+-]*\).*/\1/p'; }
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "| configuration | old ms | new ms | new / old | |"
echo "| --- | ---: | ---: | ---: | --- |"
for c in "${configs[@]}"; do
  os=() ns=()
  for r in $(seq "$ROUNDS"); do
    os+=("$(ms "$OLD" "$c")"); ns+=("$(ms "$NEW" "$c")")
  done
  awk -v c="$c" -v o="$(med "${os[@]}")" -v n="$(med "${ns[@]}")" 'BEGIN {
    x = n / o
    printf "| %s | %.2f | %.2f | %.3f | %s |\n", c, o, n, x, (x > 1.03) ? "slower" : "ok" }'
done
