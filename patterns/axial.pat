# Axial attention.
#
# Jonathan Ho, Nal Kalchbrenner, Dirk Weissenborn, Tim Salimans.  "Axial
# Attention in Multidimensional Transformers."  2019.  arXiv:1912.12180.
#
# Section 3: on an image Wimg pixels wide, flattened row-major, a layer
# attends along one axis only: a row (same y = p / Wimg) or a column (same
# x = p % Wimg).  The autoregressive Axial Transformer uses the masked
# versions (only earlier pixels in raster order: j <= i), Section 3.1.
#
#   axial_row     M(i, j) = i / Wimg == j / Wimg
#   axial_column  M(i, j) = i % Wimg == j % Wimg
#   axial         both axes in one kernel: even heads rows, odd heads columns
# masked = 1 intersects each with causal.  A row is block(Wimg), a column
# stride(Wimg) (i - j a multiple of Wimg), which the tile plan maps exactly.

pattern axial_row(Wimg = 64, masked = 0) =
    (masked ? causal : full) & block(Wimg);

pattern axial_column(Wimg = 64, masked = 0) =
    (masked ? causal : full) & stride(Wimg);

pattern axial(Wimg = 64, masked = 0) =
    (masked ? causal : full)
    & (h % 2 == 0 ? block(Wimg) : stride(Wimg));
