#!/usr/bin/env bash
# tests/fuzz/run.sh: replays the fuzz seeds and every regression input
# (tests/fuzz/regress/<target>/) through the fuzz targets built without
# libFuzzer ($B/tests/fuzz_<target>_replay, made by make test), so a finding
# that was fixed stays fixed.  Run from the repository root; make test runs it.
# Prints "ok NAME" / "FAIL NAME" and closes with "N passed, N failed".
# tests/fuzz/pending/<target>/ holds reported findings not fixed yet: each is
# run too and said to still fail or to pass now, but counts for nothing.
set -u
B=${B:-build}
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

replay() { # NAME TARGET FILES...
  local name=$1 bin=$B/tests/fuzz_$2_replay
  shift 2
  local out
  if out=$(timeout 300 "$bin" "$@" 2>&1); then
    ok "$name ($(printf '%s\n' "$out" | tail -1))"
  else
    fail "$name"
    FUZZ_REPLAY_VERBOSE=1 timeout 300 "$bin" "$@" 2>&1 | grep -v '^ok' | tail -15 | sed 's/^/  /'
  fi
}

shopt -s nullglob
seeds=(tests/fuzz/seeds/pat/*)
replay "fuzz_front seeds" front patterns/*.pat tests/diag/*.pat "${seeds[@]}"
replay "fuzz_jit seeds" jit patterns/*.pat "${seeds[@]}"
replay "fuzz_npy seeds" npy tests/fuzz/seeds/npy/*
for t in front jit npy; do
  files=(tests/fuzz/regress/$t/*)
  [ ${#files[@]} -gt 0 ] || continue
  for f in "${files[@]}"; do
    case $f in *.md|*.txt) continue ;; esac
    replay "fuzz_$t regress/$t/$(basename "$f")" "$t" "$f"
  done
done
for f in tests/fuzz/pending/*/*; do
  case $f in *.md|*.txt) continue ;; esac
  t=$(basename "$(dirname "$f")")
  if (timeout 10 "$B/tests/fuzz_${t}_replay" "$f" >/dev/null 2>&1) 2>/dev/null; then
    echo "note: pending $f passes now: move it to tests/fuzz/regress/$t/"
  else
    echo "note: pending $f still fails (reported, not counted)"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
