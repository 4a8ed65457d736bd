pattern p = causal with score (s > 0.5 ? s : 0.0);
