pattern p(input C: int[H, 4, D]) = route(C);
