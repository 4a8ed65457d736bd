pattern p = window(0 .. 4);
let s = {1, 2};
