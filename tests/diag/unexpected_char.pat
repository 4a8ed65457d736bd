pattern p = window(4) $ causal;
let x = 3 @ 4;
