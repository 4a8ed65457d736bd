"""Shared helpers of the numpy-layer tests: random tensors and the
independent reference (a dense masked softmax in float64 numpy)."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(
        np.float32)


def qkv(B=1, H=2, Hkv=None, Lq=48, Lk=None, D=16, layout="bhld", seed=0):
    Hkv = H if Hkv is None else Hkv
    Lk = Lq if Lk is None else Lk
    if layout == "bhld":
        shapes = (B, H, Lq, D), (B, Hkv, Lk, D), (B, Hkv, Lk, D)
    else:
        shapes = (B, Lq, H, D), (B, Lk, Hkv, D), (B, Lk, Hkv, D)
    return tuple(rand(*s, seed=seed + i) for i, s in enumerate(shapes))


def dense_ref(q, k, v, mask, scale=None, layout="bhld"):
    """o, lse of softmax(scale q k^T | mask) v in float64, bhld or blhd;
    mask [H, Lq, Lk] bool (shared by the batch).  Empty rows: 0, -inf."""
    if layout == "blhd":
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    H, Hkv, D = q.shape[1], k.shape[1], q.shape[3]
    g = H // Hkv
    k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = np.einsum("bhid,bhjd->bhij", q, k) * (scale or 1 / np.sqrt(D))
    s = np.where(mask[None], s, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0)
    e = np.exp(s - mx)
    z = e.sum(axis=-1, keepdims=True)
    o = np.einsum("bhij,bhjd->bhid", e / np.where(z > 0, z, 1), v)
    with np.errstate(divide="ignore"):
        lse = np.log(z[..., 0]) + mx[..., 0]
    if layout == "blhd":
        o = o.transpose(0, 2, 1, 3)
    return o, lse


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    # the disk kernel cache of these tests: a private one
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg"))


def dense_grads(q, k, v, mask, dout, scale=None):
    """dq, dk, dv of the dense masked softmax attention (bhld, float64), a
    key/value head summing over the query heads that share it."""
    q, k, v, dout = (x.astype(np.float64) for x in (q, k, v, dout))
    H, Hkv, D = q.shape[1], k.shape[1], q.shape[3]
    g = H // Hkv
    sc = scale or 1 / np.sqrt(D)
    kk, vv = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = np.einsum("bhid,bhjd->bhij", q, kk) * sc
    s = np.where(mask[None], s, -np.inf)
    mx = s.max(-1, keepdims=True)
    p = np.exp(s - np.where(np.isfinite(mx), mx, 0))
    z = p.sum(-1, keepdims=True)
    p = p / np.where(z > 0, z, 1)
    o = np.einsum("bhij,bhjd->bhid", p, vv)
    dv = np.einsum("bhij,bhid->bhjd", p, dout)
    dp = np.einsum("bhid,bhjd->bhij", dout, vv)
    ds = p * (dp - (dout * o).sum(-1, keepdims=True))
    dq = np.einsum("bhij,bhjd->bhid", ds, kk) * sc
    dk = np.einsum("bhij,bhid->bhjd", ds, q) * sc
    B, Lk = k.shape[0], k.shape[2]
    dk = dk.reshape(B, Hkv, g, Lk, D).sum(2)
    dv = dv.reshape(B, Hkv, g, Lk, D).sum(2)
    return dq, dk, dv
