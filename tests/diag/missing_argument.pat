pattern lf(w, g = 1) = window(w) | global(0 .. g);
pattern p = lf(g = 2);
