pattern p(w = H / 2) = window(w);
