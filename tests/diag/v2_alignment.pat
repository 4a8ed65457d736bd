pattern p aligned(bottom_right) = causal;
