pattern lf(w = 8) = window(w);
pattern p = lf(1, 2);
