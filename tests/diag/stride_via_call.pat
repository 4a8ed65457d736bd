pattern strided(s = 4) = stride(s) & causal;
pattern p = strided(s = 2 - 2);
