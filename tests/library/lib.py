"""lib.py: the pattern library (patterns/*.pat) against each paper's formula,
written here separately in numpy (and not the way the .pat writes it where
the paper gives a construction: Swin's cyclic shift and region mask, NAT's
shifted neighbourhood start).  Positions are absolute (bottom-right: query
row r is at i = r + max(Lk - Lq, 0)); sizes include non-multiples of the
tile size 64, Lq != Lk (both ways) and B > 1, and non-default parameters.
The harness (tests/gym/harness.py) compares `spatc mask` cell by cell and
`spatc run` (o, lse) value by value.
Run: SPATC=build/spatc python3 tests/library/lib.py [NAME-FILTER...]"""
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

if __name__ == '__main__':
    sys.exit(main(CASES, ROOT))
