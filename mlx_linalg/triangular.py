"""Triangular solves."""

import mlx.core as mx

from mlx_linalg import _dispatch
from mlx_linalg._checks import as_array, compute_dtype, prepare_rhs, require_matrix, trans_code
from mlx_linalg._devices import float64_on_cpu
from mlx_linalg._errors import check_failures
from mlx_linalg._types import StreamOrDevice


@float64_on_cpu
def solve_triangular(
    a: mx.array,
    b: mx.array,
    trans: int | str = 0,
    lower: bool = False,
    unit_diagonal: bool = False,
    *,
    stream: StreamOrDevice = None,
) -> mx.array:
    """Solve ``a x = b`` for triangular ``a`` (or aᵀ, aᴴ).

    Args:
        a: (..., M, M) triangular; only the triangle named by ``lower`` is read.
        b: (M,) or (..., M, K); an exactly 1-D ``b`` is a vector.
        trans: 0/"N" solves a x = b, 1/"T" aᵀ x = b, 2/"C" aᴴ x = b.
        lower: use the lower triangle of ``a``.
        unit_diagonal: assume ones on the diagonal without reading it.
        stream: MLX stream or device.

    Returns:
        x shaped like ``b`` broadcast against the batch. A zero on the diagonal
        (singular) gives NaN, or raises :class:`LinAlgError` in raise mode.

    Notes:
        LAPACK trtrs (n² K flops).

    See Also:
        scipy.linalg.solve_triangular
    """
    a = as_array("solve_triangular", a, name="a")
    require_matrix("solve_triangular", a, square=True, name="a")
    b = as_array("solve_triangular", b, name="b")
    computed, result = compute_dtype("solve_triangular", a, b)
    a, b, vector = prepare_rhs(
        "solve_triangular", a.astype(computed), b.astype(computed), rows=a.shape[-1]
    )
    code = trans_code("solve_triangular", trans)
    if a.size == 0:  # an empty batch or 0 x 0 systems (LAPACK takes neither)
        x = mx.zeros(b.shape, dtype=computed)
    else:
        (x,), failed = _dispatch.run(
            "solve_triangular",
            stream,
            a,
            b,
            lower=bool(lower),
            unit_diagonal=bool(unit_diagonal),
            trans=code,
        )
        check_failures("solve_triangular", "matrix is singular", failed)
    return (x[..., 0] if vector else x).astype(result)
