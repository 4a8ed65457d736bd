pattern p(input doc: int[]) = where(doc == 3);
