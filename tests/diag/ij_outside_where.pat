pattern p = window(i - j);
