let f(x) = x * 0.5;
pattern p = where(f(i) == j);
