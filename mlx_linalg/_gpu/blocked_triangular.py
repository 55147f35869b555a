"""Blocked triangular solves for large matrices: ``solve_triangular`` and ``cho_solve``.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept.
"""

import mlx.core as mx

from mlx_linalg._gpu.blocked_common import (
    BLOCK,
    KERNELS,
    Blocks,
    flat,
    solve_block,
    subtract_product,
)
from mlx_linalg._gpu.reference import nan_where


def trsm(
    blocks: Blocks,
    a: mx.array,
    x: mx.array,
    *,
    lower: bool,
    trans: bool,
    unit: bool,
    block: int = BLOCK,
) -> mx.array:
    """op(A)⁻¹ X for (B, n, n) triangular ``a`` and (B, n, K) ``x``, blocked.

    Only the triangle of ``a`` named by ``lower`` is read; op(A) = Aᵀ when ``trans``;
    ``unit`` assumes a unit diagonal. A zero diagonal entry makes that matrix's result
    non-finite (the caller marks it failed).

    Notes:
        Right-looking blocked substitution (LAPACK dtrsm's blocked form, Golub & Van Loan,
        Matrix Computations 4th ed., §3.1.4): with op(A) lower, for each block row k,
        X_k = op(A)_kk⁻¹ R_k by the diagonal-block building block (substitution, never an
        explicit inverse), then R_{k+1:} -= op(A)_{k+1:,k} X_k by a float32-accurate matrix
        product (``subtract_product``); op(A) upper runs the same from the last block up.
        A diagonal block larger than the building blocks take (``blocks.max_n``) is solved
        the same way with blocks of that size. n²K flops, all but n·block·K of them in the
        products. op(A) = Aᵀ is a transposed view of ``a``.
    """
    n = a.shape[-1]
    t = mx.swapaxes(a, -1, -2) if trans else a
    forward = lower != trans  # op(A) is lower triangular
    starts = list(range(0, n, block))
    if not forward:
        starts.reverse()
    rest = x
    solved: list[mx.array] = []
    for start in starts:
        stop = min(start + block, n)
        if forward:
            rhs, rest = rest[:, : stop - start], rest[:, stop - start :]
        else:
            rhs, rest = rest[:, start:], rest[:, :start]
        diagonal = t[:, start:stop, start:stop]
        if stop - start <= blocks.max_n:
            xk = solve_block(blocks, diagonal, rhs, lower=forward, trans=False, unit=unit)
        else:
            xk = trsm(
                blocks, diagonal, rhs, lower=forward, trans=False, unit=unit, block=blocks.max_n
            )
        solved.append(xk)
        if rest.shape[1]:
            coupling = t[:, stop:, start:stop] if forward else t[:, :start, start:stop]
            rest = subtract_product(rest, coupling, xk)
    if not forward:
        solved.reverse()
    return mx.concatenate(solved, axis=1) if len(solved) > 1 else solved[0]


def _zero_diagonal(a: mx.array) -> mx.array:
    return mx.any(mx.diagonal(a, axis1=-2, axis2=-1) == 0, axis=-1)


def solve_triangular(
    a: mx.array,
    b: mx.array,
    *,
    lower: bool,
    unit_diagonal: bool,
    trans: int,
    blocks: Blocks = KERNELS,
    block: int = BLOCK,
) -> tuple:
    """op(A) X = B for triangular A, blocked: ``((X,), failed)``.

    Args:
        a: (..., n, n) triangular matrices (only the ``lower``/upper triangle is read).
        b: (..., n, K) right-hand sides, same batch shape as ``a``.
        lower: which triangle of ``a`` holds the matrix.
        unit_diagonal: assume ones on the diagonal (not read).
        trans: 0 solves A X = B, 1 and 2 (real matrices) Aᵀ X = B.
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size.

    Returns:
        ``((X,), failed)``: X (..., n, K); ``failed`` (...) marks a zero diagonal entry
        (not with ``unit_diagonal``), whose X is NaN.

    See Also:
        scipy.linalg.solve_triangular
    """
    af, bf = flat(a), flat(b)
    x = trsm(blocks, af, bf, lower=lower, trans=trans != 0, unit=unit_diagonal, block=block)
    if unit_diagonal:
        return (x.reshape(b.shape),), None
    failed = _zero_diagonal(af)
    return (nan_where(failed, x).reshape(b.shape),), failed.reshape(a.shape[:-2])


def cho_solve(
    c: mx.array, b: mx.array, *, lower: bool, blocks: Blocks = KERNELS, block: int = BLOCK
) -> tuple:
    """A X = B from the Cholesky factor of A, blocked: ``((X,), failed)``.

    Args:
        c: (..., n, n) Cholesky factors: L with A = L Lᵀ (``lower``) or U with A = Uᵀ U.
        b: (..., n, K) right-hand sides, same batch shape as ``c``.
        lower: which factor ``c`` holds.
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size.

    Returns:
        ``((X,), failed)``: X (..., n, K); ``failed`` (...) marks a zero diagonal entry of
        the factor, whose X is NaN.

    Notes:
        Two blocked triangular solves (LAPACK dpotrs): L Y = B then Lᵀ X = Y (for U:
        Uᵀ Y = B then U X = Y), 2n²K flops.

    See Also:
        scipy.linalg.cho_solve
    """
    cf, bf = flat(c), flat(b)
    y = trsm(blocks, cf, bf, lower=lower, trans=not lower, unit=False, block=block)
    x = trsm(blocks, cf, y, lower=lower, trans=lower, unit=False, block=block)
    failed = _zero_diagonal(cf)
    return (nan_where(failed, x).reshape(b.shape),), failed.reshape(c.shape[:-2])
