"""Private building blocks of the layers: validation and the normalization core."""
