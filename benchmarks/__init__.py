"""Benchmarks of mlx_linalg against its peers: run ``python -m benchmarks --help``."""
