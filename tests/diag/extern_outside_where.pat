extern fn near(int, int) -> bool;
pattern p = window(near(1, 2));
