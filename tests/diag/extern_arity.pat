extern fn near(int, int) -> bool;
pattern p = causal & where(near(i));
