pattern longformer(w = 512) = wndow(w / 2) | causal;
