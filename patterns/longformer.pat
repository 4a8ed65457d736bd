# Longformer: sliding-window attention plus symmetric global attention.
#
# Iz Beltagy, Matthew E. Peters, Arman Cohan.  "Longformer: The
# Long-Document Transformer."  2020.  arXiv:2004.05150.
#
# Section 3.1: "Given a fixed window size w, each token attends to 1/2 w
# tokens on each side"; "global attention" on a few pre-selected tokens is
# symmetric: "a token with a global attention attends to all tokens across
# the sequence, and all tokens in the sequence attend to it".  Implemented:
#
#     M(i, j) = |i - j| <= w / 2   or   i < g   or   j < g
#
# (w / 2 is floor division; the g global tokens are the first g positions,
# e.g. [CLS] for classification with g = 1.)  Defaults: w = 512 as in the
# paper's pretraining, g = 1.  The dilated variant is dilated.pat.

pattern longformer(w = 512, g = 1) =
    window(w / 2) | global(0 .. g);
