let a = b + 1;
let b = a * 2;
pattern p = window(a);
