"""Shared helpers of the torch-layer tests (tests/torch/run-torch.sh)."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

torch.set_num_threads(2)


def qkv(B=1, H=2, Hkv=None, Lq=48, Lk=None, D=16, layout="bhld", seed=0,
        dtype=torch.float32, grad=False):
    g = torch.Generator().manual_seed(seed)
    Hkv = H if Hkv is None else Hkv
    Lk = Lq if Lk is None else Lk
    if layout == "bhld":
        shapes = (B, H, Lq, D), (B, Hkv, Lk, D), (B, Hkv, Lk, D)
    else:
        shapes = (B, Lq, H, D), (B, Lk, Hkv, D), (B, Lk, Hkv, D)
    return tuple(torch.randn(s, generator=g, dtype=dtype,
                             requires_grad=grad) for s in shapes)


def sdpa_ref(q, k, v, mask, scale=None, layout="bhld"):
    """F.scaled_dot_product_attention in float64 with a boolean mask
    [H, Lq, Lk] (True: attend), differentiable; GQA by repeating k, v."""
    import torch.nn.functional as F
    if layout == "blhd":
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    o = F.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                       attn_mask=torch.as_tensor(mask),
                                       scale=scale)
    return o.transpose(1, 2) if layout == "blhd" else o


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg"))
