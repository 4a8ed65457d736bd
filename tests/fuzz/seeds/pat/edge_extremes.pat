pattern ex(runtime n = 9223372036854775807) =
    stride(9223372036854775806) | dilated(1, 9223372036854775807) | blocks(2) { stride(9223372036854775807) } | where(j + n > 0) | window(n, n);
