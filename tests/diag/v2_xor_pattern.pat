pattern p = causal ^ window(2);
