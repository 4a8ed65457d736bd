"""bench/peers_python.py (make bench-peers, after bench/peers.py): the
Python package (python/spatc) measured in one process on this CPU.

1. Call overhead at small sizes: the same JIT kernel (window, threads 1)
   called through the bare C API (ctypes, a prebuilt spat_tensors: what a
   call costs without Python's work), spatc.attention (numpy) and
   spatc.torch.attention (the torch custom op, no grad); median of rounds
   of N calls, microseconds per call, and the overhead over the bare call.
2. spatc.torch.attention forward, and forward+backward when libspat has
   spat_kernel_backward, beside F.scaled_dot_product_attention with a
   boolean mask (forward and forward+backward) and compiled FlexAttention
   with a BlockMask (forward only on the CPU), on the same tensors; median
   ms of --repeats rounds, each running them one after the other.

Threads: spatc threads 1 and torch.set_num_threads(1), as bench/peers.py.
"""
import argparse
import ctypes
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
CACHE_DIR = tempfile.mkdtemp(prefix="spatc-peers-py-")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(CACHE_DIR, "inductor")
os.environ["XDG_CACHE_HOME"] = os.path.join(CACHE_DIR, "xdg")
warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import spatc  # noqa: E402
import spatc.torch  # noqa: E402
from spatc import _capi as C  # noqa: E402


def per_call_us(fns, n, rounds=9):
    """name -> us per call of each round; a round runs every fn n times, in
    turn, so that the machine's load hits them alike."""
    for f in fns.values():
        f()
    us = {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            us[name].append((time.perf_counter() - t0) / n * 1e6)
    return us


def overhead(L, D, n):
    p = spatc.Pattern.from_string("pattern w = window(8);")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, L, D), dtype=np.float32)
               for _ in range(3))
    o = np.empty_like(q)
    kern = p.kernel(D, threads=1)
    t = C.Tensors(1, 1, 1, L, L, q.ctypes.data, k.ctypes.data, v.ctypes.data,
                  o.ctypes.data, None, 0.0)
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    def op():
        with torch.no_grad():
            return spatc.torch.attention(tq, tk, tv, p, threads=1)

    def op_grad():   # through torch.ops.spatc.attention (the dispatcher)
        return spatc.torch.attention(tqg, tk, tv, p, threads=1)

    tqg = tq.clone().requires_grad_()
    us = per_call_us({
        "bare C call (ctypes)": lambda: C.lib.spat_kernel_call(
            kern.ptr, ctypes.byref(t), None, 0),
        "spatc.attention (numpy)": lambda: spatc.attention(q, k, v, p,
                                                           threads=1),
        "spatc.torch.attention": op,
        "  ... requires_grad q": op_grad}, n)
    bare = us["bare C call (ctypes)"]
    print("call overhead, window(8), B 1, H 1, L %d, D %d, %d calls x 9 "
          "rounds (medians; overhead: median over rounds of the difference "
          "to the bare call):" % (L, D, n))
    for name, t in us.items():
        over = statistics.median(a - b for a, b in zip(t, bare))
        print("  %-26s %8.1f us%s" % (name, statistics.median(t),
                                      "" if t is bare else
                                      "   overhead %6.1f us" % over))


def rounds(fns, repeats):
    for f in fns.values():
        f()
    ms = {n: [] for n in fns}
    for _ in range(repeats):
        for n, f in fns.items():
            t0 = time.perf_counter()
            f()
            ms[n].append((time.perf_counter() - t0) * 1e3)
    return {n: statistics.median(t) for n, t in ms.items()}


def speed(L, H, D, w, repeats):
    torch.manual_seed(0)
    p = spatc.Pattern.from_string("pattern w = window(%d);" % w)
    q, k, v = (torch.randn(1, H, L, D) for _ in range(3))
    qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))
    mask = torch.as_tensor(p.mask(L)[0])
    g = torch.randn(1, H, L, D)
    fns, notes = {}, []

    def st_fwd():
        with torch.no_grad():
            return spatc.torch.attention(q, k, v, p, threads=1)

    def sdpa_fwd():
        with torch.no_grad():
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def sdpa_fb():
        o = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=mask)
        o.backward(g)

    fns["spatc.torch fwd"] = st_fwd
    if spatc.torch.has_backward():
        def st_fb():
            o = spatc.torch.attention(qg, kg, vg, p, threads=1)
            o.backward(g)
        fns["spatc.torch fwd+bwd"] = st_fb
    else:
        notes.append("spatc.torch fwd+bwd: not measured, this libspat has "
                     "no spat_kernel_backward")
    fns["sdpa bool mask fwd"] = sdpa_fwd
    fns["sdpa bool mask fwd+bwd"] = sdpa_fb
    try:
        from torch.nn.attention.flex_attention import (create_block_mask,
                                                       flex_attention)

        def mm(b, h, qi, ki):
            return (ki >= qi - w) & (ki <= qi + w)
        bm = create_block_mask(mm, None, None, L, L, device="cpu")
        flex = torch.compile(flex_attention, dynamic=False)

        def flex_fwd():
            with torch.no_grad():
                return flex(q, k, v, block_mask=bm)
        t0 = time.perf_counter()
        flex_fwd()
        notes.append("flex first call (compile) %.0f ms"
                     % ((time.perf_counter() - t0) * 1e3))
        fns["flex fwd (compiled)"] = flex_fwd
    except Exception as e:
        notes.append("flex: %s: %s" % (type(e).__name__, str(e)[:200]))
    ms = rounds(fns, repeats)
    ref = sdpa_fwd()
    err = float((st_fwd() - ref).abs().max())
    print("\nwindow(%d), B 1, H %d, L %d, D %d, fp32, 1 thread, median of %d "
          "rounds:" % (w, H, L, D, repeats))
    base = ms["spatc.torch fwd"]
    for n, t in ms.items():
        print("  %-24s %9.2f ms  %6.2fx spatc.torch fwd" % (n, t, t / base))
    print("  max |spatc - sdpa| %.2g" % err)
    for n in notes:
        print("  " + n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--config", default="4096,8,64,256",
                    help="L,H,D,W for the speed table (window(W))")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("spatc (python) %s on %s, torch %s\n" % (
        spatc.version(), spatc.library_path, torch.__version__))
    try:
        overhead(16, 16, args.calls)
        overhead(128, 64, args.calls // 4)
        L, H, D, w = (int(x) for x in args.config.split(","))
        speed(L, H, D, w, args.repeats)
    finally:
        shutil.rmtree(CACHE_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
