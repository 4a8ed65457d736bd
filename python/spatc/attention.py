"""spatc.attention: sparse attention on numpy arrays (float32, float16,
or bfloat16 as a uint16 view), dense or on a paged KV cache.

    o = spatc.attention(q, k, v, pattern)                  # [B, H, L, D]
    o, lse = spatc.attention(q, k, v, p, layout="blhd", return_lse=True,
                             runtime={"n": 4}, inputs={"doc": doc_ids})
    o = spatc.attention(q, k_pool, v_pool, p, block_table=bt, seq_lens=n)

Zero-copy: q, k, v are read where they are (C-contiguous arrays of one
supported dtype are required; anything else is an error that says what to
do, never a silent copy) and o (and lse) are written into new arrays, or
into out=.
"""
import ctypes

import numpy as np

from . import _capi as C
from . import _kernel as K
from .pattern import Pattern

_F32 = np.dtype(np.float32)
_from_buffer = ctypes.c_byte.from_buffer
_addressof = ctypes.addressof


def addr(a):
    """The address of a C-contiguous array's data (the buffer protocol is
    several times faster than a.ctypes.data, which stays the fallback for
    read-only and empty arrays)."""
    try:
        return _addressof(_from_buffer(a))
    except (TypeError, ValueError):
        return a.ctypes.data

__all__ = ["attention", "pattern_of", "to_bfloat16", "from_bfloat16"]

# numpy dtype -> spat_dtype name.  numpy has no bfloat16: bf16 tensors are
# uint16 arrays of bit patterns (the high half of a float32, the .npy
# convention of spatc's CLI), or ml_dtypes' bfloat16 when it is used.
_I32 = np.dtype(np.int32)
_DT = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16",
       np.dtype(np.uint16): "bfloat16"}

_BY_TEXT = {}


def pattern_of(pattern):
    """A Pattern from a Pattern, a library name ("longformer") or .pat text
    (the text's last pattern); text and names are parsed once."""
    if isinstance(pattern, Pattern):
        return pattern
    if not isinstance(pattern, str):
        raise TypeError("pattern must be a spatc.Pattern, a library name or "
                        ".pat text, not %s" % type(pattern).__name__)
    p = _BY_TEXT.get(pattern)
    if p is None:
        if pattern.isidentifier():
            p = Pattern.library(pattern)
        else:
            p = Pattern.from_string(pattern)
        _BY_TEXT[pattern] = p
    return p


