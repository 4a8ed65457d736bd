import "lib/never.pat
pattern p = causal;
