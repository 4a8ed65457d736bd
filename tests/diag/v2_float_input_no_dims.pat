pattern p(input x: float[]) = causal with score s + x[0];
