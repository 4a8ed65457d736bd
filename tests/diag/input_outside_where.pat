pattern p(input doc: int[]) = window(doc[0]);
