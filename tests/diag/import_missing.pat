import "lib/does_not_exist.pat";
pattern p = causal;
