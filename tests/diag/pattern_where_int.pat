pattern p = window(causal);
