#!/usr/bin/env bash
# tests/torch/run-torch.sh (make test-torch): the PyTorch layer of the Python
# package (spatc.torch, spatc.nn) under pytest, in a virtual environment
# with torch: $SPATC_VENV (default ~/.cache/spatc-torch), created with
# python3 -m venv when missing; torch (PyPI's default wheel: CI reaches PyPI,
# not download.pytorch.org), numpy, pytest and matplotlib are pip
# installed into it when they are not importable.  A failed install is an
# error, never a skip.  Not a tests/*/run.sh suite (make test does not run
# it).  Closes with "N passed, N failed".
set -u
B=${B:-build}
ROOT=$PWD
VENV=${SPATC_VENV:-$HOME/.cache/spatc-torch}
PY=$VENV/bin/python
die() { echo "test-torch: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

[ -f "$ROOT/$B/libspat.so" ] || die "$B/libspat.so not found: run make first"
if [ ! -x "$PY" ]; then
  echo "test-torch: creating the venv $VENV" >&2
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: python3-venv)"
fi
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
  echo "test-torch: installing torch into $VENV" >&2
  "$PY" -m pip install -q torch || die "pip install torch failed"
fi
for m in numpy pytest matplotlib; do
  "$PY" -c "import $m" >/dev/null 2>&1 ||
    "$PY" -m pip install -q "$m" || die "pip install $m failed"
done
T=$(mktemp -d "${TMPDIR:-/tmp}/spatc-torch.XXXXXX")
trap 'rm -rf "$T"' EXIT
out=$(cd "$ROOT" && SPATC_LIB=$ROOT/$B/libspat.so PYTHONPATH=$ROOT/python \
  XDG_CACHE_HOME=$T/xdg TORCHINDUCTOR_CACHE_DIR=$T/inductor \
  TORCHINDUCTOR_COMPILE_THREADS=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg \
  "$PY" -m pytest -q -p no:cacheprovider -o console_output_style=classic \
  -W ignore::UserWarning tests/torch 2>&1); rc=$?
printf '%s\n' "$out" | grep -E '^(FAILED|ERROR) ' | sed 's/^/FAIL /'
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -60
p=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p; s/^\([0-9][0-9]*\) passed.*/\1/p' | tail -1)
f=$(printf '%s\n' "$out" | sed -n 's/^\([0-9][0-9]*\) failed.*/\1/p; s/.* \([0-9][0-9]*\) failed.*/\1/p' | tail -1)
e=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9][0-9]*\) errors\{0,1\}[ ,].*/\1/p; s/^\([0-9][0-9]*\) errors\{0,1\}.*/\1/p' | tail -1)
p=${p:-0} f=$(( ${f:-0} + ${e:-0} ))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
echo "$p passed, $f failed"
[ "$f" -eq 0 ] && [ "$rc" -eq 0 ]
