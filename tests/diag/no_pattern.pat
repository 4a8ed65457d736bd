let w = 4;
let local = window(w);
