import "lib/cycle_b.pat";
pattern p = causal;
