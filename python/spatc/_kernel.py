"""spatc._kernel: compiled kernels, their in-memory LRU cache, and the
checks shared by the numpy and torch layers (shapes, layouts, GQA,
runtime scalars and inputs).

A kernel is compiled once per (pattern source, pattern name, parameters,
D, layout, dtype, backend, threads) and kept in an LRU dict of
MAX_KERNELS entries; JIT kernels also go through libspat's disk cache
(spat_compile_options.cache) unless SPATC_DISK_CACHE=0.
"""
import collections
import ctypes
import os
import struct
import threading

from . import _capi as C

MAX_KERNELS = 64
# The call path packs spat_tensors with struct into a per-thread buffer
# (faster than building a ctypes.Structure per call).
_TFMT = "@5q5PfP"   # B H Hkv Lq Lk, q k v o lse, scale, paged
assert struct.calcsize(_TFMT) == ctypes.sizeof(C.Tensors)
_TSIZE = ctypes.sizeof(C.Tensors)
_pack = struct.Struct(_TFMT).pack_into
_call = C.lib.spat_kernel_call
_call.argtypes = [C.vp, C.vp, C.vp, C.sz]
_tls = threading.local()
_cache = collections.OrderedDict()
_cache_lock = threading.Lock()
_stats = {"hits": 0, "compiles": 0}


def disk_cache_enabled():
    return os.environ.get("SPATC_DISK_CACHE", "1") not in ("0", "", "no")


class ArgSpec:
    """One kernel argument: a `runtime` scalar ("scalar"), an int input
    array ("input", int32) or a float input array ("finput", float32, the
    language's version 2)."""
    __slots__ = ("name", "kind", "has_default", "default", "n_dims", "_info")

    def __init__(self, info):
        self.name = C.text(info.name)
        self.kind = {C.KIND_SCALAR: "scalar", C.KIND_INPUT: "input",
                     C.KIND_FLOAT_INPUT: "finput"}.get(info.kind, "?")
        self.has_default = bool(info.has_default)
        self.default = int(info.default_value) if self.has_default else None
        self.n_dims = int(info.n_dims) if self.kind != "scalar" else 0
        self._info = info   # a view of the C struct (lives with its owner)

    def shape(self, d):
        """The input's shape for a run's sizes d = (B, H, Hkv, Lq, Lk, D)."""
        out = (C.i64 * C.MAX_DIMS)()
        n = C.lib.spat_arg_shape(ctypes.byref(self._info), d[0], d[1],
                                 d[2] or d[1], d[3], d[4], d[5], out)
        if n < 0:
            raise ValueError("input %r has no valid shape for B %d, H %d, "
                             "Hkv %d, Lq %d, Lk %d, D %d" % ((self.name,) +
                                                             tuple(d)))
        return tuple(out[i] for i in range(n))

    def __repr__(self):
        if self.kind != "scalar":
            return "input %s: %s[%d dims]" % (
                self.name, "float" if self.kind == "finput" else "int",
                self.n_dims)
        d = " = %d" % self.default if self.has_default else ""
        return "runtime %s%s" % (self.name, d)


def arg_specs(ptr, n):
    return tuple(ArgSpec(ptr[i]) for i in range(n))


