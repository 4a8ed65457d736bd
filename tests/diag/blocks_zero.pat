pattern p(b = 0) = blocks(b) { causal };
