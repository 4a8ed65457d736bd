let let = 3;
pattern blocks = full;
pattern p(input runtime: int[]) = full;
let x = pattern;
