#!/usr/bin/env bash
# Prints the first python3 that imports numpy: $PYTHON, python3, then
# /usr/bin/python3 (Debian's, which has python3-numpy when a python3 earlier
# on PATH, e.g. a pyenv shim, does not).  With none, prints a failure line in
# the suites' format and exits 1.
for p in ${PYTHON:-} python3 /usr/bin/python3; do
  "$p" -c 'import numpy' 2>/dev/null && { command -v "$p"; exit 0; }
done
echo "FAIL no python3 with numpy (install python3-numpy or set PYTHON)" >&2
echo "0 passed, 1 failed" >&2
exit 1
