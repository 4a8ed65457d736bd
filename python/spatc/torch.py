"""spatc.torch: spatc attention as PyTorch operators (CPU; float32,
bfloat16, float16).

    import spatc, spatc.torch
    p = spatc.Pattern.library("longformer", w=256)
    o = spatc.torch.attention(q, k, v, p)          # autograd, torch.compile
    o, lse = spatc.torch.attention(q, k, v, p, return_lse=True)
    o = spatc.torch.attention(q, k_pool, v_pool, p, block_table=bt,
                              seq_lens=lens)      # paged KV cache, forward

The operators are registered with torch.library.custom_op:
    spatc::attention(q, k, v, pattern, scalars, inputs, scale, layout,
                     threads, backend) -> (o, lse)
    spatc::attention_backward(dout, dlse, q, k, v, o, lse, pattern, ...)
                     -> (dq, dk, dv)
    spatc::paged_attention(q, k_pool, v_pool, block_table, seq_lens,
                     pattern, scalars, scale, layout, threads, backend)
                     -> (o, lse)               (forward only)
with register_fake (shapes for torch.compile) and register_autograd.  The
pattern goes in as its key (Pattern.key, a string naming source, name and
parameters; the kernel is looked up or compiled by it), the pattern's
runtime scalars as a list of ints and its input arrays as a list of int32
tensors, so torch.compile(fullgraph=True) traces a call without a graph
break.  The backward needs libspat's spat_kernel_backward; a libspat
without it raises NotImplementedError on backward (no gradient is faked).
"""
import math
from typing import List, Optional, Tuple

import torch

from . import _capi as C
from . import _kernel as K
from .attention import pattern_of

__all__ = ["attention", "has_backward"]

Tensor = torch.Tensor


def has_backward():
    """Whether gradients are available (libspat has spat_kernel_backward)."""
    return C.HAS_BACKWARD


def _lse_shape(q, layout):
    if layout == "bhld":
        return (q.shape[0], q.shape[1], q.shape[2])
    return (q.shape[0], q.shape[2], q.shape[1])


# torch dtype -> spat dtype name (lse is float32 whatever q's dtype)
_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16",
           torch.float16: "float16"}


def _check(name, t, want=None):
    if t.device.type != "cpu":
        raise ValueError("spatc runs on the CPU: %s is on %s" % (name,
                                                                 t.device))
    if t.dtype not in _DTYPES:
        raise TypeError("%s has dtype %s; spatc attention takes float32, "
                        "bfloat16 or float16 (%s.float())" % (name, t.dtype,
                                                              name))
    if want is not None and t.dtype != want:
        raise TypeError("%s has dtype %s and q %s: q, k and v need one dtype"
                        % (name, t.dtype, want))


def _dims(q, k, v, layout):
    return K.dims(tuple(q.shape), tuple(k.shape), tuple(v.shape), layout)


def _ptr(t):
    return t.data_ptr() if t is not None else None


def _forward(q, k, v, pattern, scalars, inputs, scale, layout, threads,
             backend, want_lse=True):
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    d = _dims(q, k, v, layout)
    kern = K.get_kernel(pattern, d[5], layout, backend, threads,
                        _DTYPES[q.dtype])
    o = torch.empty_like(q)
    lse = _new_lse(q, layout) if want_lse else None
    ins = [t.contiguous() for t in inputs]
    _check_shapes(kern, ins, d)
    kern.call(d, q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(),
              lse.data_ptr() if want_lse else None, scale, scalars,
              [t.data_ptr() for t in ins])
    return o, lse


def _new_lse(q, layout):
    return q.new_empty(_lse_shape(q, layout), dtype=torch.float32)


@torch.library.custom_op("spatc::attention", mutates_args=(),
                         device_types="cpu")
def _attention(q: Tensor, k: Tensor, v: Tensor, pattern: str,
               scalars: List[int], inputs: List[Tensor], scale: float,
               layout: str, threads: int, backend: str
               ) -> Tuple[Tensor, Tensor]:
    return _forward(q, k, v, pattern, scalars, inputs, scale, layout,
                    threads, backend)


@_attention.register_fake
def _attention_fake(q, k, v, pattern, scalars, inputs, scale, layout,
                    threads, backend):
    return torch.empty_like(q), _new_lse(q, layout)


@torch.library.custom_op("spatc::attention_backward", mutates_args=(),
                         device_types="cpu")
