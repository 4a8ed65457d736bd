let x = 1 +;
