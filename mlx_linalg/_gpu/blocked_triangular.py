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
    left,
    right,
    solve_block,
    split_parts,
    subtract,
    transposed_parts,
    zero_diagonal,
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
    parts: tuple | None = None,
    slabs: bool = False,
) -> mx.array:
    """op(A)⁻¹ X for (B, n, n) triangular ``a`` and (B, n, K) ``x``, blocked.

    Only the triangle of ``a`` named by ``lower`` is read; op(A) = Aᵀ when ``trans``;
    ``unit`` assumes a unit diagonal. A zero diagonal entry makes that matrix's result
    non-finite (the caller marks it failed). ``parts``: ``a``'s :func:`split_parts`, when
    the caller has them (``cho_solve`` splits its factor once for both solves).
    ``slabs``: where products are split and no ``parts`` are given, split each step's
    block column of op(A) (the diagonal block and its coupling) on its own, two launches
    per step and two block columns of memory, instead of the whole matrix once, two
    launches and two n² arrays (``getrs``: n² of split parts against a narrow
    right-hand side). The same values either way.

    Notes:
        Right-looking blocked substitution (LAPACK dtrsm's blocked form, Golub & Van Loan,
        Matrix Computations 4th ed., §3.1.4): with op(A) lower, for each block row k,
        X_k = op(A)_kk⁻¹ R_k by the diagonal-block building block (substitution, never an
        explicit inverse), then R_{k+1:} -= op(A)_{k+1:,k} X_k by a float32-accurate matrix
        product (``subtract_product``'s ops); op(A) upper runs the same from the last block
        up. A diagonal block larger than the building blocks take (``blocks.max_n``) is
        solved the same way with blocks of that size. n²K flops, all but n·block·K of them
        in the products. op(A) = Aᵀ is a transposed view of ``a``. Where products are split
        (TF32 devices), ``a`` is split into hi and lo parts once, and each coupling block's
        parts are slices of those (two launches fewer per product).
    """
    n = a.shape[-1]
    if parts is None and n > min(block, blocks.max_n) and not slabs:
        parts = split_parts(a)
    t, t_parts = (mx.swapaxes(a, -1, -2), transposed_parts(parts)) if trans else (a, parts)
    return _solve(
        blocks, t, t_parts, x, forward=lower != trans, unit=unit, block=block, slabs=slabs
    )


def _solve(
    blocks: Blocks,
    t: mx.array,
    parts: tuple | None,
    x: mx.array,
    *,
    forward: bool,
    unit: bool,
    block: int,
    slabs: bool = False,
) -> mx.array:
    """:func:`trsm` of op(A) = ``t`` (lower when ``forward``), ``parts`` its split or None
    (with ``slabs``: split per step)."""
    n = t.shape[-1]
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
        rows = slice(stop, None) if forward else slice(None, start)
        inner, pieces = _step_parts(t, parts, start, stop, forward, slabs and len(starts) > 1)
        if stop - start <= blocks.max_n:
            xk = solve_block(blocks, diagonal, rhs, lower=forward, trans=False, unit=unit)
        else:
            xk = _solve(
                blocks, diagonal, inner, rhs, forward=forward, unit=unit, block=blocks.max_n
            )
        solved.append(xk)
        if rest.shape[1]:
            coupling = t[:, rows, start:stop]
            rest = subtract(rest, left(coupling, pieces), right(xk))
    if not forward:
        solved.reverse()
    return mx.concatenate(solved, axis=1) if len(solved) > 1 else solved[0]


def _step_parts(
    t: mx.array, parts: tuple | None, start: int, stop: int, forward: bool, slab: bool
) -> tuple[tuple | None, tuple | None]:
    """The split parts of a step's diagonal block and of its coupling block (the rows below
    it, forward, or above it): slices of ``parts``; with ``slab`` (and no ``parts``), of
    the split of the step's block column alone; else None (each product splits its own)."""
    if parts is None and slab:
        slab_rows = slice(start, None) if forward else slice(None, stop)
        slab_parts = split_parts(t[:, slab_rows, start:stop])
        if slab_parts is not None:
            top, width = (0, stop - start) if forward else (start, stop - start)
            rows = slice(width, None) if forward else slice(None, start)
            diagonal = tuple(p[:, top : top + width] for p in slab_parts)
            return diagonal, tuple(p[:, rows] for p in slab_parts)
    if parts is None:
        return None, None
    rows = slice(stop, None) if forward else slice(None, start)
    diagonal = tuple(p[:, start:stop, start:stop] for p in parts)
    return diagonal, tuple(p[:, rows, start:stop] for p in parts)


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
    failed = zero_diagonal(af)
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
    parts = split_parts(cf) if c.shape[-1] > min(block, blocks.max_n) else None
    y = trsm(blocks, cf, bf, lower=lower, trans=not lower, unit=False, block=block, parts=parts)
    x = trsm(blocks, cf, y, lower=lower, trans=lower, unit=False, block=block, parts=parts)
    failed = zero_diagonal(cf)
    return (nan_where(failed, x).reshape(b.shape),), failed.reshape(c.shape[:-2])
