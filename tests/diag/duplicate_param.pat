pattern p(w = 1, w = 2) = window(w);
