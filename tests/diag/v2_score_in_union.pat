pattern p = (causal with score s * 2.0) | window(4);
