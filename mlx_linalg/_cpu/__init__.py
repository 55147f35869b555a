"""CPU implementations through LAPACK (NumPy and SciPy), eager, zero-copy from MLX arrays."""
