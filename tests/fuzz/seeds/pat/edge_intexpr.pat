let a = 7;
let f = (a * 3 - 1) / 2 % 5;
let p = window(min(a, f), max(abs(-2), 1)) | where(i / 3 == j / 3 ? 1 : 0);
pattern ie(x = 9223372036854775807, y = -9223372036854775807 - 1) =
    p & where((i - j) % 3 != 1 || !(j >= i)) | stride(x) | window(0, x / 4);
