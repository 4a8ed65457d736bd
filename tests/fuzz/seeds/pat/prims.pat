pattern prims(w = 3, s = 4) =
    causal & (window(w, 1) | dilated(2, 3) | block(4) | stride(s)) | rows(0 .. 2) | cols({1, -1}) | global(-2 .. -1) - none | random(2, 7);
