#!/usr/bin/env bash
# make demo: a library pattern, seen, checked, JIT-compiled and timed.
set -euo pipefail
B=${B:-build}
pat=patterns/longformer.pat
echo "== $B/spatc check $pat"
"$B/spatc" check "$pat" && echo "ok"
echo
echo "== the pattern at small scale: $B/spatc mask $pat -D w=8 -D g=2 --lq 32 --format ascii"
"$B/spatc" mask "$pat" -D w=8 -D g=2 --lq 32 --format ascii
echo
echo "== JIT vs interpreter at L=4096, H=8, D=64 (default parameters)"
"$B/demo" "$pat" 4096 8 64 0
