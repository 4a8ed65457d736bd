pattern p = window(1 << 64);
