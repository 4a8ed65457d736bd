pattern hs(runtime n = 1) =
    h % 2 == 0 ? window(h + 1, 0) : (h < n ? stride(h + 2) : full) & where(i - j <= H + Lq - Lk);
