"""Linear least squares."""

import mlx.core as mx

from mlx_linalg import _dispatch, _precision
from mlx_linalg._checks import (
    as_array,
    compute_dtype,
    default_rtol,
    prepare_rhs,
    real_dtype,
    require_matrix,
)
from mlx_linalg._devices import float64_on_cpu
from mlx_linalg._results import LstsqResult
from mlx_linalg._types import StreamOrDevice, Tolerance


@float64_on_cpu
def lstsq(
    a: mx.array, b: mx.array, rcond: Tolerance = None, *, stream: StreamOrDevice = None
) -> LstsqResult:
    """Minimum-norm least-squares solution of ``a x ≈ b``.

    Args:
        a: (..., M, N).
        b: (M,) or (..., M, K); an exactly 1-D ``b`` is a vector.
        rcond: singular values at most ``rcond * max(S)`` count as zero; default
            ``max(M, N) * eps`` with eps of the result dtype (float16/bfloat16 too,
            although they are computed in float32), as NumPy's default.
        stream: MLX stream or device.

    Returns:
        ``LstsqResult(solution, residuals, rank, s)``: solution (..., N) or (..., N, K);
        residuals (..., K) (K = 1 for a vector b): squared 2-norms of the columns of
        ``b − a x`` when M > N, else shape (..., 0); rank (...,) int32; s (..., min(M, N))
        singular values of ``a``.

    Notes:
        SVD-based LAPACK gelsd (divide and conquer).
        # Note: unlike NumPy, residuals are also returned for rank-deficient ``a`` (when
        # M > N), so a batch has one shape.

    See Also:
        scipy.linalg.lstsq, numpy.linalg.lstsq
    """
    a = as_array("lstsq", a, name="a")
    require_matrix("lstsq", a, name="a")
    b = as_array("lstsq", b, name="b")
    computed, result = compute_dtype("lstsq", a, b)
    m, n = a.shape[-2:]
    a, b, vector = prepare_rhs("lstsq", a.astype(computed), b.astype(computed), rows=m)
    if rcond is None:
        rcond = default_rtol(a.shape, result)
    x, rank, s = _solve(a, b, float(rcond), stream)
    if m > n:
        r = b - _precision.matmul(a, x, stream=stream)
        residuals = (mx.abs(r) ** 2).sum(axis=-2)
    else:
        residuals = mx.zeros(b.shape[:-2] + (0,), dtype=real_dtype(computed))
    solution = x[..., 0] if vector else x
    return LstsqResult(
        solution.astype(result),
        residuals.astype(real_dtype(result)),
        rank,
        s.astype(real_dtype(result)),
    )


def _solve(a: mx.array, b: mx.array, rcond: float, stream: StreamOrDevice) -> tuple:
    """``(x, rank, s)`` of LAPACK gelsd, which takes neither empty matrices nor K = 0."""
    batch, (m, n), k = tuple(a.shape[:-2]), tuple(a.shape[-2:]), b.shape[-1]
    if a.size == 0:  # an empty batch, M = 0 or N = 0: x = 0 is the minimum-norm solution
        return (
            mx.zeros(batch + (n, k), dtype=a.dtype),
            mx.zeros(batch, dtype=mx.int32),
            mx.zeros(batch + (min(m, n),), dtype=real_dtype(a.dtype)),
        )
    if k == 0:  # rank and s still come from a: solve for one zero column, keep none
        (x, rank, s), _ = _dispatch.run(
            "lstsq", stream, a, mx.zeros(batch + (m, 1), dtype=a.dtype), rcond=rcond
        )
        return x[..., :0], rank, s
    (x, rank, s), _ = _dispatch.run("lstsq", stream, a, b, rcond=rcond)
    return x, rank, s
