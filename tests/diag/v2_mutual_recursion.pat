let f(x) = g(x) + 1;
let g(x) = f(x) - 1;
pattern p = where(f(i) == j);
