pattern p = causal && window(4);
