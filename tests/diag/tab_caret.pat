pattern p =
	causal &		window(unknown);
