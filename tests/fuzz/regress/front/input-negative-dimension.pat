pattern p(input doc: int[B- Lk]) = where(doc[i] == doc[j]);
