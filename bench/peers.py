"""bench/peers.py (make bench-peers, through bench/peers.sh): spatc beside
PyTorch on the same problem, in one process on this CPU.

In:  libspat.so (build/libspat.so, the public C API of include/spat.h,
     through ctypes) and torch importable by this python.
Out: per configuration, a table on stdout (and one JSON object per line with
     --json) for
       spatc   the pattern `window(left, right)` compiled with the JIT
               (spat_compile, threads 1, no disk cache), run by
               spat_kernel_call
       sdpa    torch.nn.functional.scaled_dot_product_attention with a
               boolean [L, L] mask (True = attend)
       flex    torch.nn.attention.flex_attention.flex_attention compiled with
               torch.compile, with a BlockMask from create_block_mask
     with, for each:
       compile ms  spatc: JIT compile, median of 3; sdpa: its first call
                   (nothing to compile); flex: its first call (dynamo +
                   inductor codegen + the C++ build, fresh inductor cache;
                   wall and CPU time, the compiler's included)
       mask ms     sdpa: building the [L, L] bool mask; flex: create_block_mask,
                   median of 3 builds after a first one (reported apart)
       kernel ms   median of --repeats rounds; in each round the three run
                   one after the other (after one warm-up call each), so that
                   the machine's load hits them alike
       GFLOP/s     4 * nnz * D per head, summed over heads, over kernel ms
                   (nnz: the allowed pairs)
       vs spatc    median over the rounds of (its time / spatc's time)
     and the max |difference| of the three outputs on the same q, k, v.

All runs are single-threaded: torch.set_num_threads(1), spatc threads 1.
"""
import argparse
import atexit
import ctypes
import json
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings

# Must be set before torch is imported: one compute thread everywhere, one
# inductor compile worker (the machine is shared), and a fresh inductor cache
# so that the flex first call includes the real compile.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
CACHE_DIR = tempfile.mkdtemp(prefix="spatc-peers-inductor-")
atexit.register(shutil.rmtree, CACHE_DIR, ignore_errors=True)
os.environ["TORCHINDUCTOR_CACHE_DIR"] = CACHE_DIR

# torch warns at import when numpy is absent; nothing here uses numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# cpp_extension warns that no CUDA runtime is found: this is a CPU run.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

DEFAULT_CONFIGS = [
    # (L, H, D, left, right)
    (4096, 8, 64, 256, 256),
    (4096, 8, 128, 512, 0),
]


def now():
    return time.perf_counter()


def cpu_ms():
    """CPU time of this process and its finished children (the C++ compiler)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime) * 1e3


def pattern_text(left, right):
    if left == right:
        return "pattern peers = window(%d);\n" % left
    return "pattern peers = window(%d, %d);\n" % (left, right)


class CompileOptions(ctypes.Structure):  # spat_compile_options
    _fields_ = [("D", ctypes.c_int64), ("layout", ctypes.c_int),
                ("threads", ctypes.c_int), ("backend", ctypes.c_int),
                ("cache", ctypes.c_int), ("dtype", ctypes.c_int)]


class Tensors(ctypes.Structure):  # spat_tensors
    _fields_ = [("B", ctypes.c_int64), ("H", ctypes.c_int64),
                ("Hkv", ctypes.c_int64), ("Lq", ctypes.c_int64),
                ("Lk", ctypes.c_int64), ("q", ctypes.c_void_p),
                ("k", ctypes.c_void_p), ("v", ctypes.c_void_p),
                ("o", ctypes.c_void_p), ("lse", ctypes.c_void_p),
                ("scale", ctypes.c_float), ("paged", ctypes.c_void_p)]


class Spat:
    """The public C API of libspat.so (include/spat.h), through ctypes."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        vp, cp = ctypes.c_void_p, ctypes.c_char_p
        lib.spat_version_string.restype = cp
        lib.spat_ctx_new.restype = vp
        lib.spat_ctx_free.argtypes = [vp]
        lib.spat_ctx_error.restype = cp
        lib.spat_ctx_error.argtypes = [vp]
        lib.spat_ctx_last_diagnostics.restype = cp
        lib.spat_ctx_last_diagnostics.argtypes = [vp]
        lib.spat_pattern_parse_string.argtypes = [vp, cp, cp, cp,
                                                  ctypes.POINTER(vp)]
        lib.spat_pattern_free.argtypes = [vp]
        lib.spat_compile.argtypes = [vp, ctypes.POINTER(CompileOptions),
                                     ctypes.POINTER(vp)]
        lib.spat_kernel_free.argtypes = [vp]
        lib.spat_kernel_call.argtypes = [vp, ctypes.POINTER(Tensors), vp,
                                         ctypes.c_size_t]
        self.lib = lib
        self.version = lib.spat_version_string().decode()
        self.ctx = lib.spat_ctx_new()
        if not self.ctx:
            raise MemoryError("spat_ctx_new")

    def check(self, rc, what):
        if rc != 0:
            err = self.lib.spat_ctx_error(self.ctx) or b""
            diags = self.lib.spat_ctx_last_diagnostics(self.ctx) or b""
            raise RuntimeError("%s failed (status %d): %s\n%s" % (
                what, rc, err.decode(), diags.decode()))

    def parse(self, text):
        p = ctypes.c_void_p()
        self.check(self.lib.spat_pattern_parse_string(
            self.ctx, b"peers.pat", text.encode(), None, ctypes.byref(p)),
            "spat_pattern_parse_string")
        return p

    def compile(self, pattern, D, threads):
        """(kernel, ms): the JIT, no disk cache."""
        opts = CompileOptions(D, 0, threads, 0, 0)
        k = ctypes.c_void_p()
        t0 = now()
        self.check(self.lib.spat_compile(pattern, ctypes.byref(opts),
                                         ctypes.byref(k)), "spat_compile")
        return k, (now() - t0) * 1e3

    def call(self, kernel, q, k, v, o):
        """o = attention(q, k, v); all contiguous float32 [1, H, L, D]."""
        B, H, L, _ = q.shape
        t = Tensors(B, H, H, L, L, q.data_ptr(), k.data_ptr(), v.data_ptr(),
                    o.data_ptr(), None, 0.0, None)
        self.check(self.lib.spat_kernel_call(kernel, ctypes.byref(t), None, 0),
                   "spat_kernel_call")
        return o

    def close(self):
        self.lib.spat_ctx_free(self.ctx)


