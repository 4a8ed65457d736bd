"""spatc.torch and spatc.nn: the custom ops (opcheck), forward against
F.scaled_dot_product_attention with a boolean mask in float64, gradients
(or the clear error while libspat has no backward), torch.compile with
fullgraph and no graph break, SparseAttention and a training step."""
import numpy as np
import pytest
import torch

import spatc
import spatc.nn
import spatc.torch as st
from conftest import qkv, sdpa_ref

LF = spatc.Pattern.library("longformer", w=16, g=2)
DOC = spatc.Pattern.library("document")
SINK = spatc.Pattern.library("streaming_llm", w=6)


@pytest.mark.parametrize("layout", ["bhld", "blhd"])
def test_forward_matches_sdpa(layout):
    q, k, v = qkv(B=2, H=4, Hkv=2, Lq=70, layout=layout)
    o, lse = st.attention(q, k, v, LF, layout=layout, return_lse=True)
    ref = sdpa_ref(q, k, v, LF.mask(70, heads=4), layout=layout)
    torch.testing.assert_close(o.double(), ref, atol=2e-5, rtol=1e-4)
    assert lse.shape == (2, 4, 70)
    np.testing.assert_allclose(
        o.numpy(), spatc.attention(q.numpy(), k.numpy(), v.numpy(), LF,
                                   layout=layout))


def test_runtime_scalars_and_inputs():
    q, k, v = qkv(H=2, Lq=40)
    doc = torch.arange(40) // 13                       # int64: converted
    o = st.attention(q, k, v, DOC, inputs={"doc": doc})
    ref = sdpa_ref(q, k, v, DOC.mask(40, heads=2, inputs={"doc": doc.numpy()}))
    torch.testing.assert_close(o.double(), ref, atol=2e-5, rtol=1e-4)
    o = st.attention(q, k, v, SINK, runtime={"n_sink": 3})
    ref = sdpa_ref(q, k, v, SINK.mask(40, heads=2, runtime={"n_sink": 3}))
    torch.testing.assert_close(o.double(), ref, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"shape \(40,\)"):
        st.attention(q, k, v, DOC, inputs={"doc": doc[:30]})
    with pytest.raises(TypeError, match="integers"):
        st.attention(q, k, v, DOC, inputs={"doc": doc.float()})


def test_argument_errors():
    q, k, v = qkv(H=2, Lq=16)
    with pytest.raises(TypeError, match="float32"):
        st.attention(q.double(), k, v, LF)
    with pytest.raises(ValueError, match="multiple"):
        st.attention(*qkv(H=3, Hkv=2, Lq=16), LF)
    with pytest.raises(ValueError, match="4 dimensions"):
        st.attention(q[0], k, v, LF)
    with pytest.raises(ValueError, match="layout"):
        st.attention(q, k, v, LF, layout="x")
    # non-contiguous tensors are fine (made contiguous by the op)
    qt = q.transpose(2, 3).contiguous().transpose(2, 3)
    torch.testing.assert_close(st.attention(qt, k, v, LF),
                               st.attention(q, k, v, LF))


