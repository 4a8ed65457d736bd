#!/usr/bin/env bash
# Runs every test binary given, then the shell suites (tests/*/run.sh), and
# prints one closing line "N passed, N failed" over all of them.
# Environment: B (build dir, default build), VALGRIND (a wrapper command),
# SUITES=0 (only the binaries: make tsan).
set -u
B=${B:-build}
export SPATC=${SPATC:-$B/spatc}
passed=0 failed=0 failed_names=()
for t in "$@"; do
  out=$(${VALGRIND:-} "$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^\[ *(FAILED|ERROR|  PASSED) *\]|^\[  (FAILED|ERROR) ' || true
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | tail -1)
  p=${p:-0} f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; printf '%s\n' "$out" | tail -20
  fi
  echo "$(basename "$t"): $p passed, $f failed"
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -eq 0 ] || failed_names+=("$(basename "$t")")
done
for s in tests/*/run.sh; do
  [ -f "$s" ] && [ "${SUITES:-1}" != 0 ] || continue
  out=$(bash "$s" 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
  p=$(printf '%s' "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p'); p=${p:-0}
  f=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p'); f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  [ "$f" -eq 0 ] || printf '%s\n' "$out" | grep -v '^ok ' | tail -40
  echo "$s: $p passed, $f failed"
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -eq 0 ] || failed_names+=("$s")
done
[ ${#failed_names[@]} -eq 0 ] || echo "failing: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
