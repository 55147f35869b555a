"""``mx.linalg``-compatible entry points that run mlx_linalg, for :func:`mlx_linalg.install`.

While installed, ``mx.linalg.<fn>`` must keep MLX's calling conventions (code written for
MLX keeps working) but compute with mlx_linalg (GPU paths, every dtype, NaN policy). Where the
two agree the mlx_linalg function itself is installed; where MLX's convention differs, the
adapter here translates:

| MLX convention | adapter |
| --- | --- |
| ``cholesky(a, upper=False)`` positional ``upper`` | forwards ``upper=`` |
| ``cross(a, b, axis=-1)`` positional ``axis`` | forwards ``axis=`` |
| ``eigh(a, UPLO="L")``, ``eigvalsh(a, UPLO="L")`` | "U" reads the upper triangle (as Aᴴ's lower) |
| ``svd(a, compute_uv=True)``: full U, Vt; ``compute_uv=False``: S | ``svd`` / ``svdvals`` |
| ``lu(a)`` -> ``(perm, L, U)`` with ``A = L[perm] @ U``, perm uint32 | from ``lu``'s P matrix |
| ``lu_factor(a)`` -> ``(LU, pivots)``, pivots uint32 | ``lu_factor`` with pivots cast |
| ``solve_triangular(a, b, *, upper=False)`` | ``solve_triangular(..., lower=not upper)`` |
"""

import mlx.core as mx

import mlx_linalg as la


def _lower_from(fn: str, a: mx.array, uplo: str) -> mx.array:
    """``a`` arranged so that its lower triangle holds the triangle ``uplo`` names."""
    if uplo not in ("L", "U"):
        raise ValueError(f"[mlx_linalg.{fn}] expected UPLO 'L' or 'U', got {uplo!r}")
    if uplo == "L":
        return a
    return mx.conj(mx.swapaxes(a, -1, -2))


def cholesky(a: mx.array, upper: bool = False, *, stream=None) -> mx.array:
    """``mx.linalg.cholesky`` convention; computes with :func:`mlx_linalg.cholesky`."""
    return la.cholesky(a, upper=upper, stream=stream)


def cross(a: mx.array, b: mx.array, axis: int = -1, *, stream=None) -> mx.array:
    """``mx.linalg.cross`` convention; computes with :func:`mlx_linalg.cross`."""
    return la.cross(a, b, axis=axis, stream=stream)


def eigh(a: mx.array, UPLO: str = "L", *, stream=None) -> tuple[mx.array, mx.array]:  # noqa: N803
    """``mx.linalg.eigh`` convention (``UPLO`` picks the triangle read)."""
    return la.eigh(_lower_from("eigh", mx.array(a), UPLO), stream=stream)


def eigvalsh(a: mx.array, UPLO: str = "L", *, stream=None) -> mx.array:  # noqa: N803
    """``mx.linalg.eigvalsh`` convention (``UPLO`` picks the triangle read)."""
    return la.eigvalsh(_lower_from("eigvalsh", mx.array(a), UPLO), stream=stream)


def svd(a: mx.array, compute_uv: bool = True, *, stream=None):
    """``mx.linalg.svd`` convention: ``(U, S, Vt)`` with full U and Vt, or ``S`` alone."""
    if not compute_uv:
        return la.svdvals(a, stream=stream)
    return la.svd(a, full_matrices=True, stream=stream)


def lu(a: mx.array, *, stream=None) -> tuple[mx.array, mx.array, mx.array]:
    """``mx.linalg.lu`` convention: ``(perm, L, U)`` with ``A = L[perm] @ U``, perm uint32."""
    p, lower, upper = la.lu(a, stream=stream)
    return mx.argmax(p, axis=-1).astype(mx.uint32), lower, upper


def lu_factor(a: mx.array, *, stream=None) -> tuple[mx.array, mx.array]:
    """``mx.linalg.lu_factor`` convention: packed ``LU`` and uint32 LAPACK ``pivots``."""
    packed, pivots = la.lu_factor(a, stream=stream)
    return packed, pivots.astype(mx.uint32)


def solve_triangular(a: mx.array, b: mx.array, *, upper: bool = False, stream=None) -> mx.array:
    """``mx.linalg.solve_triangular`` convention (``upper`` keyword, lower by default)."""
    return la.solve_triangular(a, b, lower=not upper, stream=stream)


ADAPTERS = {
    "cholesky": cholesky,
    "cross": cross,
    "eigh": eigh,
    "eigvalsh": eigvalsh,
    "lu": lu,
    "lu_factor": lu_factor,
    "solve_triangular": solve_triangular,
    "svd": svd,
}
