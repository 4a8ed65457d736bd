"""spatc.torch with bfloat16 / float16 tensors (against the numpy layer on
the same bits, and SDPA in float64 on the rounded inputs; the backward in
float32 rounded to the dtype) and on a paged KV cache (the op
spatc::paged_attention, opcheck, torch.compile without a graph break)."""
import numpy as np
import pytest
import torch

import spatc
import spatc.torch as st
from conftest import qkv, sdpa_ref

SINKS = spatc.Pattern.from_string(
    "pattern sinks(runtime n = 4) = causal & (cols(0 .. n) | window(24, 0));")
U = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}


def np_bits(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float16])
def test_16bit_forward(dt):
    q, k, v = (x.to(dt) for x in qkv(B=2, H=4, Hkv=2, Lq=40, D=32))
    o, lse = st.attention(q, k, v, SINKS, return_lse=True)
    assert o.dtype == dt and lse.dtype == torch.float32
    # the same kernel as the numpy layer, bit for bit
    want = spatc.attention(*(np_bits(x) for x in (q, k, v)), SINKS)
    assert np.array_equal(np_bits(o), want)
    ref = sdpa_ref(q.float(), k.float(), v.float(), SINKS.mask(40, heads=4))
    a = sdpa_ref(q.float(), k.float(), v.float().abs(), SINKS.mask(40, heads=4))
    bound = (2.0**-8 + 2.0**-14) * a + 2 * U[dt] * ref.abs() + 1e-6
    assert bool(((o.double() - ref).abs() <= bound).all())
    with pytest.raises(TypeError, match="one dtype"):
        st.attention(q, k.float(), v, SINKS)
    torch.library.opcheck(torch.ops.spatc.attention.default,
                          (q, k, v, SINKS.key, [3], [], 0.25, "bhld", 1,
                           "jit"))


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float16])
def test_16bit_backward_in_float32(dt):
    q, k, v = (x.to(dt).requires_grad_() for x in qkv(H=2, Lq=24, D=16))
    st.attention(q, k, v, SINKS).float().square().sum().backward()
    assert q.grad.dtype == dt and k.grad.dtype == dt
    f = [x.detach().float().requires_grad_() for x in (q, k, v)]
    # the float32 backward from the 16-bit forward's o (rounded): close to
    # the float32 gradients, within the rounding of o and of the grads
    st.attention(*f, SINKS).square().sum().backward()
    for x, y in zip((q, k, v), f):
        torch.testing.assert_close(x.grad.float(), y.grad, atol=0.05,
                                   rtol=0.05)


def pools(B=2, Hkv=2, D=16, page_size=4, lens=(21, 9), n_pages=16, seed=2):
    g = torch.Generator().manual_seed(seed)
    kp = torch.randn(n_pages, page_size, Hkv, D, generator=g)
    vp = torch.randn(n_pages, page_size, Hkv, D, generator=g)
    max_pages = -(-max(lens) // page_size)
    bt = torch.randperm(n_pages, generator=g)[:B * max_pages].view(
        B, max_pages)
    return kp, vp, bt, torch.tensor(lens)


def test_paged_forward_matches_dense():
    kp, vp, bt, lens = pools()
    q = torch.randn(2, 4, 2, 16)
    o, lse = st.attention(q, kp, vp, SINKS, block_table=bt, seq_lens=lens,
                          return_lse=True)
    assert o.shape == q.shape and lse.shape == (2, 4, 2)
    for b in range(2):
        j = torch.arange(int(lens[b]))
        pages, rows = bt[b, j // 4], j % 4
        k = kp[pages, rows].transpose(0, 1)[None]
        v = vp[pages, rows].transpose(0, 1)[None]
        ref = sdpa_ref(q[b:b + 1], k, v, SINKS.mask(2, int(lens[b]), heads=4))
        torch.testing.assert_close(o[b:b + 1].double(), ref, atol=2e-5,
                                   rtol=1e-4)
    with pytest.raises(NotImplementedError, match="paged"):
        st.attention(q.requires_grad_(), kp, vp, SINKS, block_table=bt,
                     seq_lens=lens)
    with pytest.raises(ValueError, match="both"):
        st.attention(q.detach(), kp, vp, SINKS, block_table=bt)


def test_paged_opcheck_and_compile():
    kp, vp, bt, lens = pools()
    q = torch.randn(2, 4, 1, 16)
    args = (q, kp, vp, bt.to(torch.int32), lens.to(torch.int32), SINKS.key,
            [2], 0.25, "bhld", 1, "jit")
    torch.library.opcheck(torch.ops.spatc.paged_attention.default, args)

    def f(q, kp, vp, bt, lens):
        return st.attention(q, kp, vp, SINKS, block_table=bt, seq_lens=lens,
                            runtime={"n": 2}) * 2
    ex = torch._dynamo.explain(f)(q, kp, vp, bt, lens)
    assert ex.graph_count == 1 and ex.graph_break_count == 0
    c = torch.compile(f, fullgraph=True, backend="eager")
    torch.testing.assert_close(c(q, kp, vp, bt, lens), f(q, kp, vp, bt, lens))
