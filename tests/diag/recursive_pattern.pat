pattern a = b | causal;
pattern b = a & window(4);
