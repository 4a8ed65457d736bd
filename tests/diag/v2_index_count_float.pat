pattern p(input rel: float[H, 2 * Lk - 1]) = causal with score s + rel[i - j];
