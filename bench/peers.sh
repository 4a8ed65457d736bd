#!/usr/bin/env bash
# bench/peers.sh (make bench-peers): spatc beside PyTorch SDPA and compiled
# FlexAttention on the same problems, single-threaded (bench/peers.py; the
# measured numbers are in docs/peers.md).  Optional: torch is never a build
# dependency; without it this says how to install it and exits 0.
# Environment: PYTHON (default python3), B (build dir), LIB (libspat.so),
# REPEATS (default 5), PEERS_ARGS (more bench/peers.py options),
# PEERS_LIB_ARGS (more bench/peers_library.py options).  Then
# bench/peers_python.py: the Python package's overhead and spatc.torch;
# bench/peers_decode.py: decoding; bench/peers_backward.py: the backward
# pass against SDPA's.
set -euo pipefail
PYTHON=${PYTHON:-python3}
B=${B:-build}
LIB=${LIB:-$B/libspat.so}
REPEATS=${REPEATS:-5}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "bench-peers: skipped: $PYTHON not found (set PYTHON=...)" >&2
  exit 0
fi
if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
  echo "bench-peers: skipped: torch is not importable by $PYTHON." >&2
  echo "  Install it with:  pip install torch   (for this interpreter: $PYTHON -m pip install torch)" >&2
  echo "  (FlexAttention needs torch >= 2.5 and a C++ compiler for torch.compile.)" >&2
  exit 0
fi
if [ ! -f "$LIB" ]; then
  echo "bench-peers: $LIB not found: run make first" >&2
  exit 1
fi
# shellcheck disable=SC2086
"$PYTHON" bench/peers.py --lib "$LIB" --repeats "$REPEATS" ${PEERS_ARGS:-}
# the newer library patterns against FlexAttention with the same mask_mod /
# score_mod (BLOCK_SIZE 64 and default), through spatc bench
"$PYTHON" bench/peers_library.py --spatc "$B/spatc" --repeats "$REPEATS" ${PEERS_LIB_ARGS:-}
# The Python package (python/spatc): call overhead, spatc.torch beside SDPA
# and FlexAttention (bench/peers_python.py).
echo "== python package (bench/peers_python.py)"
SPATC_LIB=$LIB "$PYTHON" bench/peers_python.py --repeats "$REPEATS"
# the decode case of issue 12 (bench/peers_decode.py)
"$PYTHON" bench/peers_decode.py --lib "$LIB" --repeats "$REPEATS"
# the backward pass of issue 9 against SDPA's (bench/peers_backward.py)
echo "== backward (bench/peers_backward.py)"
SPATC_LIB=$LIB "$PYTHON" bench/peers_backward.py --repeats "$REPEATS"
