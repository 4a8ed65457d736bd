pattern tk(k = 3, runtime n = 2) =
    causal & (window(2, 0) | topk(k, cols(0 .. 8) | stride(3))) | blocks(4) { topk(n, causal) };
