pattern p = where(s > 0);
