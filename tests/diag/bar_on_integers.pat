pattern p = where(i < j) | 3;