def _attention_backward(dout: Tensor, dlse: Optional[Tensor], q: Tensor,
                        k: Tensor, v: Tensor, o: Tensor, lse: Tensor,
                        pattern: str, scalars: List[int],
                        inputs: List[Tensor], scale: float, layout: str,
                        threads: int, backend: str
                        ) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
    # libspat's backward is float32: 16-bit tensors are widened (exactly)
    # and the gradients rounded to their dtype at the end
    dt = q.dtype
    q, k, v, o, dout = (x.to(torch.float32).contiguous()
                        for x in (q, k, v, o, dout))
    lse = lse.contiguous()
    dlse = dlse.contiguous() if dlse is not None else None
    d = _dims(q, k, v, layout)
    kern = K.get_kernel(pattern, d[5], layout, backend, threads)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    ins = [t.contiguous() for t in inputs]
    _check_shapes(kern, ins, d)
    # one gradient per float input (in order), written by the kernel
    # (NaN until written: a libspat that does not write them is detected)
    dins = [torch.full_like(t, float("nan")) for t in ins
            if t.is_floating_point()]
    kern.backward(d, (q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(),
                      lse.data_ptr()),
                  (dout.data_ptr(), _ptr(dlse), dq.data_ptr(), dk.data_ptr(),
                   dv.data_ptr()),
                  scale, scalars, [t.data_ptr() for t in ins],
                  [t.data_ptr() for t in dins])
    return dq.to(dt), dk.to(dt), dv.to(dt), dins


@_attention_backward.register_fake
def _attention_backward_fake(dout, dlse, q, k, v, o, lse, pattern, scalars,
                             inputs, scale, layout, threads, backend):
    return (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v),
            [torch.empty_like(t) for t in inputs if t.is_floating_point()])


def _setup_context(ctx, inputs, output):
    q, k, v, pattern, scalars, ins, scale, layout, threads, backend = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse, *ins)
    ctx.args = (pattern, scalars, scale, layout, threads, backend)
    ctx.float_req = [t.requires_grad for t in ins if t.is_floating_point()]


def _backward(ctx, dout, dlse):
    q, k, v, o, lse, *ins = ctx.saved_tensors
    pattern, scalars, scale, layout, threads, backend = ctx.args
    dq, dk, dv, dfl = torch.ops.spatc.attention_backward(
        dout, dlse, q, k, v, o, lse, pattern, scalars, ins, scale, layout,
        threads, backend)
    for d, req in zip(dfl, ctx.float_req):
        if req and torch.isnan(d).any():
            raise NotImplementedError(
                "spatc: this libspat's spat_kernel_backward did not write "
                "the gradient of a float input (spat_grads.dinputs): no "
                "gradient is faked; detach the input or use a libspat that "
                "computes it")
    dfl = iter(dfl)
    dins = [next(dfl) if t.is_floating_point() else None for t in ins]
    # One entry per input of the op, in the structure torch flattens them
    # to: the tensor list (inputs) as a list; the int list (scalars) is a
    # leaf, except when empty (then an empty list).
    return (dq, dk, dv, None, None if scalars else [], dins, None, None,
            None, None)


_attention.register_autograd(_backward, setup_context=_setup_context)


def _paged_forward(q, k, v, block_table, seq_lens, pattern, scalars, scale,
                   layout, threads, backend, want_lse=True):
    from .attention import paged_dims
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    d, pg, keep = paged_dims(q, k, v, block_table.numpy(), seq_lens.numpy(),
                             layout)
    kern = K.get_kernel(pattern, d[5], layout, backend, threads,
                        _DTYPES[q.dtype])
    o = torch.empty_like(q)
    lse = _new_lse(q, layout) if want_lse else None
    kern.call(d, q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(),
              lse.data_ptr() if want_lse else None, scale, scalars, [], pg)
    del keep  # the int32 tables lived through the call
    return o, lse


@torch.library.custom_op("spatc::paged_attention", mutates_args=(),
                         device_types="cpu")
def _paged_attention(q: Tensor, k: Tensor, v: Tensor, block_table: Tensor,
                     seq_lens: Tensor, pattern: str, scalars: List[int],
                     scale: float, layout: str, threads: int, backend: str
                     ) -> Tuple[Tensor, Tensor]:
    return _paged_forward(q, k, v, block_table, seq_lens, pattern, scalars,
                          scale, layout, threads, backend)


@_paged_attention.register_fake
def _paged_attention_fake(q, k, v, block_table, seq_lens, pattern, scalars,
                          scale, layout, threads, backend):
    return torch.empty_like(q), _new_lse(q, layout)


def _check_shapes(kern, ins, d):
    # Inside the ops (opaque to torch.compile, so the shapes are checked on
    # every run, compiled or not): each input has its declared shape.
    for a, t in zip([a for a in kern.args if a.kind != "scalar"], ins):
        shape = a.shape(d)
        if tuple(t.shape) != shape:
            raise ValueError("input %r must have shape %s, got %s"
                             % (a.name, shape, tuple(t.shape)))


def _input_tensor(a, t):
    """An input as the kernel reads it: int32 (int inputs) or float32
    (float inputs), on the CPU (its shape is checked by the op)."""
    name = a.name
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(t)
    if t.device.type != "cpu":
        raise ValueError("input %r must be on the CPU" % name)
    if a.kind == "finput":
        if t.dtype != torch.float32:
            raise TypeError("input %r must be a float32 tensor, not %s"
                            % (name, t.dtype))
        return t
    if t.dtype == torch.int32:
        return t
    if t.dtype.is_floating_point or t.dtype.is_complex or \
            t.dtype == torch.bool:
        raise TypeError("input %r must hold integers, not %s" % (name,
                                                                 t.dtype))
    if torch.compiler.is_compiling():
        raise TypeError("input %r: pass an int32 tensor under torch.compile "
                        "(it is %s)" % (name, t.dtype))
    if t.numel() and (t.min() < -2**31 or t.max() >= 2**31):
        raise ValueError("input %r has values outside int32" % name)
    return t.to(torch.int32)


