pattern p = where(i < j < 4);