class Kernel:
    """A compiled spat_kernel (freed with the object) and its signature."""

    def __init__(self, ptr, ctx, key):
        self.ptr = ptr
        self.ctx = ctx  # the Context whose spat_ctx holds its messages
        self.key = key
        sig = C.lib.spat_kernel_signature(ptr).contents
        self.D = int(sig.D)
        self.layout = int(sig.layout)
        self.backend = int(sig.backend)
        self.args = arg_specs(sig.args, sig.n_args)
        self.n_scalars = sum(a.kind == "scalar" for a in self.args)
        self.from_cache = bool(sig.from_cache)
        self.cache_problem = C.text(sig.cache_problem) or None
        self.entry_type = C.text(sig.entry_type)

    def __del__(self):
        if C.lib is not None and getattr(self, "ptr", None):
            C.lib.spat_kernel_free(self.ptr)
            self.ptr = None

    def values(self, scalars, input_ptrs):
        """The spat_value array for ordered scalars and input pointers."""
        n = len(self.args)
        if not n:
            return None, 0
        vals = (C.Value * max(n, 1))()
        si = ii = 0
        for i, a in enumerate(self.args):
            if a.kind == "scalar":
                vals[i].kind = C.KIND_SCALAR
                vals[i].scalar = scalars[si]
                si += 1
            elif a.kind == "input":
                vals[i].kind = C.KIND_INPUT
                vals[i].input = input_ptrs[ii]
                ii += 1
            else:
                vals[i].kind = C.KIND_FLOAT_INPUT
                vals[i].finput = input_ptrs[ii]
                ii += 1
        return vals, n

    def tensors(self, dims, q, k, v, o, lse, scale):
        B, H, Hkv, Lq, Lk, _ = dims
        return C.Tensors(B, H, Hkv, Lq, Lk, q, k, v, o, lse,
                         0.0 if scale is None else float(scale))

    def call(self, dims, q, k, v, o, lse, scale, scalars, input_ptrs,
             paged=None):
        """o (and lse when not None) = attention; pointers are ints;
        paged: None, or a C.PagedKV (k and v are then its pools, dims'
        Lk 0), kept alive by the caller for the call."""
        try:
            buf = _tls.buf
        except AttributeError:
            buf = _tls.buf = ctypes.create_string_buffer(_TSIZE)
        _pack(buf, 0, dims[0], dims[1], dims[2], dims[3], dims[4], q, k, v,
              o, lse or 0, 0.0 if scale is None else scale,
              ctypes.addressof(paged) if paged is not None else 0)
        vals, n = self.values(scalars, input_ptrs)
        rc = _call(self.ptr, buf, vals, n)
        if rc:
            C.check(rc, self.ctx.ptr, "spat_kernel_call")

    def backward(self, dims, ptrs, grads, scale, scalars, input_ptrs,
                 dinputs=None):
        """dq, dk, dv from dout (and dlse) by spat_kernel_backward; dinputs:
        None, or one pointer per float input (its gradient, written)."""
        if not C.HAS_BACKWARD:
            raise NotImplementedError(
                "spatc: this libspat (%s) has no spat_kernel_backward: the "
                "backward pass is not available yet, so spatc attention "
                "cannot be differentiated (no gradient is faked)."
                % C.library_path)
        t = self.tensors(dims, *ptrs, scale)
        dptrs = (C.vp * len(dinputs))(*dinputs) if dinputs else None
        g = C.Grads(*grads, ctypes.cast(dptrs, C.vp) if dptrs else None)
        vals, n = self.values(scalars, input_ptrs)
        C.check(C.lib.spat_kernel_backward(self.ptr, ctypes.byref(t),
                                           ctypes.byref(g), vals, n),
                self.ctx.ptr, "spat_kernel_backward")


def get_kernel(pattern, D, layout="bhld", backend="jit", threads=None,
               dtype="float32"):
    """The kernel of pattern (a Pattern with its current parameters, or a
    Pattern.key) for head dimension D and element type dtype (a C.DTYPES
    name), from the in-memory cache or compiled now."""
    threads = 0 if threads is None else threads
    key = (pattern if type(pattern) is str else pattern._plan[0], D, layout,
           backend, threads, dtype)
    k = _cache.get(key)          # a hit takes no lock (dict ops are atomic)
    if k is not None:
        try:
            _cache.move_to_end(key)
        except KeyError:         # evicted meanwhile by another thread
            pass
        _stats["hits"] += 1
        return k
    if layout not in C.LAYOUTS:
        raise ValueError("layout must be 'bhld' or 'blhd', not %r" % (layout,))
    if backend not in C.BACKENDS:
        raise ValueError("backend must be 'jit' or 'interp', not %r"
                         % (backend,))
    threads = int(threads)
    if threads < 0:
        raise ValueError("threads must be >= 0 (0: all cores), not %d"
                         % threads)
    D = int(D)
    if D < 1:
        raise ValueError("head dimension D must be >= 1, not %d" % D)
    if isinstance(pattern, str):
        from .pattern import Pattern
        pattern = Pattern.by_key(pattern)
    k = pattern._compile(D, C.LAYOUTS[layout], C.BACKENDS[backend], threads,
                         backend == "jit" and disk_cache_enabled(), key,
                         C.DTYPES[dtype])
    with _cache_lock:
        _stats["compiles"] += 1
        _cache[key] = k
        _cache.move_to_end(key)
        while len(_cache) > MAX_KERNELS:
            _cache.popitem(last=False)
    return k


def clear_cache():
    """Empties the in-memory kernel cache (the disk cache stays)."""
    with _cache_lock:
        _cache.clear()


def cache_info():
    """{"kernels": in memory, "hits": ..., "compiles": ...}."""
    with _cache_lock:
        return dict(_stats, kernels=len(_cache), max=MAX_KERNELS)


