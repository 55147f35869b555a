"""General linear systems and inverses: solve, inv, matrix_power."""

import operator

import mlx.core as mx

from mlx_linalg import _dispatch, _precision, _refine
from mlx_linalg._checks import as_array, compute_dtype, fail, prepare, prepare_rhs, require_matrix
from mlx_linalg._devices import eye, float64_on_cpu
from mlx_linalg._errors import check_failures
from mlx_linalg._types import StreamOrDevice

SINGULAR = "matrix is singular"


@float64_on_cpu
def solve(
    x1: mx.array, x2: mx.array, /, *, refine: bool = False, stream: StreamOrDevice = None
) -> mx.array:
    """Solve ``x1 X = x2`` for square ``x1``.

    Args:
        x1: (..., M, M) coefficient matrices.
        x2: (M,) or (..., M, K). Following the Array API, only an exactly 1-D ``x2`` is a
            vector (treated as (..., M, 1) and the result squeezed); batch axes broadcast.
        refine: mixed-precision iterative refinement (opt-in): factor in low precision,
            correct from working-precision residuals until LAPACK dsgesv's test passes,
            else solve that matrix again the ordinary way. float32/complex64: the LU with
            the device's own products (TF32 on MLX's CUDA backend and Apple M5; full
            float32 elsewhere, where it converges at once); float64: the LU in float32
            (dsgesv). Synchronizes with the host once per correction, so it cannot run
            inside ``mx.compile`` or ``mx.vmap``. See docs/refinement.md.
        stream: MLX stream or device.

    Returns:
        X of shape (..., M) for a vector ``x2``, else (..., M, K). Singular matrices give
        NaN, or raise :class:`LinAlgError` in raise mode. With ``refine``, the result
        meets the same accuracy as without.

    Notes:
        LU with partial pivoting, LAPACK gesv (2n³/3 + 2n²K flops). With ``refine``: one
        low-precision LU plus 2n²K flops of residual and 2n²K of correction per iteration
        (LAPACK dsgesv; Haidar et al., SC18), at most 30 iterations before the fallback.

    See Also:
        numpy.linalg.solve, scipy.linalg.solve
    """
    x1 = as_array("solve", x1, name="x1")
    require_matrix("solve", x1, square=True, name="x1")
    x2 = as_array("solve", x2, name="x2")
    if refine not in (True, False):
        fail("solve", f"expected refine to be a bool, got {refine!r}", TypeError)
    computed, result = compute_dtype("solve", x1, x2)
    a, b, vector = prepare_rhs("solve", x1.astype(computed), x2.astype(computed), rows=x1.shape[-1])
    if refine and a.size and b.size:
        x, failed, _, _ = _refine.solve(a, b, stream=stream)
    else:
        (x,), failed = _dispatch.run("solve", stream, a, b)
    check_failures("solve", SINGULAR, failed)
    return (x[..., 0] if vector else x).astype(result)


@float64_on_cpu
def inv(x: mx.array, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Inverse of a stack of square matrices.

    Args:
        x: (..., M, M).
        stream: MLX stream or device.

    Returns:
        (..., M, M) inverses. Singular matrices give NaN, or raise :class:`LinAlgError`
        in raise mode.

    Notes:
        LAPACK getrf + getri (2n³ flops).

    See Also:
        numpy.linalg.inv, scipy.linalg.inv
    """
    x, result = prepare("inv", x, square=True)
    (xi,), failed = _dispatch.run("inv", stream, x)
    check_failures("inv", SINGULAR, failed)
    return xi.astype(result)


@float64_on_cpu
def matrix_power(x: mx.array, n: int, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Raise a stack of square matrices to an integer power.

    Args:
        x: (..., M, M).
        n: the exponent; 0 gives the identity, negative powers invert first.
        stream: MLX stream or device.

    Returns:
        (..., M, M) ``x**n``.

    Notes:
        Binary powering: at most 2·log2|n| matrix products (plus one inverse for n < 0).
        float16/bfloat16 are computed in float32 and rounded once at the end, so
        intermediate powers neither overflow nor accumulate half-precision rounding.

    See Also:
        numpy.linalg.matrix_power
    """
    try:
        n = operator.index(n)
    except TypeError:
        fail("matrix_power", f"expected an integer n, got {type(n).__name__}", TypeError)
    x, result = prepare("matrix_power", x, square=True)
    if n < 0:
        (x,), failed = _dispatch.run("inv", stream, x)
        check_failures("matrix_power", SINGULAR, failed)
        n = -n
    power = mx.broadcast_to(eye(x.shape[-1], dtype=x.dtype, stream=stream), x.shape)
    while n:
        if n & 1:
            power = _precision.matmul(power, x, stream=stream)
        n >>= 1
        if n:
            x = _precision.matmul(x, x, stream=stream)
    return power.astype(result)
