"""spatc.pattern: a sparse attention pattern (spat_pattern) with its
compile-time parameters, and what can be asked of it without running
attention: its mask, counts, the compiler's explanation, pictures, and its
recall on given activations.

    p = spatc.Pattern.library("longformer", w=256)
    p.set(g=2)                      # parameters, checked now
    m = p.mask(64, heads=2)         # numpy bool [heads, Lq, Lk]
    p.stats(4096, heads=8)          # nnz, density, keys per row
    print(p.explain(4096))          # IR and tile plan
    p.save_png("longformer.png", 256)
    r = p.recall(q, k, v)           # mass kept vs dense attention
"""
import glob
import hashlib
import os
import threading

import numpy as np

from . import _capi as C
from . import _kernel as K
from . import png as _png

__all__ = ["Pattern", "patterns_in", "library_dirs", "MASK_MAX"]

# p.mask() returns at most this many entries (H * Lq * Lk); larger sizes are
# an error (use p.stats() for counts, which needs no dense mask).
MASK_MAX = 1 << 26

_HERE = os.path.dirname(os.path.abspath(__file__))

# key -> (spec, name, params) of every pattern made in this process, and the
# frozen patterns Pattern.by_key made from them.
_REGISTRY = {}
_LIVE = {}
_REGISTRY_LOCK = threading.Lock()


def library_dirs():
    """Where Pattern.library looks, in order: $SPATC_PATTERNS (':'-
    separated), the package's copy, the source tree's patterns/, and the
    installed share/spatc/patterns."""
    dirs = [d for d in os.environ.get("SPATC_PATTERNS", "").split(":") if d]
    dirs += [os.path.join(_HERE, "patterns"),
             os.path.join(os.path.dirname(os.path.dirname(_HERE)), "patterns"),
             "/usr/local/share/spatc/patterns", "/usr/share/spatc/patterns"]
    return [d for d in dirs if os.path.isdir(d)]


def _module(ctx, path=None, text=None, source_name=None):
    m = C.vp()
    if path is not None:
        rc = C.lib.spat_module_parse_file(ctx.ptr, os.fsencode(path),
                                          C.ctypes.byref(m))
    else:
        rc = C.lib.spat_module_parse_string(
            ctx.ptr, source_name.encode() if source_name else None,
            text.encode(), C.ctypes.byref(m))
    C.check(rc, ctx.ptr, "parsing %s" % (path or source_name or "<string>"))
    return m


def patterns_in(path=None, *, text=None):
    """The patterns a .pat file (or text) defines, in order, as
    (name, signature) pairs, e.g. ("longformer", "longformer(w = 512, g = 1)")."""
    ctx = C.Context()
    m = _module(ctx, path, text)
    try:
        out = []
        for i in range(C.lib.spat_module_n_patterns(m)):
            d = C.PatternDecl()
            C.check(C.lib.spat_module_pattern(m, i, C.ctypes.byref(d)),
                    ctx.ptr, "spat_module_pattern")
            out.append((C.text(d.name), C.text(d.signature)))
        return out
    finally:
        C.lib.spat_module_free(m)


