pattern p = where(i = j);
