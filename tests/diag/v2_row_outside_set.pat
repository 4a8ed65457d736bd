pattern p(input v: int[H, 8]) = where(v[h] == j);
