pattern p = window(-4) | causal;
