pattern p(input x: float[Lk]) = where(x[j] > 0.0);
