pattern p(input C: float[H, 4, D]) = blocks(16) { route(C) };