def test_opcheck_forward():
    q, k, v = qkv(H=2, Lq=24)
    doc = (torch.arange(24) // 8).to(torch.int32)
    for args in [(q, k, v, LF.key, [], [], 0.25, "bhld", 1, "jit"),
                 (q, k, v, DOC.key, [], [doc], 0.25, "bhld", 1, "jit"),
                 (q, k, v, SINK.key, [2], [], 0.25, "bhld", 1, "interp")]:
        torch.library.opcheck(torch.ops.spatc.attention.default, args)


def test_backward_is_there():
    # libspat has spat_kernel_backward (a libspat without it would make
    # backward() raise NotImplementedError; spatc never fakes a gradient)
    assert st.has_backward()


def test_opcheck_with_grad():
    q, k, v = qkv(H=2, Lq=24, grad=True)
    doc = (torch.arange(24) // 8).to(torch.int32)
    for args in [(q, k, v, LF.key, [], [], 0.25, "bhld", 1, "jit"),
                 (q, k, v, DOC.key, [], [doc], 0.25, "bhld", 1, "jit"),
                 (q, k, v, SINK.key, [2], [], 0.25, "bhld", 1, "interp")]:
        torch.library.opcheck(torch.ops.spatc.attention.default, args)


@pytest.mark.parametrize("layout,pat,kw", [
    ("bhld", LF, {}), ("blhd", LF, {}),
    ("bhld", DOC, {"inputs": {"doc": torch.arange(40) // 9}}),
    ("blhd", SINK, {"runtime": {"n_sink": 3}})])
def test_gradients_against_sdpa_float64(layout, pat, kw):
    q, k, v = qkv(H=4, Hkv=2, Lq=40, layout=layout, grad=True)
    g = torch.randn(q.shape, generator=torch.Generator().manual_seed(5))
    o = st.attention(q, k, v, pat, layout=layout, **kw)
    (o * g).sum().backward()
    got = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    mk = {n: ({a: b.numpy() for a, b in d.items()} if n == "inputs" else d)
          for n, d in kw.items()}
    ref = sdpa_ref(q, k, v, pat.mask(40, heads=4, **mk), layout=layout)
    (ref * g.double()).sum().backward()
    for a, x in zip(got, (q, k, v)):
        torch.testing.assert_close(a.double(), x.grad.double(), atol=1e-4,
                                   rtol=1e-3)


def test_backward_interp_matches_jit():
    q, k, v = qkv(H=2, Lq=33, grad=True)
    grads = []
    for backend in ("jit", "interp"):
        for x in (q, k, v):
            x.grad = None
        st.attention(q, k, v, LF, backend=backend).pow(2).sum().backward()
        grads.append([x.grad.clone() for x in (q, k, v)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_compiled_backward():
    q, k, v = qkv(H=2, Lq=32, grad=True)
    f = torch.compile(lambda q, k, v: st.attention(q, k, v, LF).pow(2).sum(),
                      fullgraph=True, backend="aot_eager")
    f(q, k, v).backward()
    got = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    st.attention(q, k, v, LF).pow(2).sum().backward()
    for a, x in zip(got, (q, k, v)):
        torch.testing.assert_close(a, x.grad)


def test_lse_gradient():
    q, k, v = qkv(H=2, Lq=24, grad=True)
    _, lse = st.attention(q, k, v, LF, return_lse=True)
    lse.sum().backward()
    qd = q.detach().double().requires_grad_()
    s = qd @ k.detach().double().transpose(-1, -2) / 4.0
    s = s.masked_fill(~torch.as_tensor(LF.mask(24, heads=2)), float("-inf"))
    torch.logsumexp(s, -1).sum().backward()
    torch.testing.assert_close(q.grad.double(), qd.grad, atol=1e-4, rtol=1e-3)


def test_compile_fullgraph_no_graph_break():
    q, k, v = qkv(H=2, Lq=32)
    doc = (torch.arange(32) // 10).to(torch.int32)

    def f(q, k, v, doc):
        a = st.attention(q, k, v, LF)
        b = st.attention(q * 2, k, v, DOC, inputs={"doc": doc})
        c = st.attention(q, k, v, SINK, runtime={"n_sink": 2},
                         return_lse=True)
        return a + b + c[0], c[1]

    ex = torch._dynamo.explain(f)(q, k, v, doc)
    assert ex.graph_break_count == 0 and ex.graph_count == 1
    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    for x, y in zip(cf(q, k, v, doc), f(q, k, v, doc)):
        torch.testing.assert_close(x, y)


def test_compile_inductor_module():
    torch._dynamo.reset()
    m = spatc.nn.SparseAttention(LF)
    q, k, v = qkv(H=2, Lq=32)

    def f(q, k, v):
        return torch.nn.functional.gelu(m(q, k, v)).sum(-1)

    cf = torch.compile(f, fullgraph=True)
    torch.testing.assert_close(cf(q, k, v), f(q, k, v))


def test_sparse_attention_module():
    m = spatc.nn.SparseAttention("longformer", w=16, g=2)
    assert m.pattern.params == {"w": 16, "g": 2} and "longformer" in repr(m)
    q, k, v = qkv(H=2, Lq=20)
    torch.testing.assert_close(m(q, k, v), st.attention(q, k, v, LF))
    o, lse = m(q, k, v, return_lse=True)
    assert lse.shape == (1, 2, 20)
    for kw in ({"attn_mask": torch.ones(20, 20, dtype=torch.bool)},
               {"is_causal": True}, {"dropout_p": 0.1}):
        with pytest.raises(ValueError):
            m(q, k, v, **kw)
    d = spatc.nn.SparseAttention(DOC, inputs={"doc": torch.zeros(20,
                                                                 dtype=torch.int32)})
    ref = sdpa_ref(q, k, v, np.tril(np.ones((2, 20, 20), bool)))
    torch.testing.assert_close(d(q, k, v).double(), ref, atol=2e-5,
                               rtol=1e-4)


class Tiny(torch.nn.Module):
    def __init__(self, pattern, d=32, h=2):
        super().__init__()
        self.h, self.d = h, d
        self.emb = torch.nn.Embedding(8, d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.attn = spatc.nn.SparseAttention(pattern)
        self.out = torch.nn.Linear(d, 8)

    def forward(self, x):
        B, L = x.shape
        e = self.emb(x)
        q, k, v = self.qkv(e).view(B, L, 3, self.h, self.d // self.h) \
            .permute(2, 0, 3, 1, 4)
        a = self.attn(q, k, v).transpose(1, 2).reshape(B, L, self.d)
        return self.out(e + a)


def test_training_step():
    torch.manual_seed(0)
    model = Tiny(spatc.Pattern.from_string("pattern c = causal & window(8, 0);"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randint(0, 8, (2, 64))
    y = torch.roll(x, 1, dims=1)               # predict the previous token
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1),
                                                 y.flatten())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.qkv.parameters())
    assert losses[-1] < 0.5 * losses[0]


def test_float_input_score_pattern():
    p = spatc.Pattern.from_string(
        "pattern alibi(input slope: float[H]) = causal with score "
        "s - slope[h] * (i - j);")
    q, k, v = qkv(H=2, Lq=24, grad=True)
    slope = torch.tensor([0.3, 0.05])
    o = st.attention(q, k, v, p, inputs={"slope": slope}, backend="interp")
    i = torch.arange(24)
    bias = -slope[:, None, None] * (i[:, None] - i[None, :])
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double(), v.double(),
        attn_mask=(bias + torch.where(i[:, None] >= i[None, :], 0.0,
                                      float("-inf"))).double())
    torch.testing.assert_close(o.double(), ref, atol=2e-5, rtol=1e-4)
    o.sum().backward()
    got = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    ref.sum().backward()
    for a, x in zip(got, (q, k, v)):
        torch.testing.assert_close(a.double(), x.grad.double(), atol=1e-4,
                                   rtol=1e-3)
    # the slope's own gradient: computed, or NotImplementedError: not faked
    sl = slope.clone().requires_grad_()
    o = st.attention(q.detach(), k.detach(), v.detach(), p,
                     inputs={"slope": sl}, backend="interp")
    try:
        o.sum().backward()
    except NotImplementedError as e:
        assert "no gradient is faked" in str(e)
    else:
        assert sl.grad is not None and torch.isfinite(sl.grad).all()
    with pytest.raises(ValueError, match="shape"):
        st.attention(q, k, v, p, inputs={"slope": slope[:1]})
