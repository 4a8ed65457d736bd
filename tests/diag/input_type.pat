pattern p(input doc: int) = where(doc[i] == doc[j]);
