"""Blocked triangular solves for large matrices: ``solve_triangular`` and ``cho_solve``.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept.
"""

from typing import NamedTuple

import mlx.core as mx

from mlx_linalg._gpu.blocked_common import (
    BLOCK,
    KERNELS,
    Blocks,
    Window,
    flat,
    left,
    right,
    split_parts,
    subtract,
    transposed_parts,
    zero_diagonal,
)
from mlx_linalg._gpu.reference import nan_where

# Slabs of block columns that trsm(..., slabs=True) splits op(A) into, one after another,
# where products are split: memory for split parts of about 2n²/SLABS (against 2n² for the
# whole matrix at once) for 2·SLABS launches (against 2).
SLABS = 4


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
    ``slabs``: where products are split and no ``parts`` are given, split op(A) in about
    :data:`SLABS` slabs of whole block columns, each when its first step comes (two
    launches per slab; about 2n²/SLABS entries alive), instead of the whole matrix at
    once (two launches; two n² arrays alive through the solve): ``getrs``, whose
    right-hand side is often narrow. The same values either way.

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
    # The diagonal blocks the kernel solves: the steps' own, or the recursion's of max_n.
    size = block if block <= blocks.max_n else blocks.max_n if block % blocks.max_n == 0 else 0
    diagonals = _diagonal_blocks(a, trans, n, size) if size and n // size > 1 else None
    return _solve(
        blocks,
        t,
        t_parts,
        x,
        forward=lower != trans,
        unit=unit,
        block=block,
        slabs=slabs,
        source=Source(a, trans, 0, diagonals, size),
    )


class Source(NamedTuple):
    """Where the op(A) = ``t`` of a :func:`_solve` lies, so that its kernels read A in
    place: A (B, n, n); whether op(A) = Aᵀ; ``t``'s first row and column in op(A) (a
    diagonal block solved recursively); and op(A)'s full diagonal blocks of ``size``
    copied out at once (:func:`_diagonal_blocks`), or None."""

    a: mx.array
    transposed: bool
    origin: int = 0
    diagonals: mx.array | None = None
    size: int = 0


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
    source: Source | None = None,
) -> mx.array:
    """:func:`trsm` of op(A) = ``t`` (lower when ``forward``), ``parts`` its split or None
    (with ``slabs``: split a slab of block columns at a time). ``source``: where ``t``
    lies in A (:class:`Source`), so that each coupling block is read in place from A where
    the ``rank_update`` kernel forms its product (``blocked_common.Window``: no copy of a
    strided block), and each full diagonal block comes from the diagonal blocks copied
    out at once; None: ``t`` is a block of an array that is not at hand."""
    n = t.shape[-1]
    starts = list(range(0, n, block))
    if not forward:
        starts.reverse()
    group = -(-len(starts) // SLABS)  # steps per slab
    region = None if parts is None else (0, 0, parts)
    diagonals = None if source is None else source.diagonals
    rest = x
    solved: list[mx.array] = []
    for i, start in enumerate(starts):
        stop = min(start + block, n)
        if slabs and parts is None and len(starts) > 1 and i % group == 0:
            region = _slab(t, starts[i : i + group], block, forward)
        if forward:
            rhs, rest = rest[:, : stop - start], rest[:, stop - start :]
        else:
            rhs, rest = rest[:, start:], rest[:, :start]
        diagonal = t[:, start:stop, start:stop]
        rows = slice(stop, None) if forward else slice(None, start)
        inner, pieces = _step_parts(region, start, stop, forward)
        if diagonals is not None and stop - start == source.size:
            # a slice, not an integer index (which would be a gather)
            k = (source.origin + start) // source.size
            own = diagonals[k : k + 1].reshape(diagonals.shape[1:])
            xk = blocks.trsm(own, rhs, lower=forward, trans=False, unit=unit)
        elif stop - start <= blocks.max_n:
            xk = blocks.trsm(diagonal, rhs, lower=forward, trans=False, unit=unit)
        else:
            inside = None if source is None else source._replace(origin=source.origin + start)
            xk = _solve(
                blocks,
                diagonal,
                inner,
                rhs,
                forward=forward,
                unit=unit,
                block=blocks.max_n,
                source=inside,
            )
        solved.append(xk)
        if rest.shape[1]:
            coupling = t[:, rows, start:stop]
            window = None if source is None else _window(source, rows.start or 0, start)
            rest = subtract(rest, left(coupling, pieces, window), right(xk))
    if not forward:
        solved.reverse()
    return mx.concatenate(solved, axis=1) if len(solved) > 1 else solved[0]


def _diagonal_blocks(a: mx.array, transposed: bool, n: int, block: int) -> mx.array:
    """op(A)'s full ``block`` x ``block`` diagonal blocks as one contiguous array
    (n // block, B, block, block), for A (B, n, n) and op(A) = Aᵀ when ``transposed``: one
    copy, where each block sliced from A in its step is a strided view that the diagonal
    kernel copies before reading it (a launch per step on a GPU). Block k, matrix b is
    ``[k, b]``, row-contiguous for every batch size."""
    batch = a.shape[0]
    row_stride, column_stride = (1, n) if transposed else (n, 1)
    view = mx.as_strided(
        a,
        shape=(n // block, batch, block, block),
        strides=(block * (n + 1), n * n, row_stride, column_stride),
    )
    return mx.contiguous(view)


def _window(source: Source, row: int, column: int) -> Window:
    """Where the block of ``t`` from (row, column) lies in A (``source``: where ``t``
    lies, :class:`Source`)."""
    row, column = source.origin + row, source.origin + column
    if source.transposed:
        return Window(source.a, column, row, True)
    return Window(source.a, row, column)


def _slab(t: mx.array, starts: list[int], block: int, forward: bool) -> tuple | None:
    """The split of the block columns of the steps ``starts`` (in solve order) over every
    row those steps read (from the first one's diagonal block down, forward; up to it,
    backward): ``(first row, first column, parts)``, or None where products are not
    split."""
    n = t.shape[-1]
    first, last = starts[0], starts[-1]
    if forward:
        row, columns, region = first, slice(first, min(last + block, n)), t[:, first:]
    else:
        stop = min(first + block, n)
        row, columns, region = 0, slice(last, stop), t[:, :stop]
    parts = split_parts(region[:, :, columns])
    return None if parts is None else (row, columns.start, parts)


def _step_parts(
    region: tuple | None, start: int, stop: int, forward: bool
) -> tuple[tuple | None, tuple | None]:
    """The split parts of a step's diagonal block and of its coupling block (the rows below
    it, forward, or above it), as slices of ``region`` ((first row, first column, parts)
    of a split covering them); None, None without one (each product splits its own)."""
    if region is None:
        return None, None
    row, column, parts = region
    columns = slice(start - column, stop - column)
    rows = slice(stop - row, None) if forward else slice(None, start - row)
    diagonal = tuple(p[:, start - row : stop - row, columns] for p in parts)
    return diagonal, tuple(p[:, rows, columns] for p in parts)


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
