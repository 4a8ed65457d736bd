pattern p(w = 4, g = q) = window(w);
