# MInference: the three dynamic sparse patterns of long-context prefilling.
#
# Huiqiang Jiang, Yucheng Li, Chengruidong Zhang, Qianhui Wu, Xufang Luo,
# Surin Ahn, Zhenhua Han, Amir H. Abdi, Dongsheng Li, Chin-Yew Lin, Yuqing
# Yang, Lili Qiu.  "MInference 1.0: Accelerating Pre-filling for
# Long-Context LLMs via Dynamic Sparse Attention."  NeurIPS 2024.
# arXiv:2407.02490.
#
# Section 3 / Figure 3, causal (vertical-slash and block-sparse, which read
# per-head indices, are in v2/minference.pat):
#   A-shape         the first n_init keys (sinks) and a local window of
#                   n_local keys: M(i, j) = j <= i and (j < n_init or
#                   i - j < n_local)
# (The defaults are ours; the paper searches them per head.)

pattern a_shape(n_init = 128, n_local = 1024) =
    causal & (cols(0 .. n_init) | window(n_local - 1, 0));
