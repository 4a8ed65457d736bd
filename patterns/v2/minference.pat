# MInference's dynamic patterns with per-head indices: vertical-slash and
# block-sparse (the A-shape pattern is in ../minference.pat).
#
# Huiqiang Jiang, Yucheng Li, Chengruidong Zhang, Qianhui Wu, Xufang Luo,
# Surin Ahn, Zhenhua Han, Amir H. Abdi, Dongsheng Li, Chin-Yew Lin, Yuqing
# Yang, Lili Qiu.  "MInference 1.0: Accelerating Pre-filling for
# Long-Context LLMs via Dynamic Sparse Attention."  NeurIPS 2024.
# arXiv:2407.02490.
#
# Section 3 / Figure 3, causal:
#   vertical-slash  a per-head set of key columns (vertical lines) and of
#                   diagonals i - j (slash lines): M(h, i, j) = j <= i and
#                   (j in vidx[h] or i - j in sidx[h])
#   block-sparse    per head and query block of b rows, the key blocks chosen
#                   (the top blocks by the estimate of pooled q k^T), as a
#                   0/1 block mask: M(h, i, j) = j <= i and
#                   bmask[h, i / b, j / b] != 0
# The indices are computed by the caller from the last queries
# (vertical-slash) or pooled blocks (block-sparse), as MInference does
# online; duplicates are allowed, negative column ids count from the end.
# (A list of key blocks per query block, cols(bidx[h, i]), is not an index
# set of the language: rows of inputs as index sets cannot depend on i.)

pattern vertical_slash(nv = 64, ns = 64, input vidx: int[H, nv], input sidx: int[H, ns]) =
    causal & (cols(vidx[h]) | diagonals(sidx[h]));

pattern block_sparse(b = 64, input bmask: int[H, (max(Lq, Lk) + b - 1) / b, (Lk + b - 1) / b]) =
    causal & blocks(b) { where(bmask[h, i, j] != 0) };
