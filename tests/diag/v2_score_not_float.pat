pattern p = causal with score window(3);