def first_call(fn):
    """(wall ms, CPU ms of this process and its children, result)."""
    t0, c0 = now(), cpu_ms()
    out = fn()
    return (now() - t0) * 1e3, cpu_ms() - c0, out


def rounds(fns, repeats):
    """name -> ms of each round; a round calls every fn once, in order."""
    for fn in fns.values():
        fn()
    ms = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = now()
            fn()
            ms[name].append((now() - t0) * 1e3)
    return ms


def bench_config(args, spat, L, H, D, left, right):
    torch.manual_seed(args.seed)
    text = pattern_text(left, right)
    q, k, v = (torch.randn(1, H, L, D, dtype=torch.float32) for _ in range(3))
    res = {"L": L, "H": H, "D": D, "window": [left, right],
           "pattern": text.strip(), "repeats": args.repeats}

    def build_mask():
        i = torch.arange(L).view(L, 1)
        j = torch.arange(L).view(1, L)
        return (j >= i - left) & (j <= i + right)

    mask_ms = []
    for _ in range(3):
        t0 = now()
        mask = build_mask()
        mask_ms.append((now() - t0) * 1e3)
    nnz = int(mask.sum()) * H
    flop = 4.0 * nnz * D
    res["nnz"] = nnz
    res["density"] = nnz / (H * L * L)
    fns = {}

    # spatc: the JIT kernel through the C API.
    pattern = spat.parse(text)
    compiles, kern = [], None
    for _ in range(3):
        if kern is not None:
            spat.lib.spat_kernel_free(kern)
        kern, ms = spat.compile(pattern, D, 1)
        compiles.append(ms)
    o_spatc = torch.empty_like(q)
    res["spatc"] = {"first_ms": statistics.median(compiles),
                    "compile_ms_all": compiles, "mask_ms": None}
    fns["spatc"] = lambda: spat.call(kern, q, k, v, o_spatc)

    # SDPA with a boolean mask: dense cost whatever the mask.
    with torch.no_grad():
        first, first_cpu, o_sdpa = first_call(
            lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    res["sdpa"] = {"first_ms": first, "first_cpu_ms": first_cpu,
                   "mask_ms": statistics.median(mask_ms)}
    fns["sdpa"] = lambda: F.scaled_dot_product_attention(q, k, v,
                                                         attn_mask=mask)

    # FlexAttention with a block mask, compiled.
    o_flex = None
    try:
        from torch.nn.attention.flex_attention import (create_block_mask,
                                                       flex_attention)

        def mask_mod(b, h, q_idx, kv_idx):
            return (kv_idx >= q_idx - left) & (kv_idx <= q_idx + right)

        bm_times = []
        for _ in range(4):
            t0 = now()
            bmask = create_block_mask(mask_mod, None, None, L, L, device="cpu")
            bm_times.append((now() - t0) * 1e3)
        flex = torch.compile(flex_attention, dynamic=False)
        with torch.no_grad():
            first, first_cpu, o_flex = first_call(
                lambda: flex(q, k, v, block_mask=bmask))
        res["flex"] = {"first_ms": first, "first_cpu_ms": first_cpu,
                       "mask_ms": statistics.median(bm_times[1:]),
                       "mask_first_ms": bm_times[0],
                       "block_size": list(bmask.BLOCK_SIZE),
                       "block_sparsity_pct": float(bmask.sparsity())}
        fns["flex"] = lambda: flex(q, k, v, block_mask=bmask)
    except Exception as e:  # report it, keep the other numbers
        res["flex"] = {"error": ("%s: %s" % (type(e).__name__, e))[:4000]}

    with torch.no_grad():
        ms = rounds(fns, args.repeats)
        fns["spatc"]()
        res["max_err_spatc_vs_sdpa"] = float((o_spatc - o_sdpa).abs().max())
        if o_flex is not None:
            res["max_err_flex_vs_sdpa"] = float((o_flex - o_sdpa).abs().max())
            res["max_err_spatc_vs_flex"] = float((o_spatc - o_flex).abs().max())
    spat.lib.spat_kernel_free(kern)
    spat.lib.spat_pattern_free(pattern)
    for name, times in ms.items():
        r = res[name]
        r["kernel_ms"] = statistics.median(times)
        r["kernel_ms_all"] = times
        r["gflops"] = flop / (r["kernel_ms"] * 1e6)
        if name != "spatc":
            r["spatc_speedup"] = statistics.median(
                t / s for t, s in zip(times, ms["spatc"]))
    return res


def fmt(x, spec, suffix=""):
    return "-" if x is None else format(x, spec) + suffix


def print_table(res):
    left, right = res["window"]
    print("L %d, H %d, D %d, window(%d, %d): density %.4f, nnz %d; fp32, "
          "B 1, 1 thread, median of %d rounds" % (
              res["L"], res["H"], res["D"], left, right, res["density"],
              res["nnz"], res["repeats"]))
    print("  %-6s %11s %9s %10s %8s %13s" % (
        "", "compile ms", "mask ms", "kernel ms", "GFLOP/s", "spatc faster"))
    for name in ("spatc", "sdpa", "flex"):
        x = res[name]
        if "error" in x:
            print("  %-6s failed: %s" % (name, x["error"].splitlines()[0][:300]))
            continue
        print("  %-6s %11s %9s %10.2f %8.2f %13s" % (
            name, fmt(x["first_ms"], ".0f"), fmt(x["mask_ms"], ".1f"),
            x["kernel_ms"], x["gflops"], fmt(x.get("spatc_speedup"), ".2f", "x")))
    errs = ["%s %.2g" % (k[8:].replace("_", " "), v) for k, v in res.items()
            if k.startswith("max_err")]
    print("  max |o difference|: " + ", ".join(errs))
    fx = res["flex"]
    if "block_size" in fx:
        print("  flex: first call %.0f ms wall, %.0f ms CPU (C++ compiler "
              "included); first block mask %.0f ms; blocks %s, %.1f%% skipped"
              % (fx["first_ms"], fx["first_cpu_ms"], fx["mask_first_ms"],
                 fx["block_size"], fx["block_sparsity_pct"]))
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", default="build/libspat.so",
                    help="libspat.so (default build/libspat.so)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed rounds (at least 5; default 5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config", action="append", metavar="L,H,D,LEFT,RIGHT",
                    help="a configuration, window(LEFT, RIGHT) (repeatable; "
                    "default: 4096,8,64,256,256 and 4096,8,128,512,0)")
    ap.add_argument("--json", action="store_true",
                    help="also one JSON line per configuration")
    args = ap.parse_args()
    if args.repeats < 5:
        ap.error("--repeats must be at least 5")
    configs = DEFAULT_CONFIGS
    if args.config:
        try:
            configs = [tuple(int(x) for x in c.split(",")) for c in args.config]
        except ValueError:
            ap.error("--config wants five integers L,H,D,LEFT,RIGHT")
        if any(len(c) != 5 for c in configs):
            ap.error("--config wants five integers L,H,D,LEFT,RIGHT")
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    spat = Spat(os.path.abspath(args.lib))
    print("spatc %s, torch %s, python %s, torch CPU capability %s, torch "
          "threads %d\n" % (spat.version, torch.__version__,
                            sys.version.split()[0],
                            torch.backends.cpu.get_cpu_capability(),
                            torch.get_num_threads()))
    try:
        for c in configs:
            res = bench_config(args, spat, *c)
            print_table(res)
            if args.json:
                print(json.dumps(res))
            sys.stdout.flush()
    finally:
        spat.close()


if __name__ == "__main__":
    main()
