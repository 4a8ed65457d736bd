pattern p = causal with score s % 2.0;
