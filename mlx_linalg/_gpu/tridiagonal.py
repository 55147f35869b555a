"""Eigenvalues of symmetric tridiagonal matrices on the GPU: bisection on Sturm counts,
one thread per eigenvalue (the ``tridiagonal_eigenvalues`` kernel,
``metal/tridiagonal_eigenvalues.metal``; LAPACK's sstebz), ascending."""

import mlx.core as mx

from mlx_linalg import _kernels

# Threads per threadgroup (one eigenvalue each).
THREADS = 128


def tridiagonal_eigenvalues_launch(shape: tuple[int, int]) -> dict:
    """The kernel's launch arguments for (B, n) diagonals; shared with the CPU emulation in
    tests."""
    batch, n = shape
    threads = -(-batch * n // THREADS) * THREADS
    return {
        "template": {},
        "grid": (threads, 1, 1),
        "threadgroup": (THREADS, 1, 1),
        "output_shapes": [(batch, n)],
    }


def tridiagonal_eigenvalues(d: mx.array, e: mx.array) -> mx.array:
    """The eigenvalues of the symmetric tridiagonal matrices with diagonal ``d`` and
    subdiagonal ``e``, ascending.

    Args:
        d: (..., n) float32. On a GPU.
        e: (..., n - 1) float32.

    Returns:
        (..., n) float32, each within O(u ‖T‖) of the exact eigenvalues (sstebz's
        accuracy); all NaN for a matrix with a NaN or Inf entry.

    Raises:
        ValueError: for other dtypes or shapes that do not match.
        RuntimeError: where MLX has no GPU backend (from the kernel layer).
    """
    if d.dtype != mx.float32 or e.dtype != mx.float32:
        raise ValueError(f"[tridiagonal_eigenvalues] expected float32, got {d.dtype} and {e.dtype}")
    n = d.shape[-1] if d.ndim else 0
    if d.ndim < 1 or e.shape != (*d.shape[:-1], max(n - 1, 0)):
        raise ValueError(
            "[tridiagonal_eigenvalues] expected d (..., n) and e (..., n - 1), got shapes "
            f"{d.shape} and {e.shape}"
        )
    batch_shape = d.shape[:-1]
    flat_d = d.reshape(-1, n)
    if flat_d.size == 0:
        return mx.zeros(d.shape, mx.float32)
    # The kernel reads e as (B, n): pad the last subdiagonal entry (never read).
    flat_e = mx.pad(e.reshape(-1, n - 1), [(0, 0), (0, 1)])
    (w,) = _kernels.launch(
        "tridiagonal_eigenvalues",
        [flat_d, flat_e],
        **tridiagonal_eigenvalues_launch(flat_d.shape),
    )
    return w.reshape(*batch_shape, n)
