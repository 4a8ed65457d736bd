import "../import_cycle.pat";
let c = 2;
