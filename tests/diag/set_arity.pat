pattern q = rows(0 .. 4, 9) | cols();
