#!/usr/bin/env bash
# tests/fuzz/run-fuzzers.sh SECONDS TARGET...: runs each libFuzzer target
# ($FUZZ_B/fuzz/fuzz_TARGET, built by `make fuzz-build`) for SECONDS, one at a
# time, under nice -n 19, from the repository root.
#   corpus     $FUZZ_B/corpus/TARGET (grows; not in git), seeded each time
#              from patterns/, tests/diag/, tests/fuzz/seeds/ and
#              tests/fuzz/regress/TARGET/
#   crashes    $FUZZ_B/artifacts/TARGET/ (crash-*, timeout-*, oom-*)
#   log        $FUZZ_B/logs/TARGET.log
#   totals     $FUZZ_B/fuzz-stats.tsv: one line per run (target, seconds,
#              executions, corpus files, result)
# Exits non-zero if a target crashed, timed out or ran out of memory.
# Environment: FUZZ_B (default build-fuzz), FUZZ_JOBS_FLAGS (extra libFuzzer
# flags).  UBSan findings abort (halt_on_error), except the known, reported
# ones listed in tests/fuzz/known.supp.
set -u
secs=${1:?usage: run-fuzzers.sh SECONDS TARGET...}
shift
B=${FUZZ_B:-build-fuzz}
ROOT=$PWD
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/tests/fuzz/known.supp}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
status=0
for t in "$@"; do
  bin=$B/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "run-fuzzers: $bin missing (make fuzz-build)" >&2; exit 2; }
  corpus=$B/corpus/$t seeds=$B/seeds/$t art=$B/artifacts/$t log=$B/logs/$t.log
  mkdir -p "$corpus" "$art" "$B/logs"
  rm -rf "$seeds" && mkdir -p "$seeds"
  case $t in
    npy) flags=(-max_len=1024 -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256)
         cp tests/fuzz/seeds/npy/* "$seeds"/ ;;
    front) flags=(-max_len=4096 -timeout=20 -rss_limit_mb=2048 -dict=tests/fuzz/pat.dict)
         cp patterns/*.pat tests/diag/*.pat tests/fuzz/seeds/pat/* "$seeds"/ ;;
    jit) flags=(-max_len=512 -timeout=30 -rss_limit_mb=2560 -dict=tests/fuzz/pat.dict)
         cp patterns/*.pat tests/diag/*.pat tests/fuzz/seeds/pat/* "$seeds"/ ;;
    *) echo "run-fuzzers: unknown target $t" >&2; exit 2 ;;
  esac
  cp tests/fuzz/regress/"$t"/* "$seeds"/ 2>/dev/null
  echo "== fuzz_$t: ${secs}s (log $log)"
  start=$SECONDS
  # shellcheck disable=SC2086
  nice -n 19 "$bin" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$art/" "${flags[@]}" ${FUZZ_JOBS_FLAGS:-} \
    "$corpus" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$((SECONDS - start))
  files=$(find "$corpus" -type f | wc -l)
  result=ok
  if [ "$rc" -ne 0 ]; then
    result=FAIL status=1
    grep -E 'fuzz invariant failed|runtime error|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|SUMMARY|Test unit written|^  ' "$log" | head -20
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$took" "${execs:-?}" "$files" "$result" |
    tee -a "$B/fuzz-stats.tsv"
done
exit $status
