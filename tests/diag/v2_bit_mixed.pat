pattern p = causal & 3;
