pattern p(input a: int[4], input x: int[a[0]]) = where(x[0] == 0);
