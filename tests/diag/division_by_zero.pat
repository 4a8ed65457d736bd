let n = 0;
pattern p = window(100 / n);
