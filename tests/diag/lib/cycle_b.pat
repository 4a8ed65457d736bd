import "cycle_c.pat";
let b = 1;
