pattern p = causal - 1;
