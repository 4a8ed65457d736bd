pattern p = window(1 << 62 << 1);
