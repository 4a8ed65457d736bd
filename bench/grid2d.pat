# Benchmark patterns (not part of the library): the library's 2D windows
# (patterns/swin.pat, patterns/neighborhood.pat) written with where, / and %
# alone, without a hand-made window superset, on an image W columns wide
# flattened row by row (position p = row * W + col).  The tile plan decides
# them by interval arithmetic; swin and routing-like equalities of i alone
# and j alone run as joins.
#
# Swin Transformer (Liu et al. 2021, arXiv:2103.14030): ws x ws windows;
# the shifted variant's windows start `shift` pixels up and left (the cyclic
# shift with its region mask, as Swin computes it).  Neighbourhood attention
# (Hassani et al. 2023, arXiv:2204.07143): the (2k+1) x (2k+1) neighbours of
# a pixel, the window clamped inside the image (NATTEN's), on an image of
# ceil(Lk / W) rows.

pattern swin(W = 64, ws = 8) =
    where(i / W / ws == j / W / ws && i % W / ws == j % W / ws);

pattern swin_shifted(W = 64, ws = 8, shift = 4) =
    where((i / W + ws - shift) / ws == (j / W + ws - shift) / ws &&
          (i % W + ws - shift) / ws == (j % W + ws - shift) / ws);

pattern na2d(W = 64, k = 3) =
    where(abs(j / W - min(max(i / W, k), (Lk + W - 1) / W - 1 - k)) <= k &&
          abs(j % W - min(max(i % W, k), W - 1 - k)) <= k);
