import "lib.pat";
pattern b(runtime n = 2) = a(g = 2) & window(2) | cols(0 .. n);
