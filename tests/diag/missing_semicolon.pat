pattern a = causal
pattern b = full;
let x = 3 + 4

# comment
let y = 2;
