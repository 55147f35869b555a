"""Cholesky factorization and solves with it: cholesky, cho_factor, cho_solve."""

import mlx.core as mx

from mlx_linalg import _dispatch
from mlx_linalg._checks import as_array, compute_dtype, prepare, prepare_rhs, require_matrix
from mlx_linalg._devices import float64_on_cpu
from mlx_linalg._errors import check_failures
from mlx_linalg._results import ChoFactorResult
from mlx_linalg._types import StreamOrDevice

NOT_PD = "matrix is not positive definite"


@float64_on_cpu
def cholesky(x: mx.array, /, *, upper: bool = False, stream: StreamOrDevice = None) -> mx.array:
    """Cholesky factor of a stack of Hermitian positive-definite matrices.

    Args:
        x: (..., M, M) Hermitian positive-definite; only the lower triangle is read
            (the upper one when ``upper=True``).
        upper: return the upper factor U with ``x = Uᴴ U`` instead of the lower L with
            ``x = L Lᴴ``.
        stream: MLX stream or device; the default device when None.

    Returns:
        (..., M, M) triangular factor; the other triangle is zero. Matrices that are not
        positive definite come back as NaN (or raise :class:`LinAlgError` inside
        ``errstate(linalg="raise")``).

    Notes:
        LAPACK potrf on the CPU (n³/3 flops).

    See Also:
        scipy.linalg.cholesky, numpy.linalg.cholesky
    """
    x, result = prepare("cholesky", x, square=True)
    (factor,), failed = _dispatch.run("cholesky", stream, x, upper=upper)
    check_failures("cholesky", NOT_PD, failed)
    return factor.astype(result)


@float64_on_cpu
def cho_factor(
    a: mx.array, lower: bool = False, *, stream: StreamOrDevice = None
) -> ChoFactorResult:
    """Cholesky factor in the form ``cho_solve`` takes.

    Args:
        a: (..., M, M) Hermitian positive-definite.
        lower: keep the lower factor (``a = L Lᴴ``) instead of the upper one.
        stream: MLX stream or device.

    Returns:
        ``ChoFactorResult(c, lower)``: ``c`` (..., M, M) holds the factor.

    Notes:
        # Note: unlike SciPy, the unused triangle of ``c`` is zero rather than left over
        # from ``a``.

    See Also:
        scipy.linalg.cho_factor
    """
    return ChoFactorResult(cholesky(a, upper=not lower, stream=stream), bool(lower))


@float64_on_cpu
def cho_solve(c_and_lower: tuple, b: mx.array, *, stream: StreamOrDevice = None) -> mx.array:
    """Solve ``A X = B`` given the Cholesky factor of A from :func:`cho_factor`.

    Args:
        c_and_lower: ``(c, lower)`` with ``c`` (..., M, M) the factor.
        b: (M,) or (..., M, K) right-hand side; an exactly 1-D ``b`` is a vector.
        stream: MLX stream or device.

    Returns:
        X with the shape of ``b`` broadcast against the batch of ``c``. A factor with a
        zero on its diagonal (singular) gives NaN, or raises in raise mode.

    Notes:
        LAPACK potrs: two triangular solves, 2 n² K flops.

    See Also:
        scipy.linalg.cho_solve
    """
    try:
        c, lower = c_and_lower
    except (TypeError, ValueError):
        raise TypeError(
            "[mlx_linalg.cho_solve] expected c_and_lower to be a (c, lower) pair as "
            f"cho_factor returns, got {type(c_and_lower).__name__}"
        ) from None
    c = as_array("cho_solve", c, name="c")
    require_matrix("cho_solve", c, square=True, name="c")
    b = as_array("cho_solve", b, name="b")
    computed, result = compute_dtype("cho_solve", c, b)
    c, b, vector = prepare_rhs(
        "cho_solve", c.astype(computed), b.astype(computed), rows=c.shape[-1]
    )
    if c.size == 0:  # an empty batch or 0 x 0 systems (LAPACK takes neither)
        x = mx.zeros(b.shape, dtype=computed)
    else:
        (x,), failed = _dispatch.run("cho_solve", stream, c, b, lower=bool(lower))
        check_failures("cho_solve", "factor is singular", failed)
    return (x[..., 0] if vector else x).astype(result)
