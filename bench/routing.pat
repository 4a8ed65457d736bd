# Benchmark patterns (not part of the library): routing attention as an
# equality join on cluster ids that are not sorted along the sequence
# (Roy et al. 2021, Routing Transformer: each token attends to the tokens
# of its cluster).  The ids are scrambled from the input c (the bench fills
# it) and the position, so about 1 / n of the keys share a query's cluster,
# in no order.
pattern routing_unsorted(n = 16, input c: int[]) =
    where((c[i] + i * 40503) % 1009 % n == (c[j] + j * 40503) % 1009 % n);

# The same with clusters in contiguous runs (the input's documents).
pattern routing_sorted(input c: int[]) = where(c[i] == c[j]);

# route(C) itself (language version 2): clusters from 16 centroids per head
# (spatc bench fills [H, n, D] inputs with random values), computed once
# per run and run as an equality join on the ids.
pattern routing_route(n = 16, input C: float[H, n, D]) = route(C);
