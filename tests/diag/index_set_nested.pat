pattern p = rows({1, {2}});
