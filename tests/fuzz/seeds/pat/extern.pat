extern fn near(int, int) -> bool;
extern fn pick(int) -> bool;
pattern e(runtime n = 1) = where(near(i, j) || pick(j + n)) & !cols({0});
