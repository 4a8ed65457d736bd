let b = 0;
pattern p = block(b);
