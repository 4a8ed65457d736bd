let w = 8;
pattern p = w * 2;
