let f(x) = x <= 0 ? 0 : f(x - 1) + 1;
pattern p = where(f(i) == j);
