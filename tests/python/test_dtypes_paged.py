"""spatc.attention with 16-bit tensors (float16, bfloat16 as uint16 bit
patterns) and on paged KV caches (vLLM's block_table convention): the JIT
against the interpreter on the same rounded inputs, the interpreter against
the float64 dense reference, and the errors.

Tolerance of the 16-bit paths (tests/unit/test_dtype.c derives it from the
formats' precision, u = 2^-8 for bf16, 2^-11 for fp16): per element
|o_jit - o_ref| <= c a + 2 u |o_ref| + 1e-6, a the softmax average of |v|,
c = 2^-8 + 2^-14 for bf16 (the vdpbf16ps tile rounds P to bf16), 2^-14 for
fp16."""
import numpy as np
import pytest

import spatc
from conftest import dense_ref, qkv

SINKS = spatc.Pattern.from_string(
    "pattern sinks(runtime n = 4) = causal & (cols(0 .. n) | window(24, 0));")
U = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
C = {"bfloat16": 2.0**-8 + 2.0**-14, "float16": 2.0**-14}


def to_dtype(x, dt):
    return spatc.to_bfloat16(x) if dt == "bfloat16" else x.astype(np.float16)


def to_f32(x):
    if x.dtype == np.uint16:
        return spatc.from_bfloat16(x)
    return x.astype(np.float32)


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
@pytest.mark.parametrize("layout", ["bhld", "blhd"])
def test_16bit_jit_matches_interp(dt, layout):
    q, k, v = (to_dtype(x, dt) for x in qkv(B=2, H=4, Hkv=2, Lq=70, Lk=90,
                                             D=32, layout=layout))
    o, lse = spatc.attention(q, k, v, SINKS, layout=layout, return_lse=True)
    r, rlse = spatc.attention(q, k, v, SINKS, layout=layout, return_lse=True,
                              backend="interp")
    assert o.dtype == q.dtype and r.dtype == q.dtype and o.shape == q.shape
    assert lse.dtype == np.float32
    f = [to_f32(x) for x in (q, k, v)]
    a = spatc.attention(f[0], f[1], np.abs(f[2]), SINKS, layout=layout,
                        backend="interp")
    ro = to_f32(r)
    bound = C[dt] * a + 2 * U[dt] * np.abs(ro) + 1e-6
    assert np.all(np.abs(to_f32(o) - ro) <= bound)
    fin = np.isfinite(rlse)
    assert np.array_equal(fin, np.isfinite(lse))
    assert np.all(np.abs(lse[fin] - rlse[fin]) <= 1e-4 * (1 + np.abs(rlse[fin])))
    # a wrong answer would fail: the bound is far below the values' spread
    assert bound.max() < 0.1 * np.abs(ro).max()


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
def test_16bit_interp_matches_dense_reference(dt):
    q, k, v = (to_dtype(x, dt) for x in qkv(H=2, Lq=40, D=16))
    o = spatc.attention(q, k, v, SINKS, backend="interp")
    ro, _ = dense_ref(*(to_f32(x) for x in (q, k, v)), SINKS.mask(40, heads=2))
    # the interpreter computes in double from the rounded inputs and rounds
    # o once: at most half a step of the format
    assert np.all(np.abs(to_f32(o) - ro) <= U[dt] * np.abs(ro) + 1e-7)


def test_bfloat16_conversions_round_to_nearest_even():
    x = np.array([1.0, 1 + 2.0**-8, 1 + 3 * 2.0**-8, -2.5, 1e-40, np.inf,
                  3.4e38], np.float32)
    u = spatc.to_bfloat16(x)
    assert u.dtype == np.uint16 and u.shape == x.shape
    # ties go to the even significand: 1 + 2^-8 -> 1, 1 + 3 2^-8 -> 1 + 2^-6
    want = np.array([1.0, 1.0, 1 + 2.0**-6, -2.5, 0.0, np.inf, np.inf],
                    np.float32)
    got = spatc.from_bfloat16(u)
    assert np.array_equal(got[[0, 1, 2, 3, 5, 6]], want[[0, 1, 2, 3, 5, 6]])
    assert abs(got[4] - 1e-40) < 1e-41     # subnormals are kept, rounded
    r = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    back = spatc.from_bfloat16(spatc.to_bfloat16(r))
    assert np.all(np.abs(back - r) <= 2.0**-8 * np.abs(r))
    assert spatc.to_bfloat16(np.zeros((0, 3))).shape == (0, 3)


def test_dtype_errors_and_cache_key():
    q, k, v = qkv(Lq=8, D=16)
    with pytest.raises(TypeError, match="one dtype"):
        spatc.attention(q, k.astype(np.float16), v, SINKS)
    with pytest.raises(TypeError, match="float64"):
        spatc.attention(q.astype(np.float64), k, v, SINKS)
    with pytest.raises(TypeError, match="one dtype"):
        spatc.attention(q, k, v, SINKS, out=np.empty(q.shape, np.float16))
    # the dtype is part of the kernel key: float32 then fp16 compile twice
    spatc.clear_cache()
    spatc.attention(q, k, v, SINKS)
    spatc.attention(*(x.astype(np.float16) for x in (q, k, v)), SINKS)
    assert spatc.cache_info()["kernels"] == 2
    # the backward is float32 only (libspat's)
    with pytest.raises(TypeError):
        spatc.attention_backward(*(x.astype(np.float16) for x in (q, k, v)),
                                 q, np.zeros((1, 2, 8), np.float32), q, SINKS)


