import "cycle_b.pat";
pattern c = window(b);
