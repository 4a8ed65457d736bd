"""bench/peers_decode.py (make bench-peers, through bench/peers.sh): spatc's
decode path beside PyTorch on issue 12's case, in one process, 1 thread.

Case: causal window 4096 + 4 sinks (`causal & (cols(0 .. 4) | window(4096,
0))`, bottom-right aligned: row r is position r + Lk - Lq) over a KV cache
of Lk = 32768, H = 32 query heads on Hkv = 8, D = 128, fp32, B = 1, for
Lq = 1 and 16:
  spatc   the JIT kernel (spat_kernel_call, threads 1, no disk cache)
  sdpa    scaled_dot_product_attention on the cache with a boolean [Lq, Lk]
          mask and enable_gqa=True
  sdpa_slice  the same on the keys the pattern can reach, sliced out of the
          cache first (the sinks and the last rows' window; slicing not timed)
  flex    flex_attention (torch.compile) with a BlockMask of the same
          mask_mod, enable_gqa=True
Median of --repeats rounds (each round runs them one after the other,
after a warm-up call each); "spatc faster" is the median over rounds of
(its time / spatc's time); the outputs are compared.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402  (sets the torch environment first)
from peers import Spat, Tensors, now, rounds, torch, F  # noqa: E402
import ctypes  # noqa: E402

TEXT = "pattern decode_case = causal & (cols(0 .. 4) | window(4096, 0));\n"
SINKS, W = 4, 4096


def call(spat, kern, q, k, v, o):
    B, H, Lq, _ = q.shape
    _, Hkv, Lk, _ = k.shape
    t = Tensors(B, H, Hkv, Lq, Lk, q.data_ptr(), k.data_ptr(), v.data_ptr(),
                o.data_ptr(), None, 0.0, None)
    spat.check(spat.lib.spat_kernel_call(kern, ctypes.byref(t), None, 0),
               "spat_kernel_call")


def bench(args, spat, Lq, Lk=32768, H=32, Hkv=8, D=128):
    torch.manual_seed(args.seed)
    q = torch.randn(1, H, Lq, D)
    k = torch.randn(1, Hkv, Lk, D)
    v = torch.randn(1, Hkv, Lk, D)
    off = Lk - Lq
    i = torch.arange(Lq).view(Lq, 1) + off
    j = torch.arange(Lk).view(1, Lk)
    mask = (j <= i) & ((j < SINKS) | (j >= i - W))
    flop = 4.0 * float(mask.sum()) * H * D
    pattern = spat.parse(TEXT)
    kern, _ = spat.compile(pattern, D, 1)
    o = torch.empty_like(q)
    # the keys the pattern can reach, sliced out of the cache (sinks, then
    # the window of the last rows), as a caller of SDPA would
    lo = max(SINKS, off - W)
    ks = torch.cat([k[:, :, :SINKS], k[:, :, lo:]], dim=2)
    vs = torch.cat([v[:, :, :SINKS], v[:, :, lo:]], dim=2)
    ms_ = torch.cat([mask[:, :SINKS], mask[:, lo:]], dim=1)
    fns = {"spatc": lambda: call(spat, kern, q, k, v, o),
           "sdpa": lambda: F.scaled_dot_product_attention(
               q, k, v, attn_mask=mask, enable_gqa=True),
           "sdpa_slice": lambda: F.scaled_dot_product_attention(
               q, ks, vs, attn_mask=ms_, enable_gqa=True)}
    res = {"Lq": Lq}
    try:
        from torch.nn.attention.flex_attention import (create_block_mask,
                                                       flex_attention)

        def mask_mod(b, h, qi, kj):
            ii = qi + off
            return (kj <= ii) & ((kj < SINKS) | (kj >= ii - W))

        bm = create_block_mask(mask_mod, None, None, Lq, Lk, device="cpu")
        flex = torch.compile(flex_attention, dynamic=False)
        fns["flex"] = lambda: flex(q, k, v, block_mask=bm, enable_gqa=True)
    except Exception as e:  # report it, keep the others
        res["flex_error"] = ("%s: %s" % (type(e).__name__, e))[:300]
    with torch.no_grad():
        ms = rounds(fns, args.repeats)
        call(spat, kern, q, k, v, o)
        ref = fns["sdpa"]()
        res["err"] = {n: float((fns[n]() - ref).abs().max())
                      for n in fns if n != "spatc"}
        res["err"]["spatc"] = float((o - ref).abs().max())
    for name, t in ms.items():
        res[name] = {"ms": statistics.median(t), "gflops":
                     flop / statistics.median(t) / 1e6}
        if name != "spatc":
            res[name]["spatc_faster"] = statistics.median(
                a / b for a, b in zip(t, ms["spatc"]))
    spat.lib.spat_kernel_free(kern)
    spat.lib.spat_pattern_free(pattern)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/libspat.so")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spat = Spat(args.lib)
    print("Decode, issue 12's case: %s  Lk 32768, H 32 on Hkv 8, D 128, fp32, "
          "B 1, 1 thread, median of %d rounds" % (TEXT.strip(), args.repeats))
    print("  %-4s %-10s %10s %8s %13s %10s" % ("Lq", "", "kernel ms", "GFLOP/s",
                                             "spatc faster", "max |err|"))
    for Lq in (1, 16):
        r = bench(args, spat, Lq)
        for name in ("spatc", "sdpa", "sdpa_slice", "flex"):
            if name not in r:
                print("  %-4d %-10s failed: %s" % (Lq, name, r.get("flex_error")))
                continue
            x = r[name]
            print("  %-4d %-10s %10.2f %8.2f %13s %10.2g" % (
                Lq, name, x["ms"], x["gflops"],
                "%.2fx" % x["spatc_faster"] if "spatc_faster" in x else "-",
                r["err"].get(name, 0.0)))
    spat.close()


if __name__ == "__main__":
    main()
