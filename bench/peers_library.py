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
import math

import numpy as np

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


# ---- library patterns with inputs (patterns/v2) ----------------------------
# Each Lib config draws its input arrays once (numpy, fixed seed), writes
# them as .npy files for `spatc bench --input NAME=FILE.npy`, and builds the
# mask_mod / score_mod from the same arrays (transcribed from
# tests/library/lib.py's numpy references), so both sides run the same
# sparsity.  routing's mask depends on q and k: its Flex side gets the q, k,
# v spatc bench draws (spatc_randn, replicated by spatc_qkv below).
class Lib:
    def __init__(self, inputs, mask, score=None, B=1, qk=False):
        self.inputs, self.mask, self.score, self.B, self.qk = inputs, mask, score, B, qk


def _mix(x):
    """splitmix64 (cli/spatc_common.h spatc_mix) on uint64 arrays."""
    import numpy as np
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def spatc_randn(B, H, L, D, seed, stream):
    """cli/spatc_tensors.c spatc_randn: value e takes draws 2e, 2e + 1 of
    the stream started at mix(seed + stream); Box-Muller."""
    import numpy as np
    g = np.uint64(0x9E3779B97F4A7C15)
    s0 = _mix(np.uint64(seed + stream))
    e = np.arange(B * H * L * D, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x1 = _mix(s0 + (np.uint64(2) * e) * g)
        x2 = _mix(s0 + (np.uint64(2) * e + np.uint64(1)) * g)
    u1 = ((x1 >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    u2 = (x2 >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)).astype(np.float32).reshape(B, H, L, D)


def spatc_qkv(B, H, L, D, seed=1):
    return [torch.from_numpy(spatc_randn(B, H, L, D, seed, x)) for x in range(3)]


def _rng():
    import numpy as np
    return np.random.default_rng(7)


def t5_inputs(B, H, L, D):
    return {"rel": _rng().standard_normal((H, 32)).astype("float32")}


def t5_dec_bucket(d):
    """Hugging Face T5Attention._relative_position_bucket, causal (32
    buckets, max distance 128), on d = max(i - j, 0)."""
    small = d < 16
    large = 16 + (torch.log(d.float().clamp(min=1) / 16) / math.log(128 / 16) * 16).long()
    return torch.where(small, d, torch.clamp(large, max=31))


def t5_score(a):
    rel = torch.from_numpy(a["rel"])

    def score_mod(score, b, h, q, kv):
        return score + rel[h, t5_dec_bucket(torch.clamp(q - kv, min=0))]
    return score_mod


def rpb_inputs(ws):
    def inp(B, H, L, D):
        return {"rpb": _rng().standard_normal((H, (2 * ws - 1) ** 2)).astype("float32")}
    return inp


def swin_rel_score(W, ws):
    def make(a):
        rpb = torch.from_numpy(a["rpb"])
        n = rpb.shape[1]

        def score_mod(score, b, h, q, kv):
            idx = (q // W - kv // W + ws - 1) * (2 * ws - 1) + q % W - kv % W + ws - 1
            return score + rpb[h, torch.clamp(idx, 0, n - 1)]   # clamp: masked-out cells
        return score_mod
    return make


def centroids_inputs(n):
    def inp(B, H, L, D):
        C = _rng().standard_normal((H, n, D))
        C /= np.linalg.norm(C, axis=-1, keepdims=True)
        return {"centroids": C.astype("float32")}
    return inp


def routing_mask(a, qkv):
    """causal & same cluster: argmax_t dot(x, C[h, t]) for queries and keys."""
    C = torch.from_numpy(a["centroids"]).double()
    q, k = qkv[0][0].double(), qkv[1][0].double()          # [H, L, D]
    cq = torch.einsum("hld,hnd->hln", q, C).argmax(-1)
    ck = torch.einsum("hld,hnd->hln", k, C).argmax(-1)

    def m(b, h, qi, kv):
        return (kv <= qi) & (cq[h, qi] == ck[h, kv])
    return m


def vs_inputs(nv, ns):
    def inp(B, H, L, D):
        r = _rng()
        v = r.integers(0, L, (H, nv))
        sl = r.integers(0, L, (H, ns))
        sl[:, :16] = np.arange(16)          # MInference keeps the local diagonals
        return {"vidx": v.astype("int32"), "sidx": sl.astype("int32")}
    return inp


def vs_mask(a, qkv):
    H = a["vidx"].shape[0]
    L = int(max(a["vidx"].max(), a["sidx"].max())) + 1
    L = max(L, 1 << 16)
    col = torch.zeros(H, L, dtype=torch.bool)
    diag = torch.zeros(H, L, dtype=torch.bool)
    for h in range(H):
        col[h, torch.from_numpy(a["vidx"][h].astype("int64"))] = True
        diag[h, torch.from_numpy(a["sidx"][h].astype("int64"))] = True

    def m(b, h, q, kv):
        return (kv <= q) & (col[h, kv] | diag[h, torch.clamp(q - kv, 0, L - 1)])
    return m


def bs_inputs(bsz, nb):
    def inp(B, H, L, D):
        r = _rng()
        n = (L + bsz - 1) // bsz
        m = np.zeros((H, n, n), dtype=np.int32)
        for h in range(H):
            for qb in range(n):
                m[h, qb, qb] = 1                          # the diagonal block
                m[h, qb, r.choice(qb + 1, size=min(nb, qb + 1), replace=False)] = 1
        return {"bmask": m}
    return inp


def bs_mask(bsz):
    def make(a, qkv):
        bm = torch.from_numpy(a["bmask"]).bool()

        def m(b, h, q, kv):
            return (kv <= q) & bm[h, q // bsz, kv // bsz]
        return m
    return make


def doc_inputs(B, H, L, D):
    """Packed documents of random lengths in [L/16, L/4] per sequence."""
    r = _rng()
    doc = np.zeros((B, L), dtype=np.int32)
    for b in range(B):
        pos, d = 0, 0
        while pos < L:
            n = int(r.integers(L // 16, L // 4 + 1))
            doc[b, pos:pos + n] = d
            pos, d = pos + n, d + 1
    return {"doc": doc}


def doc_mask(a, qkv):
    doc = torch.from_numpy(a["doc"].astype("int64"))

    def m(b, h, q, kv):
        return (kv <= q) & (doc[b, q] == doc[b, kv])
    return m


def _hash_np(seed, h, i, t):
    """runtime/arith.h ar_hash (docs/language.md random(r, seed)) on uint64."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
             ^ np.asarray(h, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
             ^ np.asarray(i, dtype=np.uint64) * np.uint64(0x94D049BB133111EB)
             ^ np.asarray(t, dtype=np.uint64))
    return _mix(x)


def bigbird_mask(b, g, r, seed):
    """patterns/bigbird.pat on blocks: |I - J| <= 1, I or J among the first
    and last g blocks, J among hash(seed, h, I, t) mod n for t < r."""
    def make(a, qkv):
        H, L = a["H"], a["L"]
        n = (L + b - 1) // b
        I = np.arange(n)[:, None]
        J = np.arange(n)[None, :]
        glob = lambda x: (x < g) | (x >= n - g)
        base = (np.abs(I - J) <= 1) | glob(I) | glob(J)
        tab = np.repeat(base[None], H, axis=0)
        for h in range(H):
            for t in range(r):
                rj = (_hash_np(seed, h, np.arange(n), t) % np.uint64(n)).astype(np.int64)
                tab[h, np.arange(n), rj] = True
        bm = torch.from_numpy(tab)

        def m(bb, h, q, kv):
            return bm[h, q // b, kv // b]
        return m
    return make


def nsa_mask(w, b, k):
    """patterns/nsa.pat: causal & (q - w <= kv | kv / b among the top k key
    blocks J <= I of query block I, by dot(mean q of I, mean k of J) in
    double, ties to the smaller J), on the q, k spatc bench draws."""
    def make(a, qkv):
        q, kk = qkv[0][0].double(), qkv[1][0].double()      # [H, L, D]
        H, L, D = q.shape
        n = (L + b - 1) // b
        pad = n * b - L
        def means(x):
            s = torch.nn.functional.pad(x, (0, 0, 0, pad)).reshape(H, n, b, D).sum(2)
            cnt = torch.full((n,), float(b), dtype=torch.float64)
            cnt[-1] = b - pad
            return s / cnt[None, :, None]
        sc = torch.einsum("hid,hjd->hij", means(q), means(kk))
        J = torch.arange(n)
        sc = sc.masked_fill(J[None, None, :] > J[None, :, None], float("-inf"))
        # rank: score descending, then J ascending (stable sort on -score)
        order = torch.sort(-sc, dim=-1, stable=True).indices[..., :k]
        sel = torch.zeros(H, n, n, dtype=torch.bool)
        sel.scatter_(2, order, True)
        sel &= J[None, None, :] <= J[None, :, None]
        def m(bb, h, qi, kv):
            return (kv <= qi) & ((qi - kv <= w) | sel[h, qi // b, kv // b])
        return m
    return make


def shape_inputs(B, H, L, D):
    """no arrays: the sizes, for masks built in Python only"""
    return {"H": H, "L": L}


def const_mask(mm):
    return lambda a, qkv: mm


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
    # library patterns of language version 2 with input arrays (Lib above)
    ("t5_decoder", "v2/t5.pat", {}, 4096, Lib(t5_inputs, const_mask(causal), t5_score)),
    ("swin_rel", "v2/swin_rel.pat", {"Wimg": 56, "ws": 7}, 3136,
     Lib(rpb_inputs(7), const_mask(swin_window(56, 7)), swin_rel_score(56, 7))),
    ("swin_shifted_rel", "v2/swin_rel.pat", {"Wimg": 56, "ws": 7, "shift": 3}, 3136,
     Lib(rpb_inputs(7), const_mask(swin_shifted(56, 7, 3)), swin_rel_score(56, 7))),
    ("routing", "v2/routing.pat", {"n": 16}, 4096,
     Lib(centroids_inputs(16), routing_mask, qk=True)),
    ("vertical_slash", "v2/minference.pat", {"nv": 64, "ns": 64}, 4096,
     Lib(vs_inputs(64, 64), vs_mask)),
    ("block_sparse", "v2/minference.pat", {"b": 64}, 4096, Lib(bs_inputs(64, 8), bs_mask(64))),
    ("document_batch", "v2/document_batch.pat", {}, 4096, Lib(doc_inputs, doc_mask, B=2)),
    # issue 13: BigBird's random blocks (the spec's hash) and NSA's block
    # top-k (on spatc bench's q, k), at L 4096 and 16384
    ("bigbird", "bigbird.pat", {}, 4096, Lib(shape_inputs, bigbird_mask(64, 1, 3, 0))),
    ("bigbird", "bigbird.pat", {}, 16384, Lib(shape_inputs, bigbird_mask(64, 1, 3, 0))),
    ("nsa", "nsa.pat", {}, 4096, Lib(shape_inputs, nsa_mask(512, 64, 16), qk=True)),
    ("nsa", "nsa.pat", {}, 16384, Lib(shape_inputs, nsa_mask(512, 64, 16), qk=True)),
]


def spatc_ms(args, file, pattern, defines, L, H, D, B=1, inputs=None):
    cmd = [args.spatc, "bench", os.path.join(args.patterns, file), "--pattern", pattern,
           "--len", str(L), "--heads", str(H), "--dim", str(D), "--threads", "1",
           "--repeats", str(args.repeats), "--no-dense", "--json"]
    if B != 1:
        cmd += ["--batch", str(B)]
    for k, v in defines.items():
        cmd += ["-D", "%s=%d" % (k, v)]
    for k, path in (inputs or {}).items():
        cmd += ["--input", "%s=%s" % (k, path)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def flex_fn(mask_mod, L, H, D, block, score_mod=None, B=1, qkv=None):
    """(call, first-call ms, block sparsity %): compiled flex_attention on
    fixed random q, k, v (or the given ones) with create_block_mask(mask_mod)
    at BLOCK_SIZE block (None: the default)."""
    torch.manual_seed(1)
    q, k, v = qkv if qkv is not None else (torch.randn(B, H, L, D) for _ in range(3))
    kw = {} if block is None else {"BLOCK_SIZE": block}
    bm = create_block_mask(mask_mod, B, H, L, L, device="cpu", **kw)
    flex = torch.compile(flex_attention, dynamic=False)

    def call():
        with torch.no_grad():
            flex(q, k, v, block_mask=bm, score_mod=score_mod)
    t0 = time.perf_counter()
    call()
    return call, (time.perf_counter() - t0) * 1e3, float(bm.sparsity())


def mask_density(mask_mod, B, H, L, chunk=512):
    """Fraction of allowed (b, h, i, j), the mask_mod evaluated cell by cell
    (to check against spatc bench's "density": the same sparsity)."""
    kv = torch.arange(L)[None, :]
    n = 0
    with torch.no_grad():
        for b in range(B):
            for h in range(H):
                for q0 in range(0, L, chunk):
                    q = torch.arange(q0, min(q0 + chunk, L))[:, None]
                    n += int(mask_mod(torch.tensor(b), torch.tensor(h), q, kv).sum())
    return n / (B * H * L * L)


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
    ap.add_argument("--len", type=int, action="append", dest="lens",
                    help="only the configurations of this L (repeatable)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for lim in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, lim):
            setattr(torch._dynamo.config, lim, 1024)
    H, D = args.heads, args.dim
    print("spatc vs FlexAttention (torch %s), fp32, B 1 (document_batch: 2), H %d, D %d, 1 thread; "
          "kernel ms: median over %d rounds of the median of %d calls; x: flex / "
          "spatc (above 1: spatc faster), median over the rounds" % (
              torch.__version__, H, D, args.rounds, args.repeats))
    print("%-16s %-22s %6s %9s %9s %9s %8s %8s  %6s %6s %5s %5s" % (
        "pattern", "params", "L", "spatc ms", "flex64 ms", "flex ms", "x(64)", "x(def)",
        "dens", "fdens", "sp64", "sp128"))
    tmp = tempfile.mkdtemp(prefix="spatc-peers-in-")
    for name, file, defines, L, mm, *score in CONFIGS:
        if args.only and name not in args.only:
            continue
        if args.lens and L not in args.lens:
            continue
        B, qkv, files = 1, None, None
        if isinstance(mm, Lib):
            lib, B = mm, mm.B
            arrays = lib.inputs(B, H, L, D)
            files = {}
            for k, a in arrays.items():
                if not isinstance(a, np.ndarray):
                    continue
                files[k] = os.path.join(tmp, "%s_%s.npy" % (name, k))
                np.save(files[k], a)
            qkv = spatc_qkv(B, H, L, D) if lib.qk else None
            mm = lib.mask(arrays, qkv)
            sm = lib.score(arrays) if lib.score else None
        else:
            sm = score[0](H) if score else None
        dens = mask_density(mm, B, H, L)
        f64, first64, sp64 = flex_fn(mm, L, H, D, 64, sm, B, qkv)
        fdf, firstdf, spdf = flex_fn(mm, L, H, D, None, sm, B, qkv)
        # rounds: spatc, flex 64, flex default one after the other, so that
        # the machine's load hits them alike; medians over the rounds
        rs, r64, rdf = [], [], []
        try:
            spatc_ms(args, file, name, defines, L, H, D, B, files)
        except subprocess.CalledProcessError as e:
            # (an option this build of spatc bench does not have, say)
            print("%-16s spatc bench failed (exit %d): not measured" % (name, e.returncode))
            continue
        for _ in range(args.rounds):
            sp = spatc_ms(args, file, name, defines, L, H, D, B, files)
            rs.append(sp["kernel_ms"])
            r64.append(timed(f64, args.repeats))
            rdf.append(timed(fdf, args.repeats))
        s, t64, tdf = (statistics.median(x) for x in (rs, r64, rdf))
        x64 = statistics.median(a / b for a, b in zip(r64, rs))
        xdf = statistics.median(a / b for a, b in zip(rdf, rs))
        params = ",".join("%s=%d" % kv for kv in defines.items())
        print("%-16s %-22s %6d %9.2f %9.2f %9.2f %7.2fx %7.2fx  %.4f %.4f %5.1f %5.1f" % (
            name, params, L, s, t64, tdf, x64, xdf, sp["density"], dens, sp64, spdf))
        sys.stdout.flush()
        if args.json:
            print(json.dumps({"pattern": name, "defines": defines, "L": L, "H": H, "D": D,
                              "B": B, "density": sp["density"], "flex_mask_density": dens,
                              "spatc_ms": rs,
                              "flex64_ms": r64, "flex64_first_ms": first64,
                              "flex64_block_sparsity_pct": sp64,
                              "flex_ms": rdf, "flex_first_ms": firstdf,
                              "flex_block_sparsity_pct": spdf,
                              "ratio64": x64, "ratio_default": xdf}))
    shutil.rmtree(CACHE_DIR, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
