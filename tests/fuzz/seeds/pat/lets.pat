let p0 = window(1);
let p1 = p0 | (p0 & stride(2));
let p2 = p1 | (p1 & stride(3));
let p3 = p2 | (p2 & stride(5));
pattern deep = p3 - (causal & !p1);
