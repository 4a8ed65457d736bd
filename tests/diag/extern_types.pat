extern fn near(int, float) -> int;
pattern p = causal;
