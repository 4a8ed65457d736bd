pattern p = dilated(8, 0);