def attention(q, k, v, pattern, *, inputs=None, runtime=None, scale=None,
              layout="bhld", return_lse=False, threads=None, backend="jit",
              block_table=None, seq_lens=None):
    """Sparse attention on CPU tensors, differentiable in q, k, v.

    q [B, H, Lq, D], k and v [B, Hkv, Lk, D] ("bhld", as
    F.scaled_dot_product_attention) or [B, L, H, D] ("blhd"); H a multiple
    of Hkv; all float32, all bfloat16 or all float16 (o has their dtype,
    lse is float32; the backward of 16-bit tensors runs in float32 and
    rounds the gradients to their dtype).  pattern: a spatc.Pattern (or
    library name / .pat text).  runtime: {name: int}; inputs: {name:
    tensor}, int inputs integer (Lk entries for `int[]`), float inputs
    float32 of their declared shape (differentiable: their gradient flows).
    scale: default 1/sqrt(D).

    Paged KV cache (forward only, float32): block_table [B, max_pages] and
    seq_lens [B] integer tensors; k and v are then pools [n_pages,
    page_size, Hkv, D] (see spatc.attention).

    Returns o, or (o, lse) with lse [B, H, Lq]."""
    p = pattern_of(pattern)
    key, specs = p._plan
    _check("q", q)
    _check("k", k, q.dtype)
    _check("v", v, q.dtype)
    if block_table is not None or seq_lens is not None:
        return _paged(q, k, v, key, specs, block_table, seq_lens, runtime,
                      inputs, scale, layout, return_lse, threads, backend)
    d = _dims(q, k, v, layout)
    scalars, ins = K.order_args(specs, runtime, inputs)
    ins = [_input_tensor(a, t) for a, t in ins]
    if threads is None:
        threads = 0
    if layout not in C.LAYOUTS:
        raise ValueError("layout must be 'bhld' or 'blhd', not %r" % (layout,))
    if backend not in C.BACKENDS:
        raise ValueError("backend must be 'jit' or 'interp', not %r"
                         % (backend,))
    s = 1.0 / math.sqrt(d[5]) if scale is None else float(scale)
    if not (torch.is_grad_enabled() and (
            q.requires_grad or k.requires_grad or v.requires_grad or
            any(t.requires_grad for t in ins))) and \
            not torch.compiler.is_compiling() and \
            not _dispatch_modes_active():
        # Eager, nothing to differentiate: the kernel directly (the op's
        # dispatch costs tens of microseconds; the result is the same).
        o, lse = _forward(q, k, v, key, scalars, ins, s, layout,
                          int(threads), backend, return_lse)
    else:
        o, lse = torch.ops.spatc.attention(q, k, v, key, scalars, ins, s,
                                           layout, int(threads), backend)
    return (o, lse) if return_lse else o


def _paged(q, k, v, key, specs, block_table, seq_lens, runtime, inputs,
           scale, layout, return_lse, threads, backend):
    if block_table is None or seq_lens is None:
        raise ValueError("a paged KV cache needs both block_table and "
                         "seq_lens")
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or
                                    v.requires_grad):
        raise NotImplementedError("spatc: the backward pass does not take a "
                                  "paged KV cache (run it under "
                                  "torch.no_grad(), or pass dense k, v)")
    tables = []
    for n, t in (("block_table", block_table), ("seq_lens", seq_lens)):
        t = torch.as_tensor(t)
        if t.device.type != "cpu" or t.dtype.is_floating_point or \
                t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError("%s must be an integer CPU tensor" % n)
        tables.append(t.to(torch.int32).contiguous())
    scalars, ins = K.order_args(specs, runtime, inputs)
    if ins:
        raise ValueError("patterns with input arrays cannot run on a paged "
                         "KV cache")
    if layout not in C.LAYOUTS:
        raise ValueError("layout must be 'bhld' or 'blhd', not %r" % (layout,))
    if backend not in C.BACKENDS:
        raise ValueError("backend must be 'jit' or 'interp', not %r"
                         % (backend,))
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    args = (q, k, v, tables[0], tables[1], key, scalars, s, layout,
            int(threads or 0), backend)
    if torch.compiler.is_compiling() or _dispatch_modes_active():
        o, lse = torch.ops.spatc.paged_attention(*args)
    else:
        o, lse = _paged_forward(*args, want_lse=return_lse)
    return (o, lse) if return_lse else o


def _dispatch_modes_active():
    # A TorchDispatchMode or FakeTensorMode (tracing, opcheck, FlopCounter)
    # must see the op; the fast path is for plain eager calls only.
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode
        return _get_current_dispatch_mode() is not None
    except ImportError:
        return True
