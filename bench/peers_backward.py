"""bench/peers_backward.py (make bench-peers, issue 9): spatc's backward
pass (spat_kernel_backward through spatc.torch.attention's autograd)
beside PyTorch SDPA's backward (F.scaled_dot_product_attention with a dense
boolean attn_mask built from the same pattern), on the same CPU tensors.

Per problem (default: longformer(w=512), about 12% dense at L=4096, and
window(256); B 1, H 8, L 4096, D 64, fp32): q, k, v require grad; the same
upstream gradient dO goes to .backward on both.  Each of --repeats rounds
runs, in turn, spatc forward+backward, spatc backward only (the forward run
untimed just before), then the same two for SDPA, so that the machine's
load hits both alike.  Prints medians (ms) and SDPA / spatc ratios, and
compares dq, dk, dv: max |spatc - SDPA| relative to max |SDPA grad| must
be < --tol (1e-3), or the script exits 1.

Threads: torch.set_num_threads(1) and spatc threads 1.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import spatc  # noqa: E402
import spatc.torch  # noqa: E402


def clear(*ts):
    for t in ts:
        t.grad = None


def runners(p, mask, q, k, v, g):
    """name -> (fwd+bwd fn, bwd-only fn); each leaves grads in q, k, v."""
    def spatc_fwd():
        return spatc.torch.attention(q, k, v, p, threads=1)

    def sdpa_fwd():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    out = {}
    for name, fwd in (("spatc", spatc_fwd), ("sdpa", sdpa_fwd)):
        def fb(fwd=fwd):
            clear(q, k, v)
            t0 = time.perf_counter()
            fwd().backward(g)
            return time.perf_counter() - t0

        def b(fwd=fwd):
            clear(q, k, v)
            o = fwd()
            t0 = time.perf_counter()
            o.backward(g)
            return time.perf_counter() - t0
        out[name] = (fb, b)
    return out


def grads(fn, q, k, v):
    fn()
    return [x.grad.clone() for x in (q, k, v)]


def problem(label, p, L, H, D, repeats, tol):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, H, L, D).requires_grad_() for _ in range(3))
    g = torch.randn(1, H, L, D)
    m = p.mask(L)
    m = m[0] if m.ndim == 3 else m
    mask = torch.as_tensor(m)
    density = float(mask.float().mean())
    run = runners(p, mask, q, k, v, g)
    # gradients first (also the warm-up: JIT compile, SDPA's first call)
    gs = grads(run["spatc"][0], q, k, v)
    gt = grads(run["sdpa"][0], q, k, v)
    errs = []
    for n, a, b in zip(("dq", "dk", "dv"), gs, gt):
        errs.append((n, float((a - b).abs().max() / b.abs().max())))
    ms = {(n, kind): [] for n in run for kind in ("fb", "b")}
    for _ in range(repeats):
        for n, (fb, b) in run.items():
            ms[(n, "fb")].append(fb() * 1e3)
            ms[(n, "b")].append(b() * 1e3)
    med = {key: statistics.median(t) for key, t in ms.items()}
    print("\n%s, density %.4f, B 1, H %d, L %d, D %d, fp32, 1 thread, "
          "median of %d interleaved rounds:" % (label, density, H, L, D,
                                                repeats))
    print("  %-14s %14s %14s" % ("", "fwd+bwd ms", "bwd only ms"))
    for n in run:
        print("  %-14s %14.1f %14.1f" % (n, med[(n, "fb")], med[(n, "b")]))
    print("  %-14s %13.2fx %13.2fx" % (
        "sdpa / spatc", med[("sdpa", "fb")] / med[("spatc", "fb")],
        med[("sdpa", "b")] / med[("spatc", "b")]))
    print("  grads, max |spatc - sdpa| / max |sdpa|: " +
          ", ".join("%s %.2g" % e for e in errs))
    bad = [e for e in errs if not e[1] < tol]
    for n, e in bad:
        print("FAIL: %s: %s relative error %.3g >= %g" % (label, n, e, tol),
              file=sys.stderr)
    return not bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--config", default="4096,8,64",
                    help="L,H,D")
    ap.add_argument("--longformer-w", type=int, default=512)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--tol", type=float, default=1e-3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not spatc.torch.has_backward():
        print("peers_backward: this libspat has no spat_kernel_backward",
              file=sys.stderr)
        return 1
    L, H, D = (int(x) for x in args.config.split(","))
    print("spatc (python) %s on %s, torch %s" % (
        spatc.version(), spatc.library_path, torch.__version__))
    lf = spatc.Pattern.from_file(os.path.join(ROOT, "patterns",
                                              "longformer.pat"),
                                 w=args.longformer_w)
    win = spatc.Pattern.from_string("pattern w = window(%d);" % args.window)
    ok = problem("longformer(w=%d, g=1)" % args.longformer_w, lf, L, H, D,
                 args.repeats, args.tol)
    ok &= problem("window(%d)" % args.window, win, L, H, D, args.repeats,
                  args.tol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
