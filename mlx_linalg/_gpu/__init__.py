"""GPU implementations: MLX graphs and kernels from metal/, the same on Metal and CUDA."""
