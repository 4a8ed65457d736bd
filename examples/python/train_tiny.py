"""examples/python/train_tiny.py: a tiny transformer trained on a synthetic
long-range task with three library patterns and dense attention, on the CPU
in a few minutes; writes a plot of loss against step and against wall time.

The task: a sequence of L tokens (L = 1024 by default) starts with a class
symbol (one of 8), then filler (a few other symbols at random); at every position of the second half the
model must output the class, which is at least L/2 positions back.  A
pattern whose rows reach position 0 in one hop (global tokens, a global
block) or in two (a stride that lands in the first window, then the
window) can learn it; a plain local window cannot.  The loss curves show
how fast, per step and per second of training.

    python examples/python/train_tiny.py                   # ~1 min (300 steps x 4 runs)
    python examples/python/train_tiny.py --steps 60 --out /tmp/t.png

Needs torch, numpy and matplotlib (pip install torch numpy matplotlib) and
the spatc package (make python PYTHON=...).  --impl spatc (the default when
libspat has spat_kernel_backward) runs spatc's kernels forward and
backward; --impl mask runs F.scaled_dot_product_attention with the
pattern's boolean mask from p.mask() (the same patterns at dense cost: the
only way to train while libspat has no backward, and a check of spatc's
numbers against PyTorch's).
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F

import spatc
import spatc.nn
import spatc.torch

HEADER = 8


def patterns(L):
    """name -> Pattern (None: dense causal attention through SDPA)."""
    return {
        "dense": None,
        "longformer w=128 g=1": spatc.Pattern.library("longformer", w=128,
                                                      g=1),
        "bigbird b=64": spatc.Pattern.library("bigbird", b=64, g=1, r=2),
        "strided l=32": spatc.Pattern.library("strided", l=32),
    }


def batch(B, L, V, gen):
    x = torch.randint(HEADER, V, (B, L), generator=gen)
    c = torch.randint(0, HEADER, (B,), generator=gen)
    x[:, 0] = c
    return x, c[:, None].expand(B, L - L // 2)


class Block(torch.nn.Module):
    def __init__(self, d, h, attend):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d),
                                       torch.nn.GELU(),
                                       torch.nn.Linear(4 * d, d))
        self.attend = attend

    def forward(self, x):
        B, L, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.h, d // self.h) \
            .permute(2, 0, 3, 1, 4)
        a = self.attend(q, k, v).transpose(1, 2).reshape(B, L, d)
        x = x + self.proj(a)
        return x + self.mlp(self.ln2(x))


class Model(torch.nn.Module):
    def __init__(self, V, L, d, h, layers, attend):
        super().__init__()
        self.emb = torch.nn.Embedding(V, d)
        self.pos = torch.nn.Parameter(torch.randn(L, d) * 0.02)
        self.blocks = torch.nn.ModuleList(Block(d, h, attend)
                                          for _ in range(layers))
        self.out = torch.nn.Linear(d, HEADER)

    def forward(self, x):
        z = self.emb(x) + self.pos
        for b in self.blocks:
            z = b(z)
        return self.out(z[:, z.shape[1] // 2:])


def attend_fn(p, impl, L, H, threads):
    if p is None:
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                              is_causal=True)
    if impl == "spatc":
        return spatc.nn.SparseAttention(p, threads=threads)
    mask = torch.as_tensor(p.mask(L, heads=H))
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                          attn_mask=mask)


def train(name, p, args):
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    attend = attend_fn(p, args.impl, args.seq, args.heads, args.threads)
    model = Model(args.vocab, args.seq, args.d, args.heads, args.layers,
                  attend)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    steps, secs, losses, t, ema = [], [], [], 0.0, None
    for step in range(1, args.steps + 1):
        x, y = batch(args.batch, args.seq, args.vocab, gen)
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        t += time.perf_counter() - t0
        # the curves are smoothed (EMA 0.9): a batch's loss is noisy
        ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
        steps.append(step), secs.append(t), losses.append(ema)
        if step % max(1, args.steps // 5) == 0 or step == args.steps:
            print("  %-26s step %4d  loss (EMA) %.3f  %6.1f s" % (
                name, step, ema, t), flush=True)
    return steps, secs, losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=10,
                    help="8 class symbols + filler symbols")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="spatc worker threads (default: all cores)")
    ap.add_argument("--impl", choices=["auto", "spatc", "mask"],
                    default="auto")
    ap.add_argument("--only", default=None,
                    help="comma-separated substrings of the runs to keep")
    ap.add_argument("--out", default="train_tiny.png")
    args = ap.parse_args()
    if args.impl == "auto":
        args.impl = "spatc" if spatc.torch.has_backward() else "mask"
        if args.impl == "mask":
            print("note: this libspat has no spat_kernel_backward, so the "
                  "patterns train through SDPA with their spatc masks "
                  "(--impl mask: same patterns, dense cost)")
    elif args.impl == "spatc" and not spatc.torch.has_backward():
        raise SystemExit("--impl spatc needs spat_kernel_backward in "
                         "libspat (%s); use --impl mask" % spatc.library_path)
    runs = {}
    for name, p in patterns(args.seq).items():
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        if p is not None:
            st = p.stats(args.seq, heads=1)
            name = "%s (%.0f%%)" % (name, 100 * st["density"])
        print("%s, impl %s" % (name, args.impl if p is not None else "sdpa"),
              flush=True)
        runs[name] = train(name, p, args)
    print("\n%-28s %10s %12s" % ("", "s / step", "final loss"))
    for name, (steps, secs, losses) in runs.items():
        print("%-28s %10.2f %12.3f" % (name, secs[-1] / len(steps),
                                       losses[-1]))
    plot(runs, args)


def plot(runs, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    chance = math.log(HEADER)
    for name, (steps, secs, losses) in runs.items():
        a.plot(steps, losses, label=name)
        b.plot(secs, losses, label=name)
    for ax, xl in ((a, "step"), (b, "training wall time (s)")):
        ax.axhline(chance, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(xl)
        ax.set_ylabel("cross-entropy (EMA 0.9)")
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle("tiny transformer, L = %d, %d layers, recall of token 0 "
                 "(attention: %s; dotted: chance)" % (
                     args.seq, args.layers, args.impl))
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
