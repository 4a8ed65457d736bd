pattern p = topk(-1, causal);
