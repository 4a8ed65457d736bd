# Native Sparse Attention style: causal sliding window | top-k key blocks.
#
# Jingyang Yuan, Huazuo Gao, Damai Dai, Junyu Luo, Liang Zhao, Zhengyan
# Zhang, Zhenda Xie, Y. X. Wei, Lean Wang, Zhiping Xiao, Yuqing Wang,
# Chong Ruan, Ming Zhang, Wenfeng Liang, Wangding Zeng.  "Native Sparse
# Attention: Hardware-Aligned and Natively Trainable Sparse Attention."
# 2025.  arXiv:2502.11089.
#
# NSA combines, per query, a sliding window (w = 512), the top-n key blocks
# of size l' = 64 ranked by an importance score (n = 16), and a compressed
# branch.  Here the selection branch and the window are expressed as a
# mask (the compressed branch is not a mask and is left out); blocks are
# ranked as in the spec's blocks{topk}: by the dot product of the mean query
# of the query block with the mean key of each key block not after it.
#
#     M(h, i, j) = j <= i  and  (i - w <= j  or  j / b in Top_k(i / b)),
#     Top_k(I) = the k blocks J <= I with the largest
#                dot(mean q of block I, mean k of block J), ties to smaller J
#
# NSA's blocks are chosen from the compressed attention scores and its
# selection always includes the first block and the two local blocks; the
# mean-query/mean-key score is the Quest-style stand-in the language has.

pattern nsa(w = 512, b = 64, k = 16) =
    causal & (window(w, 0) | blocks(b) { topk(k, causal) });
