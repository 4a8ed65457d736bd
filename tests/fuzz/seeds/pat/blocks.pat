pattern bb(b = 4, runtime r = 1) =
    blocks(b) { window(1) | random(r, 3) | global(0 .. 1) } | blocks(2) { blocks(2) { block(2) } };
