pattern lf(w = 8, g = 1) = window(w) | global(0 .. g);
pattern p = lf(width = 2);