def as_f32(name, a):
    """a itself when it is a C-contiguous float32 ndarray, else TypeError /
    ValueError saying what is wrong."""
    if type(a) is np.ndarray and a.dtype is _F32 and a.flags.c_contiguous:
        return a
    if not isinstance(a, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray of float32, not %s (for "
                        "torch tensors use spatc.torch.attention)"
                        % (name, type(a).__name__))
    if a.dtype != np.float32:
        raise TypeError("%s has dtype %s; spatc.attention needs float32 "
                        "(%s.astype(numpy.float32))" % (name, a.dtype, name))
    if not a.flags.c_contiguous:
        raise ValueError("%s is not C-contiguous (strides %s): spatc reads "
                         "arrays in place; pass numpy.ascontiguousarray(%s)"
                         % (name, a.strides, name))
    return a


def dtype_name(name, a):
    """The spat dtype name of array a: float32, float16, or bfloat16 for
    uint16 (bit patterns) and ml_dtypes.bfloat16; else TypeError."""
    if not isinstance(a, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray, not %s (for torch "
                        "tensors use spatc.torch.attention)"
                        % (name, type(a).__name__))
    dt = _DT.get(a.dtype)
    if dt is None and a.dtype.name == "bfloat16" and a.dtype.itemsize == 2:
        dt = "bfloat16"
    if dt is None:
        raise TypeError("%s has dtype %s; spatc.attention takes float32, "
                        "float16, or bfloat16 as uint16 bit patterns "
                        "(spatc.to_bfloat16(%s))" % (name, a.dtype, name))
    return dt


def as_tensor(name, a, dt):
    """a itself when it is a C-contiguous array of dtype name dt (that of
    q), else TypeError / ValueError saying what is wrong."""
    if dtype_name(name, a) != dt:
        raise TypeError("%s has dtype %s and q %s: q, k and v need one "
                        "dtype" % (name, a.dtype, dt))
    if not a.flags.c_contiguous:
        raise ValueError("%s is not C-contiguous (strides %s): spatc reads "
                         "arrays in place; pass numpy.ascontiguousarray(%s)"
                         % (name, a.strides, name))
    return a


def to_bfloat16(x):
    """float32 (or anything numpy converts to it) -> uint16 bfloat16 bit
    patterns, rounded to nearest even (libspat's spat_convert)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, np.uint16)
    if x.size and C.lib.spat_convert(addr(x), 0, addr(out), 1, x.size):
        raise C.SpatError("spat_convert failed")
    return out


def from_bfloat16(u):
    """uint16 bfloat16 bit patterns -> float32 (exact)."""
    u = np.asarray(u)
    if u.dtype != np.uint16 and u.dtype.name != "bfloat16":
        raise TypeError("from_bfloat16 takes uint16 bit patterns, not %s"
                        % u.dtype)
    return (np.ascontiguousarray(u).view(np.uint16).astype(np.uint32)
            << 16).view(np.float32)


def _int32_table(name, x):
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError("%s must hold integers, not %s" % (name, x.dtype))
    if x.size and (x.min() < -2**31 or x.max() >= 2**31):
        raise ValueError("%s has values outside int32" % name)
    if x.dtype is not _I32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.int32)
    return x


def paged_dims(q, k, v, block_table, seq_lens, layout):
    """(dims, C.PagedKV, the int32 tables kept alive) of a paged call: q
    [B, H, Lq, D] (or blhd), k and v pools [n_pages, page_size, Hkv, D],
    block_table [B, max_pages], seq_lens [B]; the pools' checks per page
    are libspat's."""
    if seq_lens is None or block_table is None:
        raise ValueError("a paged KV cache needs both block_table and "
                         "seq_lens")
    if q.ndim != 4 or k.ndim != 4 or k.shape != v.shape:
        raise ValueError("paged: q must have 4 dimensions and k, v be pools "
                         "[n_pages, page_size, Hkv, D] of one shape, got q "
                         "%s, k %s, v %s" % (q.shape, k.shape, v.shape))
    if layout == "bhld":
        B, H, Lq, D = q.shape
    elif layout == "blhd":
        B, Lq, H, D = q.shape
    else:
        raise ValueError("layout must be 'bhld' or 'blhd', not %r" % (layout,))
    n_pages, page_size, Hkv, Dk = k.shape
    if Dk != D:
        raise ValueError("head dimensions differ: q %d, pools %d" % (D, Dk))
    if Hkv == 0 and H or Hkv and H % Hkv:
        raise ValueError("grouped-query attention needs the query heads a "
                         "multiple of the pools' KV heads: H = %d, Hkv = %d"
                         % (H, Hkv))
    bt = _int32_table("block_table", block_table)
    sl = _int32_table("seq_lens", seq_lens)
    if bt.ndim != 2 or bt.shape[0] != B or sl.shape != (B,):
        raise ValueError("block_table must be [B, max_pages] and seq_lens "
                         "[B] with B = %d (q's batch), got %s and %s"
                         % (B, bt.shape, sl.shape))
    pg = C.PagedKV(addr(bt) if bt.size else None,
                   addr(sl) if sl.size else None, n_pages, page_size,
                   bt.shape[1])
    return (B, H, Hkv, Lq, 0, D), pg, (bt, sl)


def input_arrays(ins, d):
    """The C-contiguous arrays of ordered (ArgSpec, value) inputs for a
    run's sizes d: int inputs as int32, float inputs as float32, each of
    the shape the pattern declares (an `int[]` has Lk entries)."""
    out = []
    for a, x in ins:
        shape = a.shape(d)
        x = np.asarray(x)
        if x.shape != shape:
            raise ValueError("input %r must have shape %s (%s), got %s"
                             % (a.name, shape, "Lk = %d" % d[4]
                                if shape == (d[4],) else "its declaration",
                                x.shape))
        if a.kind == "finput":
            if x.dtype.kind not in "fiu":
                raise TypeError("input %r must hold numbers, not %s"
                                % (a.name, x.dtype))
            out.append(np.ascontiguousarray(x, dtype=np.float32))
            continue
        if x.dtype != np.int32:
            if x.dtype.kind not in "iub":
                raise TypeError("input %r must hold integers, not %s"
                                % (a.name, x.dtype))
            if x.size and (x.min() < -2**31 or x.max() >= 2**31):
                raise ValueError("input %r has values outside int32"
                                 % a.name)
        out.append(np.ascontiguousarray(x, dtype=np.int32))
    return out


def attention(q, k, v, pattern, *, inputs=None, runtime=None, scale=None,
              layout="bhld", return_lse=False, threads=None, backend="jit",
              out=None, block_table=None, seq_lens=None):
    """o = softmax(scale * q k^T restricted to the pattern's mask) v.

    q [B, H, Lq, D], k and v [B, Hkv, Lk, D] for layout "bhld" (or
    [B, L, H, D] for "blhd"), C-contiguous, all float32, all float16, or
    all bfloat16 as uint16 bit patterns (spatc.to_bfloat16; o has q's
    dtype, lse is float32); H a multiple of Hkv (grouped-query attention).
    pattern: a spatc.Pattern, a library name or .pat text.  runtime:
    {name: int} for the pattern's `runtime` scalars (defaults apply);
    inputs: {name: int array of Lk} for its `input` arrays.  scale: default
    1/sqrt(D).  threads: worker threads (None: all cores).  backend: "jit"
    (LLVM) or "interp" (the exact reference).

    Paged KV cache (vLLM's block_table convention): with block_table
    [B, max_pages] and seq_lens [B] (integers), k and v are pools
    [n_pages, page_size, Hkv, D] and sequence b's key j is row
    j % page_size of page block_table[b, j // page_size]; each sequence is
    its own attention, its Lq query rows the last Lq positions of its
    seq_lens[b] keys.  float32 only, no input arrays or top-k (libspat's
    limits, SpatError otherwise).

    Returns o shaped as q, or (o, lse) with lse [B, H, Lq] float32 (-inf
    for a row that sees no key).  Raises SpatError on a run-time error of
    the pattern (e.g. an input value out of range)."""
    p = pattern if type(pattern) is Pattern else pattern_of(pattern)
    if type(q) is np.ndarray and q.dtype is _F32:
        dt = "float32"
    else:
        dt = dtype_name("q", q)
    q, k, v = as_tensor("q", q, dt), as_tensor("k", k, dt), as_tensor("v", v, dt)
    paged = keep = None
    if block_table is None and seq_lens is None:
        d = K.dims(q.shape, k.shape, v.shape, layout)
    else:
        d, paged, keep = paged_dims(q, k, v, block_table, seq_lens, layout)
    kern = K.get_kernel(p, d[5], layout, backend, threads, dt)
    if kern.args or runtime or inputs:
        scalars, ins = K.order_args(kern.args, runtime, inputs)
        arrays = input_arrays(ins, d)
        ptrs = [addr(a) for a in arrays]
    else:
        scalars = ptrs = ()
    if out is None:
        o = np.empty_like(q)
    else:
        o = as_tensor("out", out, dt)
        if o.shape != q.shape:
            raise ValueError("out has shape %s, q %s" % (o.shape, q.shape))
    lse = np.empty((d[0], d[1], d[3]), np.float32) if return_lse else None
    kern.call(d, addr(q), addr(k), addr(v), addr(o),
              addr(lse) if return_lse else None, scale, scalars, ptrs, paged)
    del keep  # the tables lived through the call
    return (o, lse) if return_lse else o


def attention_backward(q, k, v, o, lse, dout, pattern, *, dlse=None,
                       inputs=None, runtime=None, scale=None, layout="bhld",
                       threads=None, backend="jit", return_dinputs=False):
    """(dq, dk, dv) of attention for the upstream gradient dout (and dlse),
    given the forward's o and lse, by spat_kernel_backward; with
    return_dinputs also {name: gradient} of the float inputs.
    NotImplementedError when this libspat has no backward."""
    p = pattern_of(pattern)
    q, k, v = as_f32("q", q), as_f32("k", k), as_f32("v", v)
    o, lse, dout = as_f32("o", o), as_f32("lse", lse), as_f32("dout", dout)
    d = K.dims(q.shape, k.shape, v.shape, layout)
    if o.shape != q.shape or dout.shape != q.shape:
        raise ValueError("o and dout must be shaped as q %s" % (q.shape,))
    if lse.shape != (d[0], d[1], d[3]):
        raise ValueError("lse must be [B, H, Lq] = %s" % ((d[0], d[1], d[3]),))
    if dlse is not None:
        dlse = as_f32("dlse", dlse)
        if dlse.shape != lse.shape:
            raise ValueError("dlse must be shaped as lse")
    kern = K.get_kernel(p, d[5], layout, backend, threads)
    scalars, ins = K.order_args(kern.args, runtime, inputs)
    arrays = input_arrays(ins, d)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    # NaN until written (return_dinputs checks that libspat wrote them)
    dins = [np.full_like(x, np.nan) for (a, _), x in zip(ins, arrays)
            if a.kind == "finput"]
    kern.backward(d, (q.ctypes.data, k.ctypes.data, v.ctypes.data,
                      o.ctypes.data, lse.ctypes.data),
                  (dout.ctypes.data,
                   dlse.ctypes.data if dlse is not None else None,
                   dq.ctypes.data, dk.ctypes.data, dv.ctypes.data),
                  scale, scalars, [a.ctypes.data for a in arrays],
                  [x.ctypes.data for x in dins])
    if return_dinputs:
        names = [a.name for a, _ in ins if a.kind == "finput"]
        for n, x in zip(names, dins):
            if np.isnan(x).any():
                raise NotImplementedError(
                    "spatc: this libspat's spat_kernel_backward did not "
                    "write the gradient of the float input %r (spat_grads."
                    "dinputs): no gradient is faked" % n)
        return dq, dk, dv, dict(zip(names, dins))
    return dq, dk, dv


def has_backward():
    """Whether this libspat has spat_kernel_backward (gradients)."""
    return C.HAS_BACKWARD
