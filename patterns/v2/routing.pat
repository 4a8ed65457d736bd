# Routing attention (Routing Transformer).
#
# Aurko Roy, Mohammad Saffar, Ashish Vaswani, David Grangier.  "Efficient
# Content-Based Sparse Attention with Routing Transformers."  TACL 2021.
# arXiv:2003.05997.
#
# Section 4: queries and keys are assigned to the nearest of n centroids
# (online k-means, per head); a query attends to the keys of its own
# cluster, causally in the decoder.  route(C) assigns x to
# argmax_t dot(x, C[h, t]) (ties to the smaller t; with unit-norm
# centroids and inputs, as in the paper, the nearest centroid).  The paper
# combines routing heads with local-attention heads:
#
#   routing        causal & same cluster
#   routing_local  heads h < n_local see a causal window of w keys instead

pattern routing(n = 16, input centroids: float[H, n, D]) =
    causal & route(centroids);

pattern routing_local(n = 16, n_local = 1, w = 256, input centroids: float[H, n, D]) =
    causal & (h < n_local ? window(w - 1, 0) : route(centroids));
