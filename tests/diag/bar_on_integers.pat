pattern p = where(i < j | j > 3);
