pattern p(runtime n = h) = cols(0 .. n);
