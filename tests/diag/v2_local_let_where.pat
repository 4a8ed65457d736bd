pattern p(W = 4) = let x = i / W in window(x);
