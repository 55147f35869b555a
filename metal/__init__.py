"""Metal kernel sources of mlx_linalg, shipped as package data (loaded by ``mlx_linalg._kernels``)."""
