pattern a = causal with score s + 1.0;
pattern p = a & window(8);
