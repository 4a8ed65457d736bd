pattern docs(input doc: int[], runtime n = 2) =
    causal & where(doc[i] == doc[j] && j + n > i) | where(doc[j] % 2 == 0);
