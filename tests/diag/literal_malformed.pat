pattern p = window(12ab) | block(1__0);
