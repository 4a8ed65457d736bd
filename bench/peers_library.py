"""bench/peers_library.py (make bench-peers, through bench/peers.sh): the newer
library patterns (patterns/swin.pat, neighborhood.pat, axial.pat,
minference.pat) with spatc beside compiled FlexAttention with the
equivalent mask_mod, single-threaded, on this CPU.

  spatc   `spatc bench FILE --pattern P -D ... --threads 1 --json`: the JIT
          kernel, median of --repeats runs after a warm-up (random q, k, v)
  flex    torch.compile(flex_attention) with a BlockMask from
          create_block_mask(mask_mod) at BLOCK_SIZE 64 and at the default
          (128); median of --repeats calls after the first (compile) call
  in --rounds rounds, each running the three one after the other.

Prints per configuration the kernel times, the ratio flex / spatc (above 1:
spatc faster) for both block sizes, and with --json one JSON line each.
Run: PYTHON=~/.cache/spatc-torch/bin/python bench/peers.sh, or directly
  python bench/peers_library.py --spatc build/spatc [--only NAME]"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
CACHE_DIR = tempfile.mkdtemp(prefix="spatc-peers-lib-")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = CACHE_DIR
warnings.filterwarnings("ignore")
import torch  # noqa: E402
from torch.nn.attention.flex_attention import (  # noqa: E402
    create_block_mask, flex_attention)


def clamp(x, lo, hi):
    return torch.clamp(x, lo, hi)


# name, file, pattern, -D defines, L, mask_mod(W...) factory
def swin_window(W, ws):
    def m(b, h, q, kv):
        return ((q // W // ws == kv // W // ws) & ((q % W) // ws == (kv % W) // ws))
    return m


def swin_shifted(W, ws, s):
    def g(v):
        return (v + ws - s) // ws

    def m(b, h, q, kv):
        return (g(q // W) == g(kv // W)) & (g(q % W) == g(kv % W))
    return m


def na2d(W, Himg, k):
    def m(b, h, q, kv):
        cy = clamp(q // W, k // 2, Himg - 1 - k // 2)
        cx = clamp(q % W, k // 2, W - 1 - k // 2)
        return ((cy - kv // W).abs() <= k // 2) & ((cx - kv % W).abs() <= k // 2)
    return m


def axial(W, masked):
    def m(b, h, q, kv):
        row = q // W == kv // W
        col = q % W == kv % W
        both = torch.where(h % 2 == 0, row, col)
        return both & (kv <= q) if masked else both
    return m


def a_shape(n_init, n_local):
    def m(b, h, q, kv):
        return (kv <= q) & ((kv < n_init) | (q - kv < n_local))
    return m


def causal(b, h, q, kv):
    return kv <= q


def causal_window(w):
    def m(b, h, q, kv):
        return (kv <= q) & (q - kv < w)
    return m


def alibi_score(H):
    """score - slope[h] * (q - kv), with the paper's slopes (spatc bench binds
    its own ALiBi-like values to the float[H] input; the work is the same)."""
    slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / H) for h in range(H)])

    def score_mod(score, b, h, q, kv):
        return score - slopes[h] * (q - kv)
    return score_mod


def softcap_score(cap):
    def score_mod(score, b, h, q, kv):
        return cap * torch.tanh(score / cap)
    return score_mod


CONFIGS = [
    ("swin_window", "swin.pat", {"Wimg": 56, "ws": 7}, 3136, swin_window(56, 7)),
    ("swin_shifted", "swin.pat", {"Wimg": 56, "ws": 7, "shift": 3}, 3136, swin_shifted(56, 7, 3)),
    ("na2d", "neighborhood.pat", {"Wimg": 56, "Himg": 56, "k": 7}, 3136, na2d(56, 56, 7)),
    ("axial", "axial.pat", {"Wimg": 64}, 4096, axial(64, 0)),
    ("axial", "axial.pat", {"Wimg": 64, "masked": 1}, 4096, axial(64, 1)),
    ("a_shape", "minference.pat", {"n_init": 128, "n_local": 1024}, 8192, a_shape(128, 1024)),
    # score patterns (patterns/v2): the mask_mod and the equivalent score_mod
    ("alibi", "v2/alibi.pat", {}, 4096, causal, alibi_score),
    ("gemma2_global", "v2/softcap.pat", {"cap": 50}, 4096, causal, lambda H: softcap_score(50.0)),
    ("gemma2_local", "v2/softcap.pat", {"cap": 50, "w": 1024}, 4096, causal_window(1024),
     lambda H: softcap_score(50.0)),
]


def spatc_ms(args, file, pattern, defines, L, H, D):
    cmd = [args.spatc, "bench", os.path.join(args.patterns, file), "--pattern", pattern,
           "--len", str(L), "--heads", str(H), "--dim", str(D), "--threads", "1",
           "--repeats", str(args.repeats), "--no-dense", "--json"]
    for k, v in defines.items():
        cmd += ["-D", "%s=%d" % (k, v)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def flex_fn(mask_mod, L, H, D, block, score_mod=None):
    """(call, first-call ms, block sparsity %): compiled flex_attention on
    fixed random q, k, v with create_block_mask(mask_mod) at BLOCK_SIZE
    block (None: the default)."""
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, H, L, D) for _ in range(3))
    kw = {} if block is None else {"BLOCK_SIZE": block}
    bm = create_block_mask(mask_mod, 1, H, L, L, device="cpu", **kw)
    flex = torch.compile(flex_attention, dynamic=False)

    def call():
        with torch.no_grad():
            flex(q, k, v, block_mask=bm, score_mod=score_mod)
    t0 = time.perf_counter()
    call()
    return call, (time.perf_counter() - t0) * 1e3, float(bm.sparsity())


def timed(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spatc", default="build/spatc")
    ap.add_argument("--patterns", default="patterns")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of (spatc, flex 64, flex default); default 3")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--only", action="append", help="pattern names to run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for lim in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, lim):
            setattr(torch._dynamo.config, lim, 1024)
    H, D = args.heads, args.dim
    print("spatc vs FlexAttention (torch %s), fp32, B 1, H %d, D %d, 1 thread; "
          "kernel ms: median over %d rounds of the median of %d calls; x: flex / "
          "spatc (above 1: spatc faster), median over the rounds" % (
              torch.__version__, H, D, args.rounds, args.repeats))
    print("%-14s %-22s %6s %9s %9s %9s %8s %8s" % (
        "pattern", "params", "L", "spatc ms", "flex64 ms", "flex ms", "x(64)", "x(def)"))
    for name, file, defines, L, mm, *score in CONFIGS:
        if args.only and name not in args.only:
            continue
        sm = score[0](H) if score else None
        f64, first64, sp64 = flex_fn(mm, L, H, D, 64, sm)
        fdf, firstdf, spdf = flex_fn(mm, L, H, D, None, sm)
        # rounds: spatc, flex 64, flex default one after the other, so that
        # the machine's load hits them alike; medians over the rounds
        rs, r64, rdf = [], [], []
        for _ in range(args.rounds):
            sp = spatc_ms(args, file, name, defines, L, H, D)
            rs.append(sp["kernel_ms"])
            r64.append(timed(f64, args.repeats))
            rdf.append(timed(fdf, args.repeats))
        s, t64, tdf = (statistics.median(x) for x in (rs, r64, rdf))
        x64 = statistics.median(a / b for a, b in zip(r64, rs))
        xdf = statistics.median(a / b for a, b in zip(rdf, rs))
        params = ",".join("%s=%d" % kv for kv in defines.items())
        print("%-14s %-22s %6d %9.2f %9.2f %9.2f %7.2fx %7.2fx" % (
            name, params, L, s, t64, tdf, x64, xdf))
        sys.stdout.flush()
        if args.json:
            print(json.dumps({"pattern": name, "defines": defines, "L": L, "H": H, "D": D,
                              "density": sp["density"], "spatc_ms": rs,
                              "flex64_ms": r64, "flex64_first_ms": first64,
                              "flex64_block_sparsity_pct": sp64,
                              "flex_ms": rdf, "flex_first_ms": firstdf,
                              "flex_block_sparsity_pct": spdf,
                              "ratio64": x64, "ratio_default": xdf}))
    shutil.rmtree(CACHE_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
