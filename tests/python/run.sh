#!/usr/bin/env bash
# tests/python/run.sh: the numpy layer of the Python package (python/spatc)
# under pytest, against build/libspat.so (make test runs it from the
# repository root).  Uses the first of $PYTHON, python3, /usr/bin/python3
# that imports numpy and pytest (Debian's python3-numpy and python3-pytest,
# from scripts/install-deps.sh); none is an error, never a skip.  Closes
# with "N passed, N failed".
set -u
B=${B:-build}
ROOT=$PWD
py=
for c in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$c" >/dev/null 2>&1 &&
     "$c" -c 'import numpy, pytest' >/dev/null 2>&1; then py=$c; break; fi
done
if [ -z "$py" ]; then
  echo "FAIL python: no python3 with numpy and pytest (scripts/install-deps.sh installs python3-numpy python3-pytest)"
  echo "0 passed, 1 failed"
  exit 1
fi
# Under make asan/ubsan, libspat.so is built with the sanitizers: python is
# not, so their runtimes are preloaded (leak checks off: CPython keeps its
# objects at exit by design).
pre=
case "${SAN:-}" in *address*) pre=$(${CC:-cc} -print-file-name=libasan.so) ;; esac
case "${SAN:-}" in *undefined*) pre="$pre $(${CC:-cc} -print-file-name=libubsan.so)" ;; esac
T=$(mktemp -d "${TMPDIR:-/tmp}/spatc-py.XXXXXX")
trap 'rm -rf "$T"' EXIT
out=$(cd "$ROOT" && LD_PRELOAD=${pre# } ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} \
  SPATC_LIB=$ROOT/$B/libspat.so PYTHONPATH=$ROOT/python \
  XDG_CACHE_HOME=$T/xdg PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg \
  "$py" -m pytest -q -p no:cacheprovider -o console_output_style=classic \
  tests/python 2>&1); rc=$?
printf '%s\n' "$out" | grep -E '^(FAILED|ERROR) ' | sed 's/^/FAIL /'
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -40
p=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p; s/^\([0-9][0-9]*\) passed.*/\1/p' | tail -1)
f=$(printf '%s\n' "$out" | sed -n 's/^\([0-9][0-9]*\) failed.*/\1/p; s/.* \([0-9][0-9]*\) failed.*/\1/p' | tail -1)
e=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9][0-9]*\) errors\{0,1\}[ ,].*/\1/p; s/^\([0-9][0-9]*\) errors\{0,1\}.*/\1/p' | tail -1)
p=${p:-0} f=$(( ${f:-0} + ${e:-0} ))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
echo "$p passed, $f failed"
[ "$f" -eq 0 ] && [ "$rc" -eq 0 ]
