# 2D attention on an image of W columns flattened row by row (position
# p = row * W + col), written with where, / and %: the tile plan decides
# them by interval arithmetic over (query tile, key range) boxes.
#
# Swin Transformer (Liu et al. 2021, arXiv:2103.14030): non-overlapping
# ws x ws windows; the shifted variant rolls the image by s = ws / 2 on
# both axes first (torch.roll, so the windows wrap around the edges).
# Neighbourhood attention (Hassani et al. 2023, arXiv:2204.07143): the
# (2k+1) x (2k+1) neighbours of a pixel, the window clamped inside the
# image (NATTEN's), on an image of ceil(Lk / W) rows.

pattern swin(W = 64, ws = 8) =
    where(i / W / ws == j / W / ws && i % W / ws == j % W / ws);

pattern swin_shifted(W = 64, ws = 8, s = 4) =
    where((i / W + s) % W / ws == (j / W + s) % W / ws &&
          (i % W + s) % W / ws == (j % W + s) % W / ws);

pattern na2d(W = 64, k = 3) =
    where(abs(j / W - min(max(i / W, k), (Lk + W - 1) / W - 1 - k)) <= k &&
          abs(j % W - min(max(i % W, k), W - 1 - k)) <= k);
