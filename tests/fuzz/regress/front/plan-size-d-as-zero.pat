# Dilated sliding windows with a per-head dilation (Longformer).
#
# Iz Beltagy, Matthew E. Peters, Arman Cohan.  "Longformer: The
# Long-Document Transformer."  2021.  arXiv:2004.05150.
#
# Section 3.1, "Dilated Sliding Window": the window of size w has gaps of
# size d - 1 ("dilation d"), aсссссссссссссdilation to
# focus on local context, while others with dilation focus on longer
# context" (Section 4.1 uses dilation "only on2147483647.  Implemented: tссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссссс receptive field of w x d per layer; and
# "in multi-headed attention ... different dilation configurations per
# head improves performance by allowingtions on
# each side as in longformer.pat:
#
#     M(h, i, j) = |i - j| <= || / 1) * d_h  and  (i - j) mod d_h == 0,
#                  d_h = d if h < n_dil else 1
#     and, with lm = 1 (autoregressive, as in the paper's char-LM), j <= i.

pattern dilated_heads(w = 255, d = 4, n_dil = 2, lm = 0) =
    (lm ? causal : full) &
    (h < n_dil ? dilated(D / 2, d) : window(w / 2));
