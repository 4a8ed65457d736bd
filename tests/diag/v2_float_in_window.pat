pattern p = window(1.5);
