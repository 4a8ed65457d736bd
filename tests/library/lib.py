"""lib.py: the pattern library (patterns/*.pat) against each paper's formula,
written here separately in numpy (and not the way the .pat writes it where
the paper gives a construction: Swin's cyclic shift and region mask, NAT's
shifted neighbourhood start).  Positions are absolute (bottom-right: query
row r is at i = r + max(Lk - Lq, 0)); sizes include non-multiples of the
tile size 64, Lq != Lk (both ways) and B > 1, and non-default parameters.
The harness (tests/gym/harness.py) compares `spatc mask` cell by cell and
`spatc run` (o, lse) value by value.
Run: SPATC=build/spatc python3 tests/library/lib.py [NAME-FILTER...]"""
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'gym'))
from harness import Case, main  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
P = 'patterns/'


# ---- 2-D image patterns: a full N x N mask over the image's pixels --------

def image_sizes(N, B=2):
    """Lq = Lk = N, Lq < Lk, Lq > Lk (then the keys are the first Lk
    pixels), B > 1; N itself is chosen not a multiple of 64."""
    return [(1, 2, N, N), (B, 1, N - 37, N), (1, 1, N, N - 45)]


def from_image(full):
    """A mask over the N image positions, read at (i, j)."""
    return lambda c: full[c.i, c.j]


