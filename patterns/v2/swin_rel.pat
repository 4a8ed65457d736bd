# Swin Transformer windows with the relative position bias.
#
# Ze Liu, Yutong Lin, Yue Cao, Han Hu, Yixuan Wei, Zheng Zhang, Stephen Lin,
# Baining Guo.  "Swin Transformer: Hierarchical Vision Transformer using
# Shifted Windows."  ICCV 2021.  arXiv:2103.14030.
#
# Section 3.2, Eq. (4): Attention(Q, K, V) = SoftMax(Q K^T / sqrt(d) + B) V
# inside each window, B[h, dy, dx] a learned bias for the offsets dy, dx in
# [-(ws - 1), ws - 1] between two pixels, a (2 ws - 1)^2 table per head
# (rpb), read at (dy + ws - 1) * (2 ws - 1) + dx + ws - 1 as Swin's
# relative_position_index does.  The masks are those of ../swin.pat
# (swin_window, swin_shifted); inside one window, shifted or not, the
# offsets are those of the pixels in the image.

pattern swin_rel(Wimg = 56, ws = 7, input rpb: float[H, (2 * ws - 1) * (2 * ws - 1)]) =
    blocks(ws) { block(Wimg) & stride(Wimg / ws) }
    with score s + rpb[h, (i / Wimg - j / Wimg + ws - 1) * (2 * ws - 1) + i % Wimg - j % Wimg + ws - 1];

pattern swin_shifted_rel(Wimg = 56, ws = 7, shift = 3,
                         input rpb: float[H, (2 * ws - 1) * (2 * ws - 1)]) =
    window(ws * Wimg) & where((i / Wimg + ws - shift) / ws == (j / Wimg + ws - shift) / ws
                           && (i % Wimg + ws - shift) / ws == (j % Wimg + ws - shift) / ws)
    with score s + rpb[h, (i / Wimg - j / Wimg + ws - 1) * (2 * ws - 1) + i % Wimg - j % Wimg + ws - 1];
