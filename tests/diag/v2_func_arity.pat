let f(x, y) = x + y;
pattern p = where(f(i) == j);