class Pattern:
    """A checked pattern.  Make one with from_string, from_file or library;
    parameters are given as keyword arguments there or by set()."""

    def __init__(self, _spec, name=None, params=None):
        # _spec: ("text", text, source_name) or ("file", path, None)
        self._spec = _spec
        self._lock = threading.RLock()
        self._ctx = C.Context()
        kind, src, source_name = _spec
        m = _module(self._ctx, src if kind == "file" else None,
                    src if kind == "text" else None, source_name)
        try:
            params = dict(params or {})
            arr = (C.Param * max(len(params), 1))()
            names = [n.encode() for n in params]
            for i, (n, v) in enumerate(params.items()):
                arr[i].name = names[i]
                arr[i].value = K._int64(n, v)
            p = C.vp()
            C.check(C.lib.spat_module_select(
                m, name.encode() if name else None, arr, len(params),
                C.ctypes.byref(p)), self._ctx.ptr, "selecting a pattern")
        finally:
            C.lib.spat_module_free(m)
        self._ptr = p
        if kind == "file":
            with open(src, "rb") as f:
                ident = "file:%s:%s" % (os.path.abspath(src),
                                        hashlib.sha1(f.read()).hexdigest())
        else:
            ident = "text:%s:%s" % (source_name,
                                    hashlib.sha1(src.encode()).hexdigest())
        self._ident = (ident, self.name)
        self._refresh()

    # ---- making patterns ------------------------------------------------

    @classmethod
    def from_string(cls, text, name=None, *, source_name=None, **params):
        """Parses .pat text and selects the pattern `name` (default: the
        text's only or last one), with parameter values.  Imports resolve
        relative to source_name's directory.  PatternError on errors."""
        if not isinstance(text, str):
            raise TypeError("pattern text must be a str")
        return cls(("text", text, source_name), name, params)

    @classmethod
    def from_file(cls, path, name=None, **params):
        """Parses a .pat file (imports relative to it) and selects `name`."""
        path = os.fspath(path)
        return cls(("file", path, None), name, params)

    @classmethod
    def library(cls, name, pattern=None, **params):
        """A pattern of spatc's library (patterns/*.pat): `name` is a file
        (library("longformer")) or a pattern defined in one
        (library("document_bidir")); pattern selects within the file."""
        dirs = library_dirs()
        for d in dirs:
            f = os.path.join(d, name + ".pat")
            if os.path.isfile(f):
                return cls.from_file(f, pattern, **params)
        for d in dirs:
            for f in sorted(glob.glob(os.path.join(d, "*.pat"))):
                if any(n == name for n, _ in patterns_in(f)):
                    return cls.from_file(f, name, **params)
        raise ValueError("no library pattern %r (looked in %s); "
                         "spatc.Pattern.library_names() lists them"
                         % (name, ", ".join(dirs) or "no directory"))

    @staticmethod
    def library_names():
        """{file stem: [(pattern name, signature), ...]} of the library."""
        out = {}
        for d in library_dirs():
            for f in sorted(glob.glob(os.path.join(d, "*.pat"))):
                stem = os.path.basename(f)[:-4]
                if stem not in out:
                    out[stem] = patterns_in(f)
        return out

    def copy(self, **params):
        """A new pattern from the same source with these parameters changed."""
        p = dict(self.params, **params)
        return Pattern(self._spec, self.name, p)

    def __del__(self):
        if C.lib is not None and getattr(self, "_ptr", None):
            C.lib.spat_pattern_free(self._ptr)
            self._ptr = None

    # ---- parameters and signature --------------------------------------

    @property
    def name(self):
        return C.text(C.lib.spat_pattern_name(self._ptr))

    @property
    def params(self):
        """{name: value} of the compile-time parameters."""
        out = {}
        with self._lock:
            for i in range(C.lib.spat_pattern_n_params(self._ptr)):
                n, v = C.cp(), C.i64()
                C.check(C.lib.spat_pattern_param(self._ptr, i,
                                                 C.ctypes.byref(n),
                                                 C.ctypes.byref(v)),
                        self._ctx.ptr, "spat_pattern_param")
                out[C.text(n.value)] = int(v.value)
        return out

    def set(self, **params):
        """Sets compile-time parameters (as `-D w=1024`), checked now:
        PatternError for a value the pattern rejects (the old values stay),
        SpatError for a name it does not have.  Returns self."""
        with self._lock:
            old = self.params
            try:
                for n, v in params.items():
                    C.check(C.lib.spat_pattern_set_param(
                        self._ptr, n.encode(), K._int64(n, v)),
                        self._ctx.ptr, "parameter %r" % n)
                self._refresh()
            except Exception:
                for n, v in old.items():
                    C.lib.spat_pattern_set_param(self._ptr, n.encode(), v)
                self._refresh()
                raise
        return self

    def _refresh(self):
        # Computes, in plain Python attributes, what a call needs (so that
        # torch.compile traces attention without entering ctypes): the key
        # naming source, name and parameters, and the kernel arguments; and
        # registers the key (spatc.torch passes it to its ops).
        self._info = None
        params = self.params
        ps = ",".join("%s=%d" % kv for kv in sorted(params.items()))
        h = hashlib.sha1(repr(self._ident).encode()).hexdigest()[:16]
        key = "%s(%s)@%s" % (self.name, ps, h)
        self._plan = (key, self.info["args"])
        with _REGISTRY_LOCK:
            _REGISTRY.setdefault(key, (self._spec, self.name, params))

    @property
    def key(self):
        """A string naming this pattern and its parameters exactly (the
        kernel caches' key; spatc.torch's registry key, see by_key)."""
        return self._plan[0]

    @staticmethod
    def by_key(key):
        """The pattern a key names (a pattern made with the same source,
        name and parameters), for callers that pass patterns by key."""
        with _REGISTRY_LOCK:
            p = _LIVE.get(key)
            if p is not None:
                return p
            spec = _REGISTRY.get(key)
        if spec is None:
            raise KeyError("no spatc pattern was made with key %r in this "
                           "process" % key)
        p = Pattern(spec[0], spec[1], spec[2])
        with _REGISTRY_LOCK:
            return _LIVE.setdefault(key, p)

    @property
    def info(self):
        """{"args": (ArgSpec...), "externs": [(name, nargs)], "data_dependent"}"""
        with self._lock:
            if self._info is None:
                pi = C.PatternInfo()
                C.check(C.lib.spat_pattern_describe(self._ptr,
                                                    C.ctypes.byref(pi)),
                        self._ctx.ptr, "spat_pattern_describe")
                self._info = {
                    "args": K.arg_specs(pi.args, pi.n_args),
                    "externs": [(C.text(pi.externs[i].name),
                                 pi.externs[i].nargs)
                                for i in range(pi.n_externs)],
                    "data_dependent": bool(pi.data_dependent),
                    "top_left": bool(pi.top_left)}
            return self._info

    @property
    def args(self):
        """The kernel arguments: runtime scalars, then input arrays."""
        return self.info["args"]

    def __repr__(self):
        args = ", ".join(repr(a) for a in self.args)
        return "<spatc.Pattern %s%s>" % (self.key.split("@")[0],
                                         " [%s]" % args if args else "")

    def _compile(self, D, layout, backend, threads, cache, key, dtype=0):
        if self.info["externs"]:
            raise C.SpatError("pattern %s calls extern predicates (%s): "
                              "registering C functions from Python is not "
                              "supported" % (self.name, ", ".join(
                                  n for n, _ in self.info["externs"])))
        opts = C.CompileOptions(D, layout, threads, backend, int(cache),
                                dtype)
        k = C.vp()
        with self._lock:
            C.check(C.lib.spat_compile(self._ptr, C.ctypes.byref(opts),
                                       C.ctypes.byref(k)),
                    self._ctx.ptr, "spat_compile")
        return K.Kernel(k, self._ctx, key)

    def kernel(self, D, layout="bhld", backend="jit", threads=None):
        """The compiled kernel for head dimension D (cached)."""
        return K.get_kernel(self, D, layout, backend, threads)

    def __call__(self, q, k, v, **kw):
        """spatc.attention(q, k, v, self, **kw)."""
        from .attention import attention
        return attention(q, k, v, self, **kw)

    # ---- masks ----------------------------------------------------------

    def _mask_setup(self, lq, lk, heads, q, k, layout, runtime, inputs):
        from .attention import as_f32, input_arrays
        if q is not None or k is not None:
            if q is None or k is None:
                raise ValueError("give both q and k, or neither")
            q, k = as_f32("q", q), as_f32("k", k)
            B, heads, Hkv, lq, lk, D = K.dims(q.shape, k.shape, k.shape,
                                              layout)
        else:
            if self.info["data_dependent"]:
                raise ValueError("pattern %s is data-dependent (topk): its "
                                 "mask needs q and k (q=..., k=...)"
                                 % self.name)
            lk = lq if lk is None else lk
            B, Hkv, D = 1, heads, 1
        for n, x in (("lq", lq), ("lk", lk), ("heads", heads)):
            if not isinstance(x, (int, np.integer)) or x < 0:
                raise ValueError("%s must be an integer >= 0, not %r" % (n, x))
        kern = K.get_kernel(self, D, layout, "interp", 1)
        scalars, ins = K.order_args(kern.args, runtime, inputs)
        arrays = input_arrays(ins, (B, heads, Hkv, lq, lk, D))
        vals, n = kern.values(scalars, [a.ctypes.data for a in arrays])
        t = C.Tensors(B, heads, Hkv, lq, lk,
                      q.ctypes.data if q is not None else None,
                      k.ctypes.data if k is not None else None,
                      None, None, None, 0.0)
        return kern, t, (vals, n, arrays, q, k), B, int(heads), int(lq), int(lk)

    def mask(self, lq, lk=None, heads=1, *, batch=0, runtime=None,
             inputs=None, q=None, k=None, layout="bhld"):
        """The mask as a numpy bool array [heads, lq, lk] (True: query row
        may see the key), by the reference interpreter.  lk defaults to lq.
        With q and k (needed by data-dependent, topk, patterns) the sizes
        come from them and `batch` picks the batch.  At most MASK_MAX
        entries."""
        kern, t, keep, B, H, lq, lk = self._mask_setup(
            lq, lk, heads, q, k, layout, runtime, inputs)
        if H * lq * lk > MASK_MAX:
            raise ValueError("a mask of %d x %d x %d entries is larger than "
                             "spatc.pattern.MASK_MAX (%d): use a smaller size, "
                             "or p.stats() for the counts"
                             % (H, lq, lk, MASK_MAX))
        if not 0 <= batch < max(B, 1):
            raise ValueError("batch %d out of range [0, %d)" % (batch, B))
        out = np.zeros((H, lq, lk), dtype=np.uint8)
        for h in range(H):
            C.check(C.lib.spat_kernel_mask(kern.ptr, C.ctypes.byref(t),
                                           keep[0], keep[1], batch, h, 0, lq,
                                           out[h].ctypes.data),
                    kern.ctx.ptr, "spat_kernel_mask")
        return out.view(np.bool_)

    def counts(self, lq, lk=None, heads=1, *, batch=0, runtime=None,
               inputs=None, q=None, k=None, layout="bhld"):
        """The keys each query row may see: int64 [heads, lq]."""
        kern, t, keep, B, H, lq, lk = self._mask_setup(
            lq, lk, heads, q, k, layout, runtime, inputs)
        if not 0 <= batch < max(B, 1):
            raise ValueError("batch %d out of range [0, %d)" % (batch, B))
        out = np.zeros((H, lq), dtype=np.int64)
        for h in range(H):
            C.check(C.lib.spat_kernel_mask_count(
                kern.ptr, C.ctypes.byref(t), keep[0], keep[1], batch, h, 0,
                lq, out[h].ctypes.data), kern.ctx.ptr,
                "spat_kernel_mask_count")
        return out

    def stats(self, lq, lk=None, heads=1, *, D=None, **kw):
        """Counts summarised: {"nnz", "density", "per_head" (nnz per head),
        "keys_per_row" {min, max, mean}, "empty_rows", and with D "flops"
        (4 * nnz * D, what the attention costs)}."""
        c = self.counts(lq, lk, heads, **kw)
        H, lq = c.shape
        lk = kw["k"].shape[2 if kw.get("layout", "bhld") == "bhld" else 1] \
            if kw.get("k") is not None else (lq if lk is None else lk)
        nnz = int(c.sum())
        s = {"nnz": nnz, "H": H, "Lq": lq, "Lk": lk,
             "density": nnz / (H * lq * lk) if H * lq * lk else 0.0,
             "per_head": [int(x) for x in c.sum(axis=1)],
             "keys_per_row": {"min": int(c.min()) if c.size else 0,
                              "max": int(c.max()) if c.size else 0,
                              "mean": float(c.mean()) if c.size else 0.0},
             "empty_rows": int((c == 0).sum())}
        if D is not None:
            s["flops"] = 4 * nnz * int(D)
        return s

    def explain(self, lq, lk=None, heads=1, *, bq=64, bk=64, runtime=None):
        """The compiler's explanation (`spatc explain`): IR, tile plan and,
        for these sizes, the key tiles each query tile visits."""
        lk = lq if lk is None else lk
        scalars, _ = K.order_args([a for a in self.args if a.kind == "scalar"],
                                  runtime, None)
        rt = (C.i64 * max(len(scalars), 1))(*scalars)
        o = C.ExplainOptions(heads, lq, lk, bq, bk)
        out = C.vp()
        with self._lock:
            C.check(C.lib.spat_pattern_explain(self._ptr, C.ctypes.byref(o),
                                               rt, len(scalars),
                                               C.ctypes.byref(out)),
                    self._ctx.ptr, "spat_pattern_explain")
        try:
            return C.text(C.ctypes.string_at(out.value))
        finally:
            C.free_c(out)

    # ---- pictures -------------------------------------------------------

    def image(self, lq, lk=None, heads=1, *, diff=None, max_px=1024, **kw):
        """The mask as an RGB uint8 image (heads side by side, separated):
        allowed pairs dark; with diff=other pattern, pairs only self has in
        red, only other has in blue, both in dark grey."""
        a = self.mask(lq, lk, heads, **kw)
        b = diff.mask(lq, lk, heads, **kw) if diff is not None else None
        return _png.render(a, b, max_px)

    def save_png(self, path, lq, lk=None, heads=1, *, diff=None, max_px=1024,
                 **kw):
        """Writes the picture of image() as a PNG file (zlib, no other
        dependency).  Returns path."""
        _png.write(path, self.image(lq, lk, heads, diff=diff, max_px=max_px,
                                    **kw))
        return path

    def show(self, lq, lk=None, heads=1, *, diff=None, **kw):
        """Shows the mask with matplotlib (a figure per call; returns it)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("p.show() needs matplotlib (pip install "
                              "matplotlib); p.save_png(path, ...) needs "
                              "nothing") from e
        img = self.image(lq, lk, heads, diff=diff, max_px=4096, **kw)
        fig, ax = plt.subplots(figsize=(min(12, 3 * heads + 1), 4))
        ax.imshow(img, interpolation="nearest")
        lkv = lq if lk is None else lk
        ax.set_title("%s  (%d heads, Lq %d, Lk %d)%s" % (
            self.key.split("@")[0], heads, lq, lkv,
            "  vs %s" % diff.key.split("@")[0] if diff is not None else ""))
        ax.set_xlabel("key j (heads side by side)")
        ax.set_ylabel("query row")
        plt.show()
        return fig

    # ---- recall on activations -----------------------------------------

    def recall(self, q, k, v=None, *, reference="full", runtime=None,
               inputs=None, layout="bhld", scale=None, threads=None,
               backend="jit"):
        """How much of the reference attention's softmax mass each query row
        keeps under this pattern: exp(lse_pattern - lse_reference), from two
        fused kernel calls (no dense matrix).  reference is "full" (dense),
        "causal", or a Pattern.  Returns a dict: "recall" [B, H, Lq] and
        per head "min", "median", "mean" ([H] arrays) and overall "summary";
        with v also "error" [H]: ||o_pattern - o_ref|| / ||o_ref|| per head."""
        from .attention import attention
        ref = _reference(reference)
        need_v = v is not None
        vv = v if need_v else k
        kw = dict(layout=layout, scale=scale, threads=threads,
                  backend=backend, return_lse=True)
        o_p, lse_p = attention(q, k, vv, self, runtime=runtime,
                               inputs=inputs, **kw)
        o_r, lse_r = attention(q, k, vv, ref, **kw)
        with np.errstate(invalid="ignore", over="ignore"):
            d = lse_p.astype(np.float64) - lse_r.astype(np.float64)
            r = np.where(np.isneginf(lse_p), 0.0, np.exp(np.minimum(d, 0.0)))
        flat = r.transpose(1, 0, 2).reshape(r.shape[1], -1)
        out = {"recall": r,
               "min": flat.min(axis=1) if flat.size else flat.sum(axis=1),
               "median": np.median(flat, axis=1) if flat.size else
               flat.sum(axis=1),
               "mean": flat.mean(axis=1) if flat.size else flat.sum(axis=1),
               "summary": {"min": float(r.min()) if r.size else 1.0,
                           "median": float(np.median(r)) if r.size else 1.0,
                           "mean": float(r.mean()) if r.size else 1.0}}
        if need_v:
            ax = (0, 2, 3) if layout == "bhld" else (0, 1, 3)
            num = np.sqrt(((o_p.astype(np.float64) - o_r) ** 2).sum(axis=ax))
            den = np.sqrt((o_r.astype(np.float64) ** 2).sum(axis=ax))
            out["error"] = num / np.maximum(den, 1e-30)
        return out


_REFS = {}


def _reference(ref):
    if isinstance(ref, Pattern):
        return ref
    if ref not in ("full", "causal"):
        raise ValueError("reference must be 'full', 'causal' or a Pattern, "
                         "not %r" % (ref,))
    if ref not in _REFS:
        _REFS[ref] = Pattern.from_string("pattern %s_ref = %s;\n" % (ref, ref),
                                         source_name="<%s>" % ref)
    return _REFS[ref]
