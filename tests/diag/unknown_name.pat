let base = 64;
pattern p = window(bse) & causal;
