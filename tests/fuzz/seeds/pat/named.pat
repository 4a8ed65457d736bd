pattern local(w = 2) = window(w, 0);
pattern mix(g = 1) = local(w = 3) | global(0 .. g) | local(1) & causal;
