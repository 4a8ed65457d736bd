pattern p = where(doc[i] == 0) | lf(3) | window(4) & where(i - j) ? full : none;
