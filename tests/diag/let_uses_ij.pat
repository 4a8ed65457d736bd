let same = i - j;
pattern p = window(same);
