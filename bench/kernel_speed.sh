#!/usr/bin/env bash
# bench/kernel_speed.sh: kernel run time of several builds, interleaved, on
# the library patterns and bench/window.pat (L tokens, 4 heads, 1 thread,
# D as listed), through the public API ($B/compile-times --run).
#
# Prints per configuration and build the minimum over ROUNDS rounds of the
# minimum of 5 runs, in process CPU time (a busy machine disturbs it far
# less than wall time).  Environment: B, L (default 4096), ROUNDS (default
# 5), CTS: "name=binary ..." (a name ending in "+cache" runs the kernel the
# disk cache made, in a private cache directory); default this build's
# JIT and cached kernels.
set -euo pipefail
B=${B:-build}
L=${L:-4096}
ROUNDS=${ROUNDS:-5}
CTS=${CTS:-"jit=$B/compile-times jit+cache=$B/compile-times"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME="$tmp"

while read -r f p d; do
  declare -A best=()
  for r in $(seq "$ROUNDS"); do
    for nb in $CTS; do
      n=${nb%%=*} ct=${nb#*=} c=""
      [[ $n == *+cache ]] && c=--cache
      pp=()
      [ "$p" != "-" ] && pp=(-p "$p")
      v=$("$ct" "$f" "${pp[@]}" -d "$d" $c --run "$L" --runs 5 |
          sed -n 's/.*run_cpu_min_ms \([0-9.]*\).*/\1/p')
      best[$n]=$(awk -v a="${best[$n]:-1e30}" -v b="$v" 'BEGIN {print (b < a) ? b : a}')
    done
  done
  label=$(basename "$f" .pat)
  [ "$p" != "-" ] && label="$label:$p"
  line=$(printf '%-32s D=%-3s' "$label" "$d")
  for nb in $CTS; do n=${nb%%=*}; line="$line $(printf '%s=%-8s' "$n" "${best[$n]}")"; done
  echo "$line"
  unset best
done <<'EOF'
bench/window.pat window_only 64
bench/window.pat window_only 128
bench/window.pat causal_window 128
patterns/bigbird.pat - 64
patterns/dilated.pat - 64
patterns/document.pat document 64
patterns/longformer.pat - 64
patterns/nsa.pat - 64
patterns/prefix_lm.pat prefix_lm 64
patterns/sparse_transformer.pat strided 64
patterns/streaming_llm.pat - 64
EOF
