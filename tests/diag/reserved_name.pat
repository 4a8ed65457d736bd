let window = 4;
pattern p(i = 3) = causal;