_LAYOUT_NAMES = {"bhld": "[B, H, L, D]", "blhd": "[B, L, H, D]"}


def dims(qs, ks, vs, layout):
    """(B, H, Hkv, Lq, Lk, D) from the shapes of q, k, v, with the errors a
    user should see (rank, layout, batch, head dimension, GQA ratio)."""
    names = _LAYOUT_NAMES
    if len(qs) == 4 and len(ks) == 4 and len(vs) == 4 and ks == vs:
        if layout == "bhld":
            B, H, Lq, D = qs
            Bk, Hkv, Lk, Dk = ks
        elif layout == "blhd":
            B, Lq, H, D = qs
            Bk, Lk, Hkv, Dk = ks
        else:
            B = Bk = None
        if B is not None and B == Bk and D == Dk and D >= 1 and Hkv and H % Hkv == 0:
            return B, H, Hkv, Lq, Lk, D
    if layout not in names:
        raise ValueError("layout must be 'bhld' or 'blhd', not %r" % (layout,))
    for n, s in (("q", qs), ("k", ks), ("v", vs)):
        if len(s) != 4:
            raise ValueError("%s must have 4 dimensions %s for layout %r, "
                             "got shape %s" % (n, names[layout], layout,
                                               tuple(s)))
    if layout == "bhld":
        (B, H, Lq, D), (Bk, Hkv, Lk, Dk), (Bv, Hv, Lv, Dv) = qs, ks, vs
    else:
        (B, Lq, H, D), (Bk, Lk, Hkv, Dk), (Bv, Lv, Hv, Dv) = qs, ks, vs
    if not (B == Bk == Bv):
        raise ValueError("batch sizes differ: q %d, k %d, v %d" % (B, Bk, Bv))
    if (Hkv, Lk) != (Hv, Lv):
        raise ValueError("k and v must have the same shape, got %s and %s "
                         "(layout %r)" % (tuple(ks), tuple(vs), layout))
    if not (D == Dk == Dv):
        raise ValueError("head dimensions differ: q %d, k %d, v %d (layout "
                         "%r, D is the last axis)" % (D, Dk, Dv, layout))
    if D < 1:
        raise ValueError("head dimension must be >= 1")
    if Hkv == 0 and H != 0 or Hkv and H % Hkv:
        raise ValueError("grouped-query attention needs the query heads a "
                         "multiple of the key/value heads: H = %d, Hkv = %d "
                         "(layout %r)" % (H, Hkv, layout))
    return B, H, Hkv, Lq, Lk, D


def order_args(specs, runtime, inputs):
    """(scalars in order, [(ArgSpec, value)] of the inputs in order) from the user's
    runtime and inputs mappings, checked against the pattern's arguments."""
    runtime = dict(runtime or {})
    inputs = dict(inputs or {})
    known = {a.name: a for a in specs}
    for n in runtime:
        if n not in known or known[n].kind != "scalar":
            raise ValueError(_unknown(n, "runtime scalar", specs, "scalar"))
    for n in inputs:
        if n not in known or known[n].kind == "scalar":
            raise ValueError(_unknown(n, "input", specs, "input"))
    scalars, ins = [], []
    for a in specs:
        if a.kind == "scalar":
            if a.name in runtime:
                scalars.append(_int64(a.name, runtime[a.name]))
            elif a.has_default:
                scalars.append(a.default)
            else:
                raise ValueError("the pattern's runtime scalar %r has no "
                                 "default: pass runtime={%r: ...}"
                                 % (a.name, a.name))
        else:
            if a.name not in inputs:
                raise ValueError("the pattern needs its input %r: pass "
                                 "inputs={%r: an array of %s}"
                                 % (a.name, a.name,
                                    "floats" if a.kind == "finput" else
                                    "integers (Lk of them for int[])"))
            ins.append((a, inputs[a.name]))
    return scalars, ins


def _unknown(n, what, specs, kind):
    have = [a.name for a in specs if (a.kind == "scalar") == (kind ==
                                                              "scalar")]
    return "the pattern has no %s %r (its %ss: %s)" % (
        what, n, what, ", ".join(have) if have else "none")


def _int64(name, x):
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        raise TypeError("runtime scalar %r must be an integer, not %r"
                        % (name, type(x).__name__))
    x = x.__index__()
    if not -2**63 <= x < 2**63:
        raise ValueError("runtime scalar %r = %d does not fit in int64"
                         % (name, x))
    return x
