"""LU factorization with partial pivoting and what is built on it: lu, lu_factor, lu_solve,
det, slogdet."""

import mlx.core as mx

from mlx_linalg import _dispatch
from mlx_linalg._checks import (
    as_array,
    compute_dtype,
    fail,
    prepare,
    prepare_rhs,
    real_dtype,
    require_matrix,
    trans_code,
)
from mlx_linalg._devices import eye, float64_on_cpu
from mlx_linalg._errors import check_failures
from mlx_linalg._results import LUFactorResult, LUResult, SlogdetResult
from mlx_linalg._types import StreamOrDevice


@float64_on_cpu
def lu(a: mx.array, /, *, stream: StreamOrDevice = None) -> LUResult:
    """LU factorization with partial pivoting, ``a = P L U``.

    Args:
        a: (..., M, N).
        stream: MLX stream or device.

    Returns:
        ``LUResult(P, L, U)``: P (..., M, M) permutation matrix, L (..., M, K) unit lower
        triangular, U (..., K, N) upper triangular, K = min(M, N).

    Notes:
        LAPACK getrf (2n³/3 flops for square input).

    See Also:
        scipy.linalg.lu
    """
    a, result = prepare("lu", a)
    if a.size == 0:
        # Note: SciPy gives P of shape (0, 0) for an (M, 0) matrix; its documented shape
        # (..., M, M) holds here (the identity), as for every other input.
        batch, (m, n) = tuple(a.shape[:-2]), tuple(a.shape[-2:])
        k = min(m, n)
        p = mx.broadcast_to(eye(m, dtype=a.dtype, stream=stream), batch + (m, m))
        lower = mx.zeros(batch + (m, k), a.dtype, stream=stream)
        upper = mx.zeros(batch + (k, n), a.dtype, stream=stream)
    else:
        (p, lower, upper), _ = _dispatch.run("lu", stream, a)
    return LUResult(p.astype(result), lower.astype(result), upper.astype(result))


@float64_on_cpu
def lu_factor(a: mx.array, /, *, stream: StreamOrDevice = None) -> LUFactorResult:
    """Packed LU factorization with partial pivoting, in the form ``lu_solve`` takes.

    Args:
        a: (..., M, N).
        stream: MLX stream or device.

    Returns:
        ``LUFactorResult(lu, piv)``: ``lu`` (..., M, N) with U on and above the diagonal
        and the multipliers of unit-lower L below; ``piv`` (..., K) int32, 0-based: row i
        was interchanged with row ``piv[i]``.

    Notes:
        LAPACK getrf. A singular matrix factors fine (a zero on U's diagonal); solving
        with it fails.

    See Also:
        scipy.linalg.lu_factor
    """
    a, result = prepare("lu_factor", a)
    if a.size == 0:
        piv = mx.zeros(tuple(a.shape[:-2]) + (min(a.shape[-2:]),), dtype=mx.int32)
        return LUFactorResult(a.astype(result), piv)
    (packed, piv), _ = _dispatch.run("lu_factor", stream, a)
    return LUFactorResult(packed.astype(result), piv)


@float64_on_cpu
def lu_solve(
    lu_and_piv: tuple, b: mx.array, trans: int | str = 0, *, stream: StreamOrDevice = None
) -> mx.array:
    """Solve ``A X = B`` (or Aᵀ, Aᴴ) given the factorization from :func:`lu_factor`.

    Args:
        lu_and_piv: ``(lu, piv)`` with ``lu`` (..., M, M) and ``piv`` (..., M).
        b: (M,) or (..., M, K); an exactly 1-D ``b`` is a vector.
        trans: 0/"N" solves A X = B, 1/"T" Aᵀ X = B, 2/"C" Aᴴ X = B.
        stream: MLX stream or device.

    Returns:
        X shaped like ``b`` broadcast against the batch. Singular factors give NaN, or
        raise :class:`LinAlgError` in raise mode.

    Notes:
        LAPACK getrs (2 n² K flops).

    See Also:
        scipy.linalg.lu_solve
    """
    try:
        packed, piv = lu_and_piv
    except (TypeError, ValueError):
        fail(
            "lu_solve",
            "expected lu_and_piv to be an (lu, piv) pair as lu_factor returns, "
            f"got {type(lu_and_piv).__name__}",
            TypeError,
        )
    piv = as_array("lu_solve", piv, name="piv")
    require_matrix("lu_solve", packed, square=True, name="lu")
    if piv.shape != packed.shape[:-1] or piv.dtype not in (mx.int32, mx.int64, mx.uint32):
        fail(
            "lu_solve",
            f"expected integer piv of shape {tuple(packed.shape[:-1])}, got "
            f"{tuple(piv.shape)} {piv.dtype}",
        )
    b = as_array("lu_solve", b, name="b")
    computed, result = compute_dtype("lu_solve", packed, b)
    packed, b, vector = prepare_rhs(
        "lu_solve", packed.astype(computed), b.astype(computed), rows=packed.shape[-1]
    )
    piv = mx.broadcast_to(piv.astype(mx.int32), packed.shape[:-1])
    code = trans_code("lu_solve", trans)
    if packed.size == 0:  # an empty batch or 0 x 0 systems (LAPACK takes neither)
        x = mx.zeros(b.shape, dtype=computed)
    else:
        (x,), failed = _dispatch.run("lu_solve", stream, packed, piv, b, trans=code)
        check_failures("lu_solve", "matrix is singular", failed)
    return (x[..., 0] if vector else x).astype(result)


@float64_on_cpu
def det(x: mx.array, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Determinant of a stack of square matrices.

    Args:
        x: (..., M, M).
        stream: MLX stream or device.

    Returns:
        (...,) determinants; 0 for exactly singular matrices.

    Notes:
        Product of U's diagonal from LAPACK getrf, with the pivot sign.

    See Also:
        numpy.linalg.det
    """
    x, result = prepare("det", x, square=True)
    (d,), _ = _dispatch.run("det", stream, x)
    return d.astype(result)


@float64_on_cpu
def slogdet(x: mx.array, /, *, stream: StreamOrDevice = None) -> SlogdetResult:
    """Sign and natural log of the absolute value of the determinant.

    Args:
        x: (..., M, M).
        stream: MLX stream or device.

    Returns:
        ``SlogdetResult(sign, logabsdet)``, each (...,): ``sign`` has x's dtype (a unit
        complex number for complex input), ``logabsdet`` is real. Singular: sign 0,
        logabsdet -inf.

    Notes:
        Sums log|uᵢᵢ| of LAPACK getrf, so it neither overflows nor underflows.

    See Also:
        numpy.linalg.slogdet
    """
    x, result = prepare("slogdet", x, square=True)
    (sign, logabsdet), _ = _dispatch.run("slogdet", stream, x)
    return SlogdetResult(sign.astype(result), logabsdet.astype(real_dtype(result)))
