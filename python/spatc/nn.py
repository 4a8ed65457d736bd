"""spatc.nn: SparseAttention, a torch module with the call shape of
torch.nn.functional.scaled_dot_product_attention whose mask is a spatc
pattern.

    attn = spatc.nn.SparseAttention("longformer", w=256)
    o = attn(q, k, v)                       # q, k, v [B, H, L, D] float32
"""
import torch

from . import torch as st
from .attention import pattern_of

__all__ = ["SparseAttention"]


class SparseAttention(torch.nn.Module):
    """softmax(scale q k^T | pattern) v.  pattern: a spatc.Pattern, a
    library name or .pat text; keyword arguments set its compile-time
    parameters (a copy: the given pattern is not changed).  runtime and
    inputs given here are defaults for every call."""

    def __init__(self, pattern, *, layout="bhld", scale=None, threads=None,
                 backend="jit", runtime=None, inputs=None, **params):
        super().__init__()
        p = pattern_of(pattern)
        self.pattern = p.copy(**params) if params else p
        self.layout, self.scale = layout, scale
        self.threads, self.backend = threads, backend
        self.runtime = dict(runtime or {})
        self.inputs = dict(inputs or {})

    def forward(self, query, key, value, attn_mask=None, dropout_p=0.0,
                is_causal=False, scale=None, enable_gqa=True, *,
                runtime=None, inputs=None, return_lse=False):
        if attn_mask is not None:
            raise ValueError("SparseAttention takes its mask from the "
                             "pattern: attn_mask must be None")
        if dropout_p:
            raise ValueError("SparseAttention has no attention dropout "
                             "(dropout_p must be 0)")
        if is_causal:
            raise ValueError("is_causal: use a causal pattern (e.g. "
                             "'causal & window(256, 0)')")
        if not enable_gqa and query.shape[-3] != key.shape[-3] and \
                self.layout == "bhld":
            raise ValueError("query and key heads differ and enable_gqa "
                             "is False")
        rt = dict(self.runtime, **(runtime or {}))
        ins = dict(self.inputs, **(inputs or {}))
        return st.attention(query, key, value, self.pattern, inputs=ins,
                            runtime=rt,
                            scale=self.scale if scale is None else scale,
                            layout=self.layout, return_lse=return_lse,
                            threads=self.threads, backend=self.backend)

    def extra_repr(self):
        return "pattern=%s, layout=%s" % (self.pattern.key.split("@")[0],
                                          self.layout)