def swin_window_ref(Himg, Wimg, ws):
    """Window partition (Swin's window_partition): window id per pixel."""
    y, x = np.divmod(np.arange(Himg * Wimg), Wimg)
    win = (y // ws) * (Wimg // ws) + x // ws
    return win[:, None] == win[None, :]


def swin_shifted_ref(Himg, Wimg, ws, s):
    """Swin's SW-MSA as its reference code builds it: label the shifted map's
    regions (slices [0, -ws), [-ws, -s), [-s, end) on each axis), roll the
    map by (-s, -s), partition into windows; two pixels attend when they
    land in the same window with the same region label."""
    img = np.zeros((Himg, Wimg), dtype=np.int64)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
        for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            img[hs, wsl] = cnt
            cnt += 1
    # the shifted map holds at (y', x') the pixel ((y' + s) % H, (x' + s) % W)
    yy, xx = np.divmod(np.arange(Himg * Wimg), Wimg)
    ys, xs = (yy - s) % Himg, (xx - s) % Wimg           # where pixel p lands
    win = (ys // ws) * (Wimg // ws) + xs // ws
    region = img[ys, xs]
    return (win[:, None] == win[None, :]) & (region[:, None] == region[None, :])


def na2d_ref(Himg, Wimg, k):
    """NAT: the k x k window starting at clamp(y - k // 2, 0, Himg - k)."""
    y, x = np.divmod(np.arange(Himg * Wimg), Wimg)
    sy = np.clip(y - k // 2, 0, Himg - k)
    sx = np.clip(x - k // 2, 0, Wimg - k)
    return ((y[None, :] >= sy[:, None]) & (y[None, :] < sy[:, None] + k)
            & (x[None, :] >= sx[:, None]) & (x[None, :] < sx[:, None] + k))


def axial_ref(Wimg, masked, which):
    def mask(c):
        row = (c.i // Wimg) == (c.j // Wimg)
        col = (c.i % Wimg) == (c.j % Wimg)
        m = {'row': row, 'column': col, 'both': np.where(c.h % 2 == 0, row, col)}[which]
        return m & (c.j <= c.i) if masked else m
    return mask


def a_shape_ref(n_init, n_local):
    return lambda c: (c.j <= c.i) & ((c.j < n_init) | (c.i - c.j < n_local))


# ---- the cases --------------------------------------------------------------

SIZES_1D = [(1, 2, 100, 100), (2, 1, 70, 130), (1, 1, 130, 70), (1, 1, 200, 200)]


def image_case(name, pattern, file, ref, Himg, Wimg, defines, **kw):
    full = ref
    return Case(name, P + file, pattern, from_image(full),
                image_sizes(Himg * Wimg), defines=defines, **kw)


CASES = [
    image_case('swin_window 14x14 ws7', 'swin_window', 'swin.pat',
               swin_window_ref(14, 14, 7), 14, 14, {'Wimg': 14}),
    image_case('swin_window 12x16 ws4', 'swin_window', 'swin.pat',
               swin_window_ref(12, 16, 4), 12, 16, {'Wimg': 16, 'ws': 4}),
    image_case('swin_shifted 14x14 ws7 s3', 'swin_shifted', 'swin.pat',
               swin_shifted_ref(14, 14, 7, 3), 14, 14, {'Wimg': 14}),
    image_case('swin_shifted 12x16 ws4 s2', 'swin_shifted', 'swin.pat',
               swin_shifted_ref(12, 16, 4, 2), 12, 16, {'Wimg': 16, 'ws': 4, 'shift': 2}),
    image_case('swin_shifted 9x15 ws3 s1', 'swin_shifted', 'swin.pat',
               swin_shifted_ref(9, 15, 3, 1), 9, 15, {'Wimg': 15, 'ws': 3, 'shift': 1}),
    image_case('na2d 11x11 k7', 'na2d', 'neighborhood.pat', na2d_ref(11, 11, 7), 11, 11,
               {'Wimg': 11, 'Himg': 11}),
    image_case('na2d 9x14 k3', 'na2d', 'neighborhood.pat', na2d_ref(9, 14, 3), 9, 14,
               {'Wimg': 14, 'Himg': 9, 'k': 3}),
    image_case('na2d 13x10 k5', 'na2d', 'neighborhood.pat', na2d_ref(13, 10, 5), 13, 10,
               {'Wimg': 10, 'Himg': 13, 'k': 5}),
    Case('axial_row W=10', P + 'axial.pat', 'axial_row', axial_ref(10, 0, 'row'), SIZES_1D,
         defines={'Wimg': 10}),
    Case('axial_column W=13 masked', P + 'axial.pat', 'axial_column', axial_ref(13, 1, 'column'),
         SIZES_1D, defines={'Wimg': 13, 'masked': 1}),
    Case('axial W=9', P + 'axial.pat', 'axial', axial_ref(9, 0, 'both'),
         [(1, 2, 100, 100), (2, 3, 70, 130), (1, 4, 130, 70)], defines={'Wimg': 9}),
    Case('axial W=64 masked', P + 'axial.pat', 'axial', axial_ref(64, 1, 'both'),
         [(1, 2, 300, 300), (2, 2, 150, 333)], defines={'masked': 1}),
    Case('a_shape default', P + 'minference.pat', 'a_shape', a_shape_ref(128, 1024),
         [(1, 1, 200, 200), (1, 2, 100, 1300), (2, 1, 1100, 1100)], check_mask=False),
    Case('a_shape 4/16', P + 'minference.pat', 'a_shape', a_shape_ref(4, 16), SIZES_1D,
         defines={'n_init': 4, 'n_local': 16}),
    Case('a_shape 64/30', P + 'minference.pat', 'a_shape', a_shape_ref(64, 30), SIZES_1D,
         defines={'n_init': 64, 'n_local': 30}),
]

# ---- score patterns and shaped inputs (language version 2) ------------------

def causal_ref(c):
    return c.j <= c.i


def slopes_input(c, rng):
    return {'slope': rng.uniform(0.01, 0.6, c.H).astype(np.float32)}


def alibi_ref(c, s):
    """Press et al. Eq. (Section 3): q_i k_j^T + m * -(i - j)."""
    m = c.inp['slope'].astype(np.float64).reshape(1, -1, 1, 1)
    return s + m * -(c.i - c.j)


def alibi_geometric_ref(c, s):
    """The paper's slopes: for 8 heads 1/2^1 .. 1/2^8; in general the
    geometric sequence starting at 2^(-8/H) with that ratio."""
    start = 2.0 ** (-8.0 / c.H)
    m = np.array([start * start ** h for h in range(c.H)]).reshape(1, -1, 1, 1)
    return s - m * (c.i - c.j)


def alibi_bidir_ref(c, s):
    m = c.inp['slope'].astype(np.float64).reshape(1, -1, 1, 1)
    return s - m * np.abs(c.i - c.j)


def softcap_ref(cap):
    return lambda c, s: cap * np.tanh(s / cap)


def t5_bucket_hf(relative_position, bidirectional, num_buckets=32, max_distance=128):
    """The reference bucketing (mesh-tensorflow / Hugging Face
    T5Attention._relative_position_bucket), in float32 as torch runs it."""
    rp = np.asarray(relative_position, dtype=np.int64)
    relative_buckets = np.zeros_like(rp)
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (rp > 0).astype(np.int64) * num_buckets
        rp = np.abs(rp)
    else:
        rp = -np.minimum(rp, np.zeros_like(rp))
    max_exact = num_buckets // 2
    is_small = rp < max_exact
    with np.errstate(divide='ignore', invalid='ignore'):
        large = (np.log(rp.astype(np.float32) / np.float32(max_exact))
                 / np.float32(math.log(max_distance / max_exact))
                 * np.float32(num_buckets - max_exact))
    large = max_exact + np.where(is_small, 0, large).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return relative_buckets + np.where(is_small, rp, large)


def t5_ref(bidirectional):
    def score(c, s):
        bucket = t5_bucket_hf(c.j - c.i, bidirectional)   # memory - query
        rel = c.inp['rel'].astype(np.float64)
        return s + rel[c.h, bucket]
    return score


def rel_input(c, rng):
    return {'rel': rng.standard_normal((c.H, 32)).astype(np.float32)}


def swin_rel_index(Wimg, ws):
    """Swin's relative_position_index, read for the pixels' coordinates:
    coords of the two pixels, relative = q - k, + (ws - 1), row * (2 ws - 1)."""
    def index(c):
        yi, xi = c.i // Wimg, c.i % Wimg
        yj, xj = c.j // Wimg, c.j % Wimg
        rel_y, rel_x = yi - yj + ws - 1, xi - xj + ws - 1
        return rel_y * (2 * ws - 1) + rel_x
    return index


def swin_rel_case(name, pattern, Himg, Wimg, ws, shift=None):
    full = swin_window_ref(Himg, Wimg, ws) if shift is None else \
        swin_shifted_ref(Himg, Wimg, ws, shift)
    idx = swin_rel_index(Wimg, ws)

    def score(c, s):
        m = full[c.i, c.j]
        return s + c.inp['rpb'].astype(np.float64)[c.h, np.where(m, idx(c), 0)]
    d = {'Wimg': Wimg, 'ws': ws}
    if shift is not None:
        d['shift'] = shift
    return Case(name, P + 'v2/swin_rel.pat', pattern, from_image(full), image_sizes(Himg * Wimg),
                score=score, inputs=rpb_input(ws), defines=d)


def rpb_input(ws):
    return lambda c, rng: {'rpb': rng.standard_normal((c.H, (2 * ws - 1) ** 2)).astype(np.float32)}


def route_ref(c):
    """Cluster = argmax_t dot(x, C[h, t]) in float64, ties to the smaller t."""
    C = c.inp['centroids'].astype(np.float64)            # [H, n, D]
    g = c.H // c.k.shape[1]
    kk = np.repeat(c.k.astype(np.float64), g, axis=1)
    cq = np.argmax(np.einsum('bhqd,hnd->bhqn', c.q.astype(np.float64), C), axis=-1)
    ck = np.argmax(np.einsum('bhkd,hnd->bhkn', kk, C), axis=-1)
    return (cq[..., :, None] == ck[..., None, :]) & (c.j <= c.i)


def routing_local_ref(n_local, w):
    def mask(c):
        local = (c.j <= c.i) & (c.i - c.j < w)
        return np.where(c.h < n_local, local, route_ref(c))
    return mask


def centroids_input(n):
    def inputs(c, rng):
        C = rng.standard_normal((c.H, n, c.D))
        C /= np.linalg.norm(C, axis=-1, keepdims=True)
        return {'centroids': C.astype(np.float32)}
    return inputs


def vs_inputs(nv, ns):
    def inputs(c, rng):
        v = rng.integers(-c.Lk, c.Lk, (c.H, nv))        # negatives count from the end
        sl = rng.integers(-5, max(c.Lq, c.Lk), (c.H, ns))  # offsets taken as written
        return {'vidx': v.astype(np.int32), 'sidx': sl.astype(np.int32)}
    return inputs


def vs_ref(c):
    """MInference vertical-slash: key columns vidx[h] and diagonals i - j in
    sidx[h], causal; built by marking each head's columns and diagonals."""
    M = np.zeros((c.H, c.Lq, c.Lk), dtype=bool)
    for h in range(c.H):
        for v in c.inp['vidx'][h]:
            M[h, :, v % c.Lk if v < 0 else v] = True
        for d in c.inp['sidx'][h]:
            for r in range(c.Lq):
                j = r + max(c.Lk - c.Lq, 0) - d
                if 0 <= j < c.Lk:
                    M[h, r, j] = True
    return M[None] & (c.j <= c.i)


def bs_inputs(b, nb):
    """nb key blocks per query block, drawn (MInference keeps the top ones)."""
    def inputs(c, rng):
        n = (max(c.Lq, c.Lk) + b - 1) // b
        nkb = (c.Lk + b - 1) // b
        m = np.zeros((c.H, n, nkb), dtype=np.int32)
        for h in range(c.H):
            for qb in range(n):
                m[h, qb, rng.choice(nkb, size=min(nb, nkb), replace=False)] = 1
        c.bidx = [[np.flatnonzero(m[h, qb]) for qb in range(n)] for h in range(c.H)]
        return {'bmask': m}
    return inputs


def bs_ref(b):
    """Each query block's chosen key blocks, marked block by block."""
    def mask(c):
        sel = np.zeros((c.H, c.Lq, c.Lk), dtype=bool)
        for h in range(c.H):
            for r in range(c.Lq):
                i = r + max(c.Lk - c.Lq, 0)
                for kb in c.bidx[h][i // b]:
                    sel[h, r, kb * b:(kb + 1) * b] = True
        return sel[None] & (c.j <= c.i)
    return mask


def doc_batch_inputs(c, rng):
    doc = np.zeros((c.B, c.Lk), dtype=np.int32)
    for bb in range(c.B):
        cuts = np.sort(rng.choice(np.arange(1, c.Lk), size=min(c.Lk - 1, 3 + bb), replace=False))
        doc[bb] = np.searchsorted(cuts, np.arange(c.Lk), side='right')
    return {'doc': doc}


def doc_batch_ref(causal):
    def mask(c):
        d = c.inp['doc']
        same = d[c.b, np.minimum(c.i, c.Lk - 1)] == d[c.b, c.j]
        return same & (c.j <= c.i) if causal else same
    return mask


V2 = [(1, 2, 100, 100), (2, 4, 70, 130), (2, 2, 130, 70), (1, 1, 200, 200)]
V2_LE = [(1, 2, 100, 100), (2, 4, 70, 130), (1, 1, 200, 200)]   # Lq <= Lk

# Version-2 cases run on the JIT and the interpreter, except those the JIT
# refuses (see INTERP_ONLY's entries): the interpreter only.
V2_BACKENDS = ('jit', 'interp')
INTERP_ONLY = ()

CASES_V2 = [
    swin_rel_case('swin_rel 14x14 ws7', 'swin_rel', 14, 14, 7),
    swin_rel_case('swin_rel 12x16 ws4', 'swin_rel', 12, 16, 4),
    swin_rel_case('swin_shifted_rel 14x14 ws7 s3', 'swin_shifted_rel', 14, 14, 7, 3),
    swin_rel_case('swin_shifted_rel 9x15 ws3 s1', 'swin_shifted_rel', 9, 15, 3, 1),
    Case('alibi', P + 'v2/alibi.pat', 'alibi', causal_ref, V2, score=alibi_ref,
         inputs=slopes_input, backends=V2_BACKENDS),
    Case('alibi_geometric', P + 'v2/alibi.pat', 'alibi_geometric', causal_ref,
         [(1, 8, 100, 100), (2, 4, 70, 130), (1, 2, 130, 70)], score=alibi_geometric_ref),
    Case('alibi_bidir', P + 'v2/alibi.pat', 'alibi_bidir', lambda c: c.j >= 0, V2,
         score=alibi_bidir_ref, inputs=slopes_input),
    Case('gemma2_global', P + 'v2/softcap.pat', 'gemma2_global', causal_ref, V2,
         score=softcap_ref(50), backends=V2_BACKENDS),
    Case('gemma2_global cap=2', P + 'v2/softcap.pat', 'gemma2_global', causal_ref, V2,
         score=softcap_ref(2), defines={'cap': 2}),
    Case('gemma2_local w=33 cap=3', P + 'v2/softcap.pat', 'gemma2_local',
         lambda c: (c.j <= c.i) & (c.i - c.j < 33), V2, score=softcap_ref(3),
         defines={'cap': 3, 'w': 33}),
    Case('t5_encoder', P + 'v2/t5.pat', 't5_encoder', lambda c: c.j >= 0,
         V2 + [(1, 1, 300, 333)], score=t5_ref(True), inputs=rel_input),
    Case('t5_decoder', P + 'v2/t5.pat', 't5_decoder', causal_ref,
         V2 + [(1, 1, 300, 333)], score=t5_ref(False), inputs=rel_input),
    Case('document_batch', P + 'v2/document_batch.pat', 'document_batch', doc_batch_ref(True), V2_LE,
         inputs=doc_batch_inputs, batch_inputs=('doc',)),
    Case('document_batch_bidir', P + 'v2/document_batch.pat', 'document_batch_bidir',
         doc_batch_ref(False), V2_LE, inputs=doc_batch_inputs, batch_inputs=('doc',)),
    Case('routing n=4', P + 'v2/routing.pat', 'routing', route_ref, V2,
         inputs=centroids_input(4), defines={'n': 4}, mask_qk=True),
    Case('routing_local n=3', P + 'v2/routing.pat', 'routing_local', routing_local_ref(1, 20),
         [(1, 3, 100, 100), (2, 2, 70, 130)], inputs=centroids_input(3),
         defines={'n': 3, 'w': 20}, mask_qk=True),
    Case('vertical_slash', P + 'v2/minference.pat', 'vertical_slash', vs_ref, V2,
         inputs=vs_inputs(5, 4), defines={'nv': 5, 'ns': 4}),
    Case('block_sparse b=16', P + 'v2/minference.pat', 'block_sparse', bs_ref(16), V2,
         inputs=bs_inputs(16, 3), defines={'b': 16}),
    Case('block_sparse b=64', P + 'v2/minference.pat', 'block_sparse', bs_ref(64),
         [(1, 2, 300, 300), (1, 1, 130, 300)], inputs=bs_inputs(64, 2)),
]
for _c in CASES_V2:
    _c.backends = ('interp',) if _c.name.startswith(INTERP_ONLY) else V2_BACKENDS


if __name__ == '__main__':
    sys.exit(main(CASES + CASES_V2, ROOT))
