pattern p(w) = window(w);
