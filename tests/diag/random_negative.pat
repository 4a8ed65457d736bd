pattern p = random(0 - 3, 42);