def paged(B=3, Hkv=2, D=16, page_size=8, lens=(50, 17, 33), n_pages=24,
          seed=3):
    """k, v pools, a shuffled block_table and the sequences' dense k, v."""
    rng = np.random.default_rng(seed)
    kp = rng.standard_normal((n_pages, page_size, Hkv, D)).astype(np.float32)
    vp = rng.standard_normal((n_pages, page_size, Hkv, D)).astype(np.float32)
    max_pages = -(-max(lens) // page_size) + 1
    bt = rng.permutation(n_pages)[:B * max_pages].reshape(B, max_pages)
    dense = []
    for b, n in enumerate(lens):
        j = np.arange(n)
        pages, rows = bt[b, j // page_size], j % page_size
        dense.append((kp[pages, rows].transpose(1, 0, 2)[None],
                      vp[pages, rows].transpose(1, 0, 2)[None]))
    return kp, vp, bt, np.array(lens), dense


@pytest.mark.parametrize("backend", ["jit", "interp"])
@pytest.mark.parametrize("Lq", [1, 3])
@pytest.mark.parametrize("layout", ["bhld", "blhd"])
def test_paged_matches_dense_reference(backend, Lq, layout):
    kp, vp, bt, lens, dense = paged()
    B, H = len(lens), 4
    q = np.random.default_rng(5).standard_normal(
        (B, H, Lq, 16) if layout == "bhld" else (B, Lq, H, 16)).astype(
            np.float32)
    o, lse = spatc.attention(q, kp, vp, SINKS, block_table=bt,
                             seq_lens=lens, runtime={"n": 2}, layout=layout,
                             return_lse=True, backend=backend)
    assert o.shape == q.shape and lse.shape == (B, H, Lq)
    p2 = SINKS.copy()
    for b, (k, v) in enumerate(dense):
        qb = q[b:b + 1] if layout == "bhld" else q[b:b + 1].transpose(0, 2, 1, 3)
        m = p2.mask(Lq, int(lens[b]), heads=H, runtime={"n": 2})
        ro, rlse = dense_ref(qb, k, v, m)
        ob = o[b:b + 1] if layout == "bhld" else o[b:b + 1].transpose(0, 2, 1, 3)
        np.testing.assert_allclose(ob, ro, atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(lse[b], rlse[0], atol=2e-5, rtol=1e-5)


def test_paged_errors():
    kp, vp, bt, lens, _ = paged()
    q = np.zeros((3, 4, 1, 16), np.float32)
    with pytest.raises(ValueError, match="both"):
        spatc.attention(q, kp, vp, SINKS, block_table=bt)
    with pytest.raises(ValueError, match=r"\[B, max_pages\]"):
        spatc.attention(q, kp, vp, SINKS, block_table=bt[:2], seq_lens=lens)
    bad = bt.copy()
    bad[1, 0] = 99
    with pytest.raises(spatc.SpatError, match="page id") as e:
        spatc.attention(q, kp, vp, SINKS, block_table=bad, seq_lens=lens)
    assert e.value.status == "SPAT_EINVAL"
    too_long = lens.copy()
    too_long[0] = bt.shape[1] * kp.shape[1] + 1
    with pytest.raises(spatc.SpatError, match="seq_lens"):
        spatc.attention(q, kp, vp, SINKS, block_table=bt, seq_lens=too_long)
    with pytest.raises(ValueError, match="multiple"):
        spatc.attention(np.zeros((3, 3, 1, 16), np.float32), kp, vp, SINKS,
                        block_table=bt, seq_lens=lens)
    doc = spatc.Pattern.from_string("pattern d(input doc: int[]) = "
                                    "where(doc[i] == doc[j]);")
    with pytest.raises(ValueError):   # no Lk for the input's shape
        spatc.attention(q, kp, vp, doc, block_table=bt, seq_lens=lens,
                        inputs={"doc": np.zeros(50, np.int32)})
    with pytest.raises(spatc.SpatError, match="float32 only") as e:
        spatc.attention(*(spatc.to_bfloat16(x) for x in (q, kp, vp)), SINKS,
                        block_table=bt, seq_lens=lens)
    assert e.value.status == "SPAT_EUNSUPPORTED"


def test_paged_with_a_disk_cache_kernel():
    # a kernel loaded from libspat's disk cache has the decode tile too
    kp, vp, bt, lens, _ = paged()
    q = np.random.default_rng(7).standard_normal((3, 4, 1, 16)).astype(
        np.float32)
    p = spatc.Pattern.from_string("pattern dc = causal & window(11, 0);")
    o1 = spatc.attention(q, kp, vp, p, block_table=bt, seq_lens=lens)
    spatc.clear_cache()
    assert p.kernel(16).from_cache
    o2 = spatc.attention(q, kp, vp, p, block_table=bt, seq_lens=lens)
    np.testing.assert_array_equal(o1, o2)
