pattern sinks(runtime n = 4) = causal & cols(0 .. n);
pattern p = sinks(n = 2);
