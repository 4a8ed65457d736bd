#!/usr/bin/env bash
# tests/gym/run.sh: attention-gym's mask_mods and score_mods ported to .pat
# (tests/gym/*.pat), checked cell by cell (spatc mask) and value by value
# (spatc run, o and lse) against a numpy transcription of the originals
# (tests/gym/gym.py, harness in tests/gym/harness.py).
# Run from the repository root with $SPATC naming the binary (make test does
# this).  Prints "ok NAME" or "FAIL NAME: why" per check and closes with
# "N passed, N failed"; exits non-zero when a check failed.
# Needs python3 with numpy (Debian: python3-numpy, in scripts/install-deps.sh);
# $PYTHON picks the interpreter.
set -u
export SPATC=${SPATC:-build/spatc}
here=$(dirname "$0")
py=$(bash "$here/find-python.sh") || exit 1
exec "$py" "$here/gym.py" "$@"
