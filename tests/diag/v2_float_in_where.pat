pattern p(input slope: float[H]) = where(slope[h] > 0) with score s;
