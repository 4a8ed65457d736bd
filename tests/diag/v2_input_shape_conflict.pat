pattern a(input d: int[Lk]) = where(d[i] == 0);
pattern p(input d: int[B, Lk]) = a & where(d[0, j] == 0);
