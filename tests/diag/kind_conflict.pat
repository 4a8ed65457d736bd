pattern a(runtime doc = 1) = window(doc);
pattern p(input doc: int[]) = a | where(doc[i] == doc[j]);
