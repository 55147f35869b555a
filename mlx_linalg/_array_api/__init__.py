"""Building blocks of ``mlx_linalg.array_api``: what MLX's namespace lacks for the Array API
2024.12 standard (device and copy keywords, dtype functions, data-dependent functions)."""
