"""Metal kernel sources of mlx_linalg, shipped as package data (read by mlx_linalg._kernels)."""
