"""spatc.Pattern: parsing, selection, parameters, masks, counts, explain,
pictures; errors carry the API's messages and diagnostics."""
import os

import numpy as np
import pytest

import spatc
from spatc import png
from conftest import ROOT, qkv

LIB = os.path.join(ROOT, "patterns")


def window_mask(H, lq, lk, l, r):
    i = np.arange(lq)[:, None] + max(lk - lq, 0)
    j = np.arange(lk)[None, :]
    m = (j >= i - l) & (j <= i + r)
    return np.broadcast_to(m, (H, lq, lk))


def test_version_and_library():
    assert spatc.version() == spatc.__version__
    assert os.path.isfile(spatc.library_path)


def test_from_string_mask_matches_formula():
    p = spatc.Pattern.from_string("pattern w = window(3, 1);")
    assert p.name == "w" and p.params == {} and p.args == ()
    m = p.mask(20, heads=2)
    assert m.dtype == np.bool_ and m.shape == (2, 20, 20)
    assert (m == window_mask(2, 20, 20, 3, 1)).all()


def test_mask_lq_lk_bottom_right():
    p = spatc.Pattern.from_string("pattern c = causal;")
    m = p.mask(5, 12)
    i = np.arange(5)[:, None] + 7
    assert (m[0] == (np.arange(12)[None, :] <= i)).all()


def test_multi_pattern_selection_and_listing():
    f = os.path.join(LIB, "document.pat")
    names = [n for n, _ in spatc.patterns_in(f)]
    assert names == ["document_bidir", "document"]
    assert spatc.Pattern.from_file(f).name == "document"
    assert spatc.Pattern.from_file(f, "document_bidir").name == \
        "document_bidir"
    assert spatc.Pattern.library("document_bidir").name == "document_bidir"
    with pytest.raises(spatc.SpatError) as e:
        spatc.Pattern.from_file(f, "nope")
    assert "nope" in str(e.value) and e.value.status == "SPAT_EINVAL"
    assert "longformer" in spatc.Pattern.library_names()
    txt = "pattern a = causal;\npattern b = full;\n"
    assert [n for n, _ in spatc.patterns_in(text=txt)] == ["a", "b"]
    assert spatc.Pattern.from_string(txt, "a").mask(4).sum() == 10


def test_pattern_error_has_diagnostics():
    with pytest.raises(spatc.PatternError) as e:
        spatc.Pattern.from_string("pattern x =\n  window(;\n",
                                  source_name="bad.pat")
    d = e.value.diagnostics
    assert d.startswith("bad.pat:2:10: error:") and "^" in d
    assert e.value.status == "SPAT_EPARSE" and str(e.value) == d.rstrip()


def test_missing_file_is_spat_error(tmp_path):
    with pytest.raises(spatc.SpatError) as e:
        spatc.Pattern.from_file(tmp_path / "none.pat")
    assert e.value.status == "SPAT_EIO" and not isinstance(
        e.value, spatc.PatternError)
    with pytest.raises(ValueError):
        spatc.Pattern.library("no_such_pattern")


def test_parameters_kwargs_set_copy():
    p = spatc.Pattern.library("longformer", w=8, g=2)
    assert p.params == {"w": 8, "g": 2}
    m = p.mask(16)[0]
    assert m[:2].all() and m[:, :2].all() and not m[8, 15]
    assert p.set(w=2) is p and p.params["w"] == 2
    assert p.mask(16)[0, 8].sum() == 3 + 2
    with pytest.raises(spatc.PatternError) as e:
        p.set(w=-4)
    assert "non-negative" in e.value.diagnostics
    assert p.params == {"w": 2, "g": 2}          # restored
    with pytest.raises(spatc.SpatError) as e:
        p.set(zz=1)
    assert "zz" in str(e.value)
    q = p.copy(w=16)
    assert q.params["w"] == 16 and p.params["w"] == 2 and q.key != p.key
    with pytest.raises(spatc.PatternError):
        spatc.Pattern.library("longformer", w=-2)
    with pytest.raises(TypeError):
        p.set(w=1.5)


def test_mask_size_bound_and_bad_sizes():
    p = spatc.Pattern.from_string("pattern f = full;")
    with pytest.raises(ValueError, match="MASK_MAX"):
        p.mask(1 << 14, heads=1 << 10)
    with pytest.raises(ValueError):
        p.mask(-1)
    assert p.mask(0, 5).shape == (1, 0, 5)


