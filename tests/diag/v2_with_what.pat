pattern p = causal with scale 2.0;
