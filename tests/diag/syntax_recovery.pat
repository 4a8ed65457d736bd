pattern a = window(3) | (;
pattern b = full;
let = 4;
pattern c = block(2) block(3);
pattern d = causal
