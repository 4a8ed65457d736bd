pattern p(w = 4) = w > 2 ? window(w) : 3;
