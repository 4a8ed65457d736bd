pattern p = window(1, 2, 3) | causal(1);
