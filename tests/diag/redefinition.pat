let w = 4;
pattern w = window(4);
