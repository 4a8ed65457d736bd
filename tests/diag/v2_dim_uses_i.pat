pattern p(input x: int[i, Lk]) = where(x[0, j] == 0);
