"""bench/peers.py (make bench-peers, through bench/peers.sh): spatc beside
PyTorch on the same problem, measured in one run on this CPU.

In:  the spatc binary (build/spatc), torch importable by this python.
Out: per configuration, a table on stdout (and one JSON object per line with
     --json) with, for each of
       spatc   `spatc bench FILE --json` (JIT kernel; compile = JIT compile)
       sdpa    torch.nn.functional.scaled_dot_product_attention with a
               boolean [L, L] mask (True = attend)
       flex    torch.nn.attention.flex_attention.flex_attention compiled with
               torch.compile, with a BlockMask from create_block_mask
     the compile time (spatc: JIT compile, median of 5; sdpa: its first call,
     nothing to compile; flex: its first call, i.e. dynamo + inductor codegen
     + the C++ build, with a fresh inductor cache), the mask / block-mask
     build time (flex: median of 3 builds after a first one, reported apart),
     the median kernel time of --repeats runs, GFLOP/s on the allowed pairs
     (4 * nnz * D per head, summed over heads) and the ratio to spatc.
     Before timing, the outputs of the three are compared on the same q, k, v
     (spatc through `spatc run` and npy files): max |difference|.

A configuration is L, H, D and a window [i - left, i + right] (spatc
`window(left, right)`); the defaults are the two of docs/peers.md.  All runs
are single-threaded: torch.set_num_threads(1) and spatc --threads 1.
"""
import argparse
import ctypes
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
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
os.environ["TORCHINDUCTOR_CACHE_DIR"] = CACHE_DIR

# torch warns at import when numpy is absent; nothing here uses numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULT_CONFIGS = [
    # (L, H, D, left, right)
    (4096, 8, 64, 256, 256),
    (4096, 8, 128, 512, 0),
]


def now():
    return time.perf_counter()


def pattern_text(left, right):
    if left == right:
        return "pattern peers = window(%d);\n" % left
    return "pattern peers = window(%d, %d);\n" % (left, right)


def npy_write(path, t):
    """A float32 C-order tensor as a .npy file (no numpy needed)."""
    t = t.detach().to(torch.float32).contiguous()
    shape = "(" + ", ".join(str(s) for s in t.shape) + ("," if t.dim() == 1 else "") + ")"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
        f.write(header.encode("latin1"))
        f.write(ctypes.string_at(t.data_ptr(), t.numel() * 4))


def npy_read_f32(path, shape):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise RuntimeError("%s: not an npy file" % path)
    if data[6] == 1:
        hlen, off = struct.unpack("<H", data[8:10])[0], 10
    else:
        hlen, off = struct.unpack("<I", data[8:12])[0], 12
    header = data[off:off + hlen].decode("latin1")
    if "'<f4'" not in header:
        raise RuntimeError("%s: not float32: %s" % (path, header.strip()))
    body = bytearray(data[off + hlen:])
    return torch.frombuffer(body, dtype=torch.float32).reshape(shape)


def cpu_ms():
    """CPU time of this process and its finished children (the C++ compiler)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime) * 1e3


def timed(fn, repeats):
    """(first-call ms, its CPU ms, median ms of `repeats` further calls,
    last result)."""
    t0, c0 = now(), cpu_ms()
    out = fn()
    first, first_cpu = (now() - t0) * 1e3, cpu_ms() - c0
    times = []
    for _ in range(repeats):
        t0 = now()
        out = fn()
        times.append((now() - t0) * 1e3)
    return first, first_cpu, statistics.median(times), out


def run_spatc_bench(spatc, pat, L, H, D, repeats):
    cmd = [spatc, "bench", pat, "--len", str(L), "--heads", str(H), "--dim",
           str(D), "--threads", "1", "--repeats", str(repeats), "--no-dense",
           "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode,
                                                 r.stderr.strip()))
    return json.loads(r.stdout.strip().splitlines()[-1]), " ".join(cmd)


def spatc_output(spatc, pat, q, k, v, tmp):
    """o of spatc's JIT on exactly these q, k, v ([1, H, L, D])."""
    paths = {}
    for name, t in (("q", q), ("k", k), ("v", v)):
        paths[name] = os.path.join(tmp, name + ".npy")
        npy_write(paths[name], t)
    out = os.path.join(tmp, "o.npy")
    cmd = [spatc, "run", pat, "--q", paths["q"], "--k", paths["k"], "--v",
           paths["v"], "--backend", "jit", "--threads", "1", "-o", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode,
                                                 r.stderr.strip()))
    return npy_read_f32(out, tuple(q.shape))


