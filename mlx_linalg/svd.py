"""Singular value decomposition and what is built on it: svd, svdvals, pinv, matrix_rank,
cond."""

import mlx.core as mx

from mlx_linalg import _dispatch, _precision
from mlx_linalg._checks import default_rtol, fail, prepare, real_dtype, require_choice
from mlx_linalg._devices import float64_on_cpu
from mlx_linalg._results import SVDResult
from mlx_linalg._types import StreamOrDevice, Tolerance


@float64_on_cpu
def svd(x: mx.array, /, *, full_matrices: bool = True, stream: StreamOrDevice = None) -> SVDResult:
    """Singular value decomposition ``x = U diag(S) Vh``.

    Args:
        x: (..., M, N).
        full_matrices: U (..., M, M) and Vh (..., N, N) when True (the Array API default);
            U (..., M, K) and Vh (..., K, N) with K = min(M, N) when False.
        stream: MLX stream or device.

    Returns:
        ``SVDResult(U, S, Vh)``: S (..., K) real, non-negative, descending.

    Notes:
        LAPACK gesdd (bidiagonalization and divide and conquer).

    See Also:
        numpy.linalg.svd, scipy.linalg.svd
    """
    x, result = prepare("svd", x)
    (u, s, vh), _ = _dispatch.run("svd", stream, x, full_matrices=bool(full_matrices))
    return SVDResult(u.astype(result), s.astype(real_dtype(result)), vh.astype(result))


@float64_on_cpu
def svdvals(x: mx.array, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Singular values of a stack of matrices.

    Args:
        x: (..., M, N).
        stream: MLX stream or device.

    Returns:
        (..., K) real, non-negative, descending; K = min(M, N).

    See Also:
        scipy.linalg.svdvals
    """
    x, result = prepare("svdvals", x)
    (s,), _ = _dispatch.run("svdvals", stream, x)
    return s.astype(real_dtype(result))


@float64_on_cpu
def pinv(x: mx.array, /, *, rtol: Tolerance = None, stream: StreamOrDevice = None) -> mx.array:
    """Moore-Penrose pseudo-inverse.

    Args:
        x: (..., M, N).
        rtol: singular values at most ``rtol * max(S)`` count as zero; a float or an array
            broadcasting against the batch shape. Default ``max(M, N) * eps`` with eps of
            x's dtype (float16/bfloat16 too, although they are computed in float32).
        stream: MLX stream or device.

    Returns:
        (..., N, M) pseudo-inverse ``V diag(1/S) Uᴴ`` over the kept singular values.

    See Also:
        numpy.linalg.pinv, scipy.linalg.pinv
    """
    x, result = prepare("pinv", x)
    (u, s, vh), _ = _dispatch.run("svd", stream, x, full_matrices=False)
    cutoff = _relative_tolerance("pinv", x, result, rtol) * _largest(s)
    s_inv = mx.where(s > cutoff[..., None], 1 / mx.where(s == 0, 1, s), 0)
    vs = mx.conj(mx.swapaxes(vh, -1, -2)) * s_inv[..., None, :].astype(x.dtype)
    return _precision.matmul(vs, mx.conj(mx.swapaxes(u, -1, -2)), stream=stream).astype(result)


@float64_on_cpu
def matrix_rank(
    x: mx.array, /, *, rtol: Tolerance = None, stream: StreamOrDevice = None
) -> mx.array:
    """Numerical rank: the number of singular values above ``rtol * max(S)``.

    Args:
        x: (..., M, N).
        rtol: relative tolerance, float or array broadcasting against the batch shape.
            Default ``max(M, N) * eps`` with eps of x's dtype (as in :func:`pinv`).
        stream: MLX stream or device.

    Returns:
        (...,) int32 ranks.

    See Also:
        numpy.linalg.matrix_rank
    """
    x, result = prepare("matrix_rank", x)
    s = svdvals(x, stream=stream)
    cutoff = _relative_tolerance("matrix_rank", x, result, rtol) * _largest(s)
    return (s > cutoff[..., None]).sum(axis=-1).astype(mx.int32)


@float64_on_cpu
def cond(x: mx.array, p: str | float | None = None, *, stream: StreamOrDevice = None) -> mx.array:
    """Condition number of a stack of matrices in the norm ``p``.

    Args:
        x: (..., M, N); square unless ``p`` is None, 2 or -2.
        p: None or 2 (largest over smallest singular value), -2 (its inverse), or
            "fro", "nuc", 1, -1, inf, -inf (``norm(x, p) * norm(inv(x), p)``).
        stream: MLX stream or device.

    Returns:
        (...,) real condition numbers; inf for singular matrices (the zero matrix too,
        for every ``p``, as NumPy), NaN only for input holding NaN.

    See Also:
        numpy.linalg.cond
    """
    from mlx_linalg.norms import matrix_norm

    require_choice("cond", "p", p, (None, 2, -2, "fro", "nuc", 1, -1, float("inf"), float("-inf")))
    x, result = prepare("cond", x, square=p not in (None, 2, -2))
    if p in (None, 2, -2):
        s = svdvals(x, stream=stream)
        if s.shape[-1] == 0:
            fail("cond", f"expected a non-empty matrix, got shape {tuple(x.shape)}")
        c = s[..., -1] / s[..., 0] if p == -2 else s[..., 0] / s[..., -1]
    else:
        (x_inv,), failed = _dispatch.run("inv", stream, x)
        c = matrix_norm(x, ord=p, stream=stream) * matrix_norm(x_inv, ord=p, stream=stream)
        if failed is not None:
            c = mx.where(failed, float("inf"), c)
    # A NaN from 0/0 (the zero matrix) is an infinite condition number, as in NumPy; NaN
    # stays only where the input holds NaN.
    c = mx.where(mx.isnan(c) & ~mx.isnan(x).any(axis=(-2, -1)), float("inf"), c)
    return c.astype(real_dtype(result))


def _relative_tolerance(fn: str, x: mx.array, result: mx.Dtype, rtol) -> mx.array:
    """``rtol`` as a real array broadcasting against x's batch shape.

    The default is ``max(M, N) * eps`` with eps of the input dtype ``result`` (the Array API
    rule), also where float16/bfloat16 input is computed in float32.
    """
    real = real_dtype(x.dtype)
    if rtol is None:
        return mx.array(default_rtol(x.shape, result), dtype=real)
    rtol = mx.array(rtol) if not isinstance(rtol, mx.array) else rtol
    if mx.issubdtype(rtol.dtype, mx.complexfloating) or rtol.dtype == mx.bool_:
        fail(fn, f"expected a real rtol, got {rtol.dtype}", TypeError)
    return rtol.astype(real)


def _largest(s: mx.array) -> mx.array:
    """The largest singular value of each matrix (0 for empty matrices)."""
    if s.shape[-1] == 0:
        return mx.zeros(s.shape[:-1], dtype=s.dtype)
    return s[..., 0]