def test_inputs_and_runtime_in_masks():
    d = spatc.Pattern.library("document_bidir")
    doc = np.array([0, 0, 1, 1, 1, 2], np.int64)
    m = d.mask(6, inputs={"doc": doc})[0]
    assert (m == (doc[:, None] == doc[None, :])).all()
    with pytest.raises(ValueError, match="needs its input"):
        d.mask(6)
    with pytest.raises(ValueError, match="Lk = 6"):
        d.mask(6, inputs={"doc": doc[:5]})
    with pytest.raises(ValueError, match="no input"):
        d.mask(6, inputs={"doc": doc, "other": doc})
    s = spatc.Pattern.library("streaming_llm", w=2)
    m = s.mask(10, runtime={"n_sink": 3})[0]
    assert m[9, :3].all() and m[9, 7:].all() and not m[9, 3:7].any()
    assert s.mask(10)[0, 9, :4].all()            # default n_sink 4
    with pytest.raises(ValueError, match="runtime scalar"):
        s.mask(10, runtime={"n": 1})
    with pytest.raises(TypeError):
        s.mask(10, runtime={"n_sink": "3"})


def test_data_dependent_mask_needs_q_k():
    p = spatc.Pattern.from_string("pattern t = topk(3, causal);")
    assert p.info["data_dependent"]
    with pytest.raises(ValueError, match="data-dependent"):
        p.mask(8)
    q, k, _ = qkv(B=2, H=2, Lq=8, D=4)
    m = p.mask(None, q=q, k=k, batch=1)
    assert m.shape == (2, 8, 8)
    assert (m.sum(axis=2) == np.minimum(np.arange(8) + 1, 3)).all()
    s = np.einsum("id,jd->ij", q[1, 0], k[1, 0])
    s = np.where(np.tril(np.ones((8, 8), bool)), s, -np.inf)
    assert (np.argsort(-s, axis=1, kind="stable")[:, :3] ==
            np.argsort(-np.where(m[0], s, -np.inf), axis=1,
                       kind="stable")[:, :3]).all()


def test_counts_and_stats():
    p = spatc.Pattern.library("longformer", w=4, g=1)
    c = p.counts(32, heads=2)
    assert (c == p.mask(32, heads=2).sum(axis=2)).all()
    s = p.stats(32, heads=2, D=8)
    assert s["nnz"] == int(c.sum()) and s["flops"] == 4 * s["nnz"] * 8
    assert s["density"] == pytest.approx(s["nnz"] / (2 * 32 * 32))
    assert s["keys_per_row"]["max"] == 32 and s["empty_rows"] == 0
    e = spatc.Pattern.from_string("pattern r = rows(0 .. 2);").stats(8)
    assert e["empty_rows"] == 6 and e["keys_per_row"]["min"] == 0


def test_explain():
    p = spatc.Pattern.library("longformer", w=64)
    t = p.explain(1024, heads=2, bq=64, bk=64)
    assert "longformer" in t and "plan" in t
    s = spatc.Pattern.library("streaming_llm", w=8)
    assert s.explain(256, runtime={"n_sink": 2}) != s.explain(256)
    with pytest.raises(spatc.SpatError):
        p.explain(256, bq=0)


def test_png_roundtrip_and_diff(tmp_path):
    a = spatc.Pattern.from_string("pattern a = causal;")
    b = spatc.Pattern.from_string("pattern b = window(2);")
    f = a.save_png(str(tmp_path / "a.png"), 16, heads=3, max_px=64)
    img = png.read(f)
    assert img.shape == (64, 3 * 64 + 2 * 2, 3)
    assert (img[0, 0] == png.ON).all() and (img[0, 63] == 255).all()
    assert (img[:, 64:66] == png.SEP).all()
    d = png.read(a.save_png(str(tmp_path / "d.png"), 16, diff=b, max_px=16))
    cols = {tuple(c) for c in d.reshape(-1, 3)}
    assert {tuple(png.ONLY_A.astype(int)), tuple(png.ONLY_B.astype(int)),
            tuple(png.BOTH.astype(int)), (255, 255, 255)} <= cols
    big = png.read(a.save_png(str(tmp_path / "b.png"), 3000, max_px=300))
    assert big.shape[:2] == (300, 300)      # downscaled: 10 x 10 per pixel
    assert 0 < big[150, 150, 0] < 255 or (big[150, 150] == png.ON).all()


def test_show_needs_matplotlib_or_works():
    p = spatc.Pattern.from_string("pattern a = causal;")
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            p.show(8)
        return
    fig = p.show(8)
    assert fig.axes[0].get_title().startswith("a(")
