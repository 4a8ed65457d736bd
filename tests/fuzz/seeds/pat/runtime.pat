pattern rt(runtime n = 4, runtime m) =
    causal & (cols(0 .. n) | window(m, 0) | stride(n + 1) | dilated(m, n));
