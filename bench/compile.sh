#!/usr/bin/env bash
# bench/compile.sh: JIT compile times of every library pattern (D = 64), each
# compile the first of a fresh process, through the public API
# ($B/compile-times, bench/compile_times.c).  Medians of ROUNDS rounds:
#
#   truly_cold  no disk cache at all: the shared tile kernel and the
#               pattern's mask code are both compiled
#   cold        disk cache on, the pattern not in it, the tile kernel in it
#               (from an earlier run with any pattern of the same D)
#   cold_empty  disk cache on and empty: tile and pattern compiled, stored
#   warm        disk cache on, the pattern in it
#   in_process  the median of 5 more compiles in the truly_cold process
#               (the tile kernel already in memory), no disk cache
#
# Environment: B (build dir), ROUNDS (default 5), CTS: "name=binary ..." to
# compare several builds in the same run, interleaved (default: this build's
# compile-times), CLOCK=cpu: process CPU time instead of wall time (on a
# busy machine).  One line per pattern and binary.
set -euo pipefail
B=${B:-build}
ROUNDS=${ROUNDS:-5}
CTS=${CTS:-"spatc=$B/compile-times"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "${CLOCK:-wall}" = cpu ]; then field=compile_cpu_ms; else field=compile_ms; fi
times() { sed -n "s/.*$field \([0-9. ]*\).*/\1/p" | sed 's/ *[a-z].*//'; }
first() { times | awk '{print $1}'; }
rest_median() {
  times | cut -d' ' -f2- | tr ' ' '\n' |
    grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

printf '%-20s %-8s %10s %10s %10s %10s %10s   (%s ms, median of %d)\n' pattern build \
  truly_cold cold cold_empty warm in_process "${CLOCK:-wall}" "$ROUNDS"
for p in patterns/*.pat; do
  declare -A tc=() co=() ce=() wa=() ip=()
  for r in $(seq "$ROUNDS"); do
    for nb in $CTS; do
      n=${nb%%=*} ct=${nb#*=}
      x="$tmp/$n.$r"
      rm -rf "$x" && mkdir -p "$x"
      out=$(XDG_CACHE_HOME="$x" "$ct" "$p" -n 6)
      tc[$n]="${tc[$n]:-} $(printf '%s\n' "$out" | first)"
      ip[$n]="${ip[$n]:-} $(printf '%s\n' "$out" | rest_median)"
      ce[$n]="${ce[$n]:-} $(XDG_CACHE_HOME="$x" "$ct" "$p" --cache | first)"
      rm -f "$x"/spatc/*.spk # the tile kernel stays
      co[$n]="${co[$n]:-} $(XDG_CACHE_HOME="$x" "$ct" "$p" --cache | first)"
      wa[$n]="${wa[$n]:-} $(XDG_CACHE_HOME="$x" "$ct" "$p" --cache | first)"
    done
  done
  for nb in $CTS; do
    n=${nb%%=*}
    # shellcheck disable=SC2086
    printf '%-20s %-8s %10.1f %10.1f %10.1f %10.2f %10.1f\n' "$(basename "$p" .pat)" "$n" \
      "$(median ${tc[$n]})" "$(median ${co[$n]})" "$(median ${ce[$n]})" \
      "$(median ${wa[$n]})" "$(median ${ip[$n]})"
  done
  unset tc co ce wa ip
done
