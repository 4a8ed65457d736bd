let big = 4_000_000_000;
pattern p = window(big * big);
