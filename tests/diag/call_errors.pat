pattern p(runtime n = 4, input d: int[]) = cols(0 .. n) | where(d[i] == n);
pattern q = p(n = 3);
pattern r = p(d = 1) | full(2) | where(causal);
