# Neighborhood attention (2D).
#
# Ali Hassani, Steven Walton, Jiachen Li, Shen Li, Humphrey Shi.
# "Neighborhood Attention Transformer."  CVPR 2023.  arXiv:2204.07143.
#
# Section 3.1: each pixel attends to its k x k nearest neighbours; near the
# border, where the neighbourhood would leave the map, it is shifted inward
# so that every query still sees k x k keys (unlike a zero-padded sliding
# window).  Tokens are pixels of a Wimg x Himg map, row-major, (y, x) =
# (p / Wimg, p % Wimg); k odd (7 in the paper).  The neighbourhood's
# centre is the query clamped k / 2 pixels away from every edge:
#
#   c_y = clamp(y_i, k / 2, Himg - 1 - k / 2),  likewise c_x with Wimg
#   M(i, j) = |c_y - y_j| <= k / 2  and  |c_x - x_j| <= k / 2
#
# (|y_i - y_j| < k, so window(k * Wimg) bounds it, for the tile plan.)

pattern na2d(Wimg = 56, Himg = 56, k = 7) =
    window(k * Wimg) & where(abs(min(max(i / Wimg, k / 2), Himg - 1 - k / 2) - j / Wimg) <= k / 2
       && abs(min(max(i % Wimg, k / 2), Wimg - 1 - k / 2) - j % Wimg) <= k / 2);
