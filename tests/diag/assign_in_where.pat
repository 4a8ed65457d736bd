pattern p = where(i + 1 = j);