def bench_config(args, L, H, D, left, right, tmp):
    torch.manual_seed(args.seed)
    pat = os.path.join(tmp, "peers.pat")
    with open(pat, "w") as f:
        f.write(pattern_text(left, right))
    q, k, v = (torch.randn(1, H, L, D, dtype=torch.float32) for _ in range(3))
    res = {"L": L, "H": H, "D": D, "window": [left, right],
           "pattern": pattern_text(left, right).strip(), "repeats": args.repeats}

    def build_mask():
        i = torch.arange(L).view(L, 1)
        j = torch.arange(L).view(1, L)
        return (j >= i - left) & (j <= i + right)

    t0 = now()
    mask = build_mask()
    mask_ms = (now() - t0) * 1e3
    nnz = int(mask.sum()) * H
    flop = 4.0 * nnz * D
    res["nnz"] = nnz
    res["density"] = nnz / (H * L * L)

    # Correctness on the same inputs before any timing.
    with torch.no_grad():
        o_sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    o_spatc = spatc_output(args.spatc, pat, q, k, v, tmp)
    res["max_err_spatc_vs_sdpa"] = float((o_spatc - o_sdpa).abs().max())

    # spatc: its own timing (JIT compile median of 5, kernel median).
    sp, cmd = run_spatc_bench(args.spatc, pat, L, H, D, args.repeats)
    if sp["nnz"] != nnz:
        raise RuntimeError("spatc counts %d allowed pairs, torch %d" % (sp["nnz"], nnz))
    res["spatc"] = {"first_ms": sp["compile_ms"], "mask_ms": None,
                    "kernel_ms": sp["kernel_ms"],
                    "gflops": flop / (sp["kernel_ms"] * 1e6),
                    "command": cmd.replace(pat, "FILE.pat")}

    # SDPA with a boolean mask (dense cost whatever the mask).
    with torch.no_grad():
        first, first_cpu, med, _ = timed(
            lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
            args.repeats)
    res["sdpa"] = {"first_ms": first, "first_cpu_ms": first_cpu,
                   "mask_ms": mask_ms, "kernel_ms": med, "gflops": flop / (med * 1e6)}

    # FlexAttention, compiled.
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
            first, first_cpu, med, o_flex = timed(
                lambda: flex(q, k, v, block_mask=bmask), args.repeats)
        res["flex"] = {"first_ms": first, "first_cpu_ms": first_cpu,
                       "mask_ms": statistics.median(bm_times[1:]),
                       "mask_first_ms": bm_times[0], "kernel_ms": med,
                       "gflops": flop / (med * 1e6),
                       "block_size": list(bmask.BLOCK_SIZE),
                       "block_sparsity_pct": float(bmask.sparsity())}
        res["max_err_flex_vs_sdpa"] = float((o_flex - o_sdpa).abs().max())
        res["max_err_spatc_vs_flex"] = float((o_spatc - o_flex).abs().max())
    except Exception as e:  # report, keep the SDPA numbers
        msg = "%s: %s" % (type(e).__name__, e)
        res["flex"] = {"error": msg[:4000]}
    for name in ("sdpa", "flex"):
        r = res[name]
        if "kernel_ms" in r:
            r["spatc_speedup"] = r["kernel_ms"] / res["spatc"]["kernel_ms"]
    return res


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_table(res):
    l, r = res["window"]
    print("L %d, H %d, D %d, window(%d, %d), density %.4f, nnz %d, fp32, 1 thread, "
          "median of %d" % (res["L"], res["H"], res["D"], l, r, res["density"],
                            res["nnz"], res["repeats"]))
    print("  %-6s %12s %10s %11s %9s %14s" % ("", "compile ms", "mask ms",
                                              "kernel ms", "GFLOP/s", "spatc faster"))
    for name in ("spatc", "sdpa", "flex"):
        x = res[name]
        if "error" in x:
            print("  %-6s failed: %s" % (name, x["error"].splitlines()[0][:200]))
            continue
        print("  %-6s %12s %10s %11.2f %9.2f %14s" % (
            name, fmt(x["first_ms"], ".0f"), fmt(x["mask_ms"], ".1f"),
            x["kernel_ms"], x["gflops"],
            fmt(x.get("spatc_speedup"), ".2f") + ("x" if "spatc_speedup" in x else "")))
    errs = ["%s %.2g" % (k[8:].replace("_", " "), v) for k, v in res.items()
            if k.startswith("max_err")]
    print("  max |o difference|: " + ", ".join(errs))
    fx = res["flex"]
    if "block_size" in fx:
        print("  flex: first call %.0f ms wall, %.0f ms CPU (with the C++ compiler); "
              "block mask %.0f ms on the first build; blocks %s, %.1f%% skipped" % (
                  fx["first_ms"], fx["first_cpu_ms"], fx["mask_first_ms"],
                  fx["block_size"], fx["block_sparsity_pct"]))
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spatc", default="build/spatc")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config", action="append", metavar="L,H,D,LEFT,RIGHT",
                    help="a configuration (repeatable; default: the two of docs/peers.md)")
    ap.add_argument("--json", action="store_true", help="also one JSON line per configuration")
    args = ap.parse_args()
    if args.repeats < 5:
        ap.error("--repeats must be at least 5")
    configs = DEFAULT_CONFIGS
    if args.config:
        configs = [tuple(int(x) for x in c.split(",")) for c in args.config]
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    print("torch %s, python %s, %s, torch threads %d\n" % (
        torch.__version__, sys.version.split()[0],
        torch.backends.cpu.get_cpu_capability(), torch.get_num_threads()))
    tmp = tempfile.mkdtemp(prefix="spatc-peers-")
    try:
        for c in configs:
            res = bench_config(args, *c, tmp)
            print_table(res)
            if args.json:
                print(json.dumps(res))
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(CACHE_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
