let local = window(4);
pattern p = local(3);
