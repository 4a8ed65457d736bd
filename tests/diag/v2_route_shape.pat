pattern p(input C: float[H, 4]) = route(C);
