# Sparse Transformer: strided and fixed factorized attention.
#
# Rewon Child, Scott Gray, Alec Radford, Ilya Sutskever.  "Generating Long
# Sequences with Sparse Transformers."  2019.  arXiv:1904.10509.
#
# Section 4.2 (autoregressive, every set is a subset of {j : j <= i}):
#   strided:  A1(i) = {t, t+1, ..., i} with t = max(0, i - l)
#             A2(i) = {j : (i - j) mod l = 0}
#   fixed:    A1(i) = {j : floor(j / l) = floor(i / l)}
#             A2(i) = {j : j mod l in {t, t+1, ..., l}},  t = l - c
# (j mod l never equals l, so A2 of fixed is the last c columns of every
# block of l: the "summary" cells.)  Section 4.3 gives three ways to use the
# two sets; both are offered here:
#   split = 0  one merged head attends to A1 u A2 (the paper's "merged head")
#   split = 1  multi-head: even heads attend to A1, odd heads to A2
# Defaults: l = 128 (about sqrt(n) for n = 16384), c = 8 (Section 4.2:
# c in {8, 16, 32} for l in {128, 256}).

pattern strided(l = 128, split = 0) =
    causal & (split ? (h % 2 == 0 ? window(l, 0) : stride(l))
                    : window(l, 0) | stride(l));

pattern fixed(l = 128, c = 8, split = 0) =
    causal & (split ? (h % 2 == 0 ? block(l) : where(j % l >= l - c))
                    : block(l) | where(j % l >= l - c));
