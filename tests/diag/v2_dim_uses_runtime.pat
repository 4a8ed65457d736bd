pattern p(runtime n, input x: int[n]) = where(x[0] == 0);
