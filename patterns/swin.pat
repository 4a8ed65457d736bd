# Swin Transformer: window attention and shifted window attention.
#
# Ze Liu, Yutong Lin, Yue Cao, Han Hu, Yixuan Wei, Zheng Zhang, Stephen Lin,
# Baining Guo.  "Swin Transformer: Hierarchical Vision Transformer using
# Shifted Windows."  ICCV 2021.  arXiv:2103.14030.
#
# Tokens of an image feature map Wimg pixels wide, row-major: position p is
# pixel (y, x) = (p / Wimg, p % Wimg).  Section 3.2:
#
#   W-MSA   self-attention inside non-overlapping ws x ws windows (M = 7):
#           M(i, j) = y_i / ws == y_j / ws  and  x_i / ws == x_j / ws
#           At the granularity of ws-token blocks (Wimg a multiple of ws) this
#           is one band of Wimg blocks (ws pixel rows) and every (Wimg / ws)-th
#           block in it: blocks(ws) { block(Wimg) & stride(Wimg / ws) }.
#   SW-MSA  the windows displaced by shift = floor(ws / 2) pixels, computed by a
#           cyclic shift of the map and a mask that keeps the pieces of a
#           wrapped-around window apart ("efficient batch computation for
#           shifted configuration").  Unrolled, the cyclic shift plus mask is
#           exactly a window grid offset by shift, with partial windows at the
#           borders:  g(v) = (v + ws - shift) / ws  and
#           M(i, j) = g(y_i) == g(y_j)  and  g(x_i) == g(x_j)
#           (window(ws * Wimg) bounds it, |y_i - y_j| < ws, for the tile plan)
#
# (for image sides that are multiples of ws, as Swin pads them to be).
# Swin's relative position bias B (Eq. 4) is a score term; see swin_rel.

pattern swin_window(Wimg = 56, ws = 7) =
    blocks(ws) { block(Wimg) & stride(Wimg / ws) };

pattern swin_shifted(Wimg = 56, ws = 7, shift = 3) =
    window(ws * Wimg) & where((i / Wimg + ws - shift) / ws == (j / Wimg + ws - shift) / ws
       && (i % Wimg + ws - shift) / ws == (j % Wimg + ws - shift) / ws);
