#!/usr/bin/env bash
# tests/library/run.sh: the newer library patterns (patterns/*.pat) against
# their papers' formulas written separately in numpy (tests/library/lib.py;
# the older ones are in tests/unit/test_patterns.c), cell by cell with
# spatc mask and value by value with spatc run.  Run from the repository root
# with $SPATC naming the binary.  Prints "ok NAME" / "FAIL NAME: why" and
# "N passed, N failed".  Needs python3 with numpy (see tests/gym/run.sh).
set -u
export SPATC=${SPATC:-build/spatc}
here=$(dirname "$0")
py=$(bash "$here/../gym/find-python.sh") || exit 1
exec "$py" "$here/lib.py" "$@"
