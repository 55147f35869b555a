"""Blocked LU with partial pivoting for large matrices, and what is built on it: lu_factor,
lu, lu_solve, solve, inv, det, slogdet.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept. Pivots are LAPACK's, 0-based int32: row i was
interchanged with row ``piv[i]``.
"""

import functools

import mlx.core as mx
import numpy as np

from mlx_linalg._gpu import blocked_panel
from mlx_linalg._gpu.blocked_common import (
    KERNELS,
    Blocks,
    flat,
    subtract_product,
    zero_diagonal,
)
from mlx_linalg._gpu.blocked_triangular import trsm
from mlx_linalg._gpu.reference import nan_where

# Outer block columns per step of the blocked LU (and of its substitutions), and the widest
# panel the building block's getf2 (the one-threadgroup ``lu_panel`` kernel on the GPU)
# factors directly: wider panels are factored recursively (:func:`panel_lu`) down to
# leaves of at most LEAF columns; ``leaf=None`` factors every panel with one building-block
# call. Chosen by measurement on an H100 (2026-11-27, float32; tables in
# docs/kernels-blocked-recursive.md, "The LU's block, re-measured"): BLOCK = 64 with
# leaves of 16 took solve and inv 20% less time than 128/16 at n = 4096 (108 against 137
# ms) in two runs, but at n = 8192 it saved 0-10% and its peak GPU memory was 3-4x 128's
# (solve 21-27 against 6-9 n², inv 48-63 against 14-15 n²: more of the shorter steps
# run ahead in MLX's CUDA graphs), so orders from LARGE_FROM on keep LARGE_BLOCK.
BLOCK = 64
LARGE_BLOCK = 128
LARGE_FROM = 8192
LEAF = 16


def default_block(n: int) -> int:
    """The outer block of an LU (or its substitutions) on n columns: BLOCK, or LARGE_BLOCK
    from LARGE_FROM columns on."""
    return LARGE_BLOCK if n >= LARGE_FROM else BLOCK


def panel_lu(
    blocks: Blocks, a: mx.array, *, leaf: int | None = LEAF
) -> tuple[mx.array, mx.array, mx.array | None]:
    """Partial-pivoting LU of a tall (B, m, w) panel, m >= w, recursive: ``(packed, perm, piv)``.

    The contract of ``Blocks.lu_pivots``: packed (B, m, w) L\\U of P·a (row i is row
    perm[i] of the eliminated panel); perm (B, m) int32; piv (B, w) int32, the panel's
    0-based LAPACK pivots (row j was interchanged with row piv[j]), or None where a leaf's
    building block gave none (``REFERENCE``, whose non-pivot rows keep their original
    order: its perm is still consistent with packed, but not getf2's).

    Args:
        blocks: the building blocks; leaves go to ``blocks.lu_pivots`` (else ``blocks.lu``).
        a: (B, m, w) panel, m >= w.
        leaf: the widest panel factored by one building-block call; None factors ``a``
            by one call whatever its width.

    Notes:
        Toledo's recursive LU (Toledo 1997, "Locality of reference in LU decomposition
        with partial pivoting", SIAM J. Matrix Anal. Appl. 18(4); Gustavson 1997; LAPACK
        dgetrf2): factor the left w1 columns recursively, apply their interchanges to
        the right w2 columns (one gather), U12 = L11⁻¹ A12 (unit-lower substitution),
        A22 -= L21 U12 (``subtract_product``, float32-accurate), factor A22 recursively,
        then apply its interchanges to L21 and join the four blocks (:func:`join`, or
        ``blocks.lu_join`` where the building blocks have one). w1 is half the leaves
        (rounded down), so every leaf but the last is ``leaf`` wide. The per-column
        rank-1 sweep of getf2 then spans at most ``leaf`` columns; the rest of the
        panel's m·w²/2 flops are products. Pivots as dgetrf2: piv2 + w1.
    """
    pieces: list = []
    packed, perm = _recursive(blocks, a, leaf, 0, pieces)
    return packed, perm, _join_pivots(pieces)


def _recursive(
    blocks: Blocks,
    a: mx.array,
    leaf: int | None,
    column: int,
    pieces: list,
    width: int | None = None,
) -> tuple[mx.array, mx.array]:
    """:func:`panel_lu` of the panel ``a[:, :, :width]`` (all of ``a`` when None), whose
    first column is ``column`` of the outer panel: its (packed, perm); each leaf appends
    (its first column, its own pivots or None) to ``pieces`` (LAPACK's pivot of a leaf's
    column j is the leaf's column + piv[j]: dgetrf2's offsets summed down the recursion).
    A leaf that is the left columns of ``a`` goes to ``blocks.lu_pivots`` as ``a`` and its
    width, so a kernel reads it in place."""
    width = a.shape[-1] if width is None else width
    if leaf is None or width <= leaf:
        if blocks.lu_pivots is not None:
            packed, perm, piv = blocks.lu_pivots(a, width)
        else:
            (packed, perm), piv = blocks.lu(a[:, :, :width]), None
        pieces.append((column, piv))
        return packed, perm
    w1 = leaf * (-(-width // leaf) // 2)
    p1, perm1 = _recursive(blocks, a, leaf, column, pieces, w1)
    right = blocked_panel.gather_rows(a[:, :, :width], perm1, w1)
    u12 = trsm(
        blocks, p1[:, :w1], right[:, :w1], lower=True, trans=False, unit=True, block=blocks.max_n
    )
    a22 = subtract_product(right[:, w1:], p1[:, w1:], u12)
    p2, perm2 = _recursive(blocks, a22, leaf, column + w1, pieces)
    joined = None if blocks.lu_join is None else blocks.lu_join(p1, u12, p2, perm1, perm2)
    return join(p1, u12, p2, perm1, perm2) if joined is None else joined


def join(
    p1: mx.array, u12: mx.array, p2: mx.array, perm1: mx.array, perm2: mx.array
) -> tuple[mx.array, mx.array]:
    """The join step of :func:`panel_lu` in MLX ops: ``(packed, perm)`` of the (B, m, w) panel.

    Args:
        p1: (B, m, w1) packed L\\U of the left columns, rows in their pivot order.
        u12: (B, w1, w2) U's block right of them.
        p2: (B, m - w1, w2) packed L\\U of A22, rows in its pivot order.
        perm1: (B, m) int32, row i of p1 is row perm1[i] of the panel.
        perm2: (B, m - w1) int32, row i of p2 is row w1 + perm2[i] of p1.

    Returns:
        packed (B, m, w1 + w2): [p1[:w1] u12; p1[w1 + perm2] p2]; perm (B, m):
        [perm1[:w1]; perm1[w1 + perm2]]. Ten launches on a GPU (two gathers, four
        two-input concatenations); the contract of the one-launch ``lu_join`` kernel
        (``Blocks.lu_join``), which KERNELS use.
    """
    w1 = p1.shape[-1]
    top = mx.concatenate([p1[:, :w1], u12], axis=2)
    bottom = mx.concatenate([blocked_panel.gather_rows(p1[:, w1:], perm2), p2], axis=2)
    packed = mx.concatenate([top, bottom], axis=1)
    perm = mx.concatenate([perm1[:, :w1], mx.take_along_axis(perm1[:, w1:], perm2, axis=1)], axis=1)
    return packed, perm


def _join_pivots(pieces: list) -> mx.array | None:
    """LAPACK's pivots from the leaves' (first column, own pivots) pieces: one
    concatenation and one addition of each column's leaf start. None when a piece has
    none."""
    if not pieces or any(piv is None for _, piv in pieces):
        return None
    starts = np.concatenate(
        [np.full(piv.shape[-1], column, dtype=np.int32) for column, piv in pieces]
    )
    raw = mx.concatenate([piv for _, piv in pieces], axis=1) if len(pieces) > 1 else pieces[0][1]
    return raw + mx.array(starts)


def getrf(
    blocks: Blocks, a: mx.array, *, block: int | None = None, leaf: int | None = LEAF
) -> tuple[mx.array, mx.array]:
    """:func:`getrf_pivots` without the pivots: ``(packed, perm)``."""
    packed, perm, _ = getrf_pivots(blocks, a, block=block, leaf=leaf)
    return packed, perm


def getrf_pivots(
    blocks: Blocks, a: mx.array, *, block: int | None = None, leaf: int | None = LEAF
) -> tuple[mx.array, mx.array, mx.array | None]:
    """LU with partial pivoting of a (B, m, n) stack, blocked: ``(packed, perm, piv)``.

    Args:
        blocks: the building blocks.
        a: (B, m, n).
        block: columns per outer step; None: :func:`default_block` of n.
        leaf: panels wider than this are factored recursively (:func:`panel_lu`) down to
            building-block calls on at most ``leaf`` columns; None: one call per panel.

    Returns:
        packed (B, m, n): U on and above the diagonal, L's multipliers below (unit
        diagonal implied); perm (B, m) int32, row i of P·A is row perm[i] of A; piv
        (B, min(m, n)) int32, LAPACK's 0-based pivots as dgetrf forms them (panel start
        + the panel's pivots) when the building block has ``lu_pivots``, else None
        (``blocked_panel.pivots(perm, k)`` gives them). A zero pivot is kept (as in
        dgetrf: the factorization completes; solves with it fail).

    Notes:
        Right-looking blocked LU (Golub & Van Loan, Matrix Computations 4th ed., Alg.
        3.4.2 with §3.4.7's partial pivoting; LAPACK dgetrf). For each block column k of
        width b: factor the tall panel A_{k:,k} with partial pivoting (:func:`panel_lu`:
        recursive down to the building block's getf2 on ``leaf`` columns); apply its row
        interchanges to the trailing columns as one gather; U_{k,k+1:} = L_kk⁻¹ A_{k,k+1:}
        by unit-lower substitution; A_{k+1:,k+1:} -= L_{k+1:,k} U_{k,k+1:} by a
        float32-accurate product (``subtract_product``). The panel is ``block`` wide; its
        triangular solve runs in blocks of ``blocks.max_n``. 2n³/3 flops for a square
        matrix, all but O(n²·leaf) in the products.

        The trailing matrix is its own, shrinking array. Memory (issue #7): each step
        writes its packed panel (rows in its own pivot order) and U's block row into one
        zero (B, m, n) array by two slice updates as soon as they are formed, and its
        permutation of the trailing rows into one row of ``moves``; the later
        interchanges reach each panel's multipliers once, at the end (:func:`assemble`,
        the one-launch ``lu_assemble`` kernel on the GPU, which also forms the whole
        permutation), instead of dlaswp on the left columns at every step. The trailing
        rows are gathered in two parts, the panel's pivot rows (the right-hand side of
        U's block row) and the rows below them, whose own buffer the trailing update
        then overwrites (a fused product donates a whole array, not a row slice of one):
        one trailing-sized buffer per step, and about two n² above the input at any time
        (the stored steps and the trailing matrix, then the stored steps and the
        assembled result).

        Launches (issue #7: the graph is launch-bound on the GPU): per step, beside the
        panel and its products, two slice updates and one row of ``moves``; the
        permutation composed step by step and each panel's rows gathered at the end took
        about 7 more per step (two gathers and a concatenation of the permutation; per
        panel an inverse permutation, a gather of the index, an offset, a gather of rows
        and a slice update): some 510 launches of a solve at n = 4096.

        A leaf is one launch of the ``lu_panel`` kernel on the GPU (``KERNELS``), a
        column loop of MLX ops (``blocked_panel.lu_panel``) in ``REFERENCE``.
    """
    batch, m, n = a.shape
    k = min(m, n)
    block = default_block(n) if block is None else block
    trailing = a
    stored = mx.zeros((batch, m, n), dtype=a.dtype)
    moves = mx.zeros((-(-k // block), batch, m), dtype=mx.int32)
    pieces = []  # (first column, a leaf's own pivots or None), over the whole matrix
    for step, start in enumerate(range(0, k, block)):
        width = min(block, k - start)
        panel_pieces: list = []
        packed, local = _recursive(blocks, trailing, leaf, 0, panel_pieces, width)
        pieces += [(start + column, piv) for column, piv in panel_pieces]
        stored[:, start:, start : start + width] = packed
        moves[step, :, : m - start] = local
        if start + width < n:
            u12 = trsm(
                blocks,
                packed[:, :width],
                blocks.gather_rows(trailing, local[:, :width], width),
                lower=True,
                trans=False,
                unit=True,
                block=blocks.max_n,
            )
            stored[:, start : start + width, start + width :] = u12
            if start + width < m:
                trailing = subtract_product(
                    blocks.gather_rows(trailing, local[:, width:], width), packed[:, width:], u12
                )
    if k == 0:
        return stored, mx.broadcast_to(mx.arange(m, dtype=mx.int32), (batch, m)), None
    assembled = None if blocks.lu_assemble is None else blocks.lu_assemble(stored, moves, block)
    factor, perm = assemble(stored, moves, block) if assembled is None else assembled
    return factor, perm, _join_pivots(pieces)


def assemble(stored: mx.array, moves: mx.array, block: int) -> tuple[mx.array, mx.array]:
    """The blocked LU's last step in MLX ops: ``(packed, perm)`` from what its steps wrote.

    Args:
        stored: (B, m, n), the factor as :func:`getrf_pivots`' steps wrote it: step s, from
            row and column R_s = s·block on, its packed panel (rows in its own pivot
            order) at rows R_s.. and columns R_s..R_s + w_s, and U's block row right of it
            (w_s = block, the last step's possibly fewer: min(block, k - R_s)).
        moves: (S, B, m) int32, one row per step: moves[s, :, :m - R_s] is step s's
            permutation of its trailing matrix (row i of its panel is row moves[s, :, i] of
            that matrix, both counted from R_s); the rest is not read.
        block: the steps' width b.

    Returns:
        packed (B, m, n): every block column's rows below its diagonal block moved where
        the later steps' interchanges send them (what dgetrf's dlaswp on the left columns
        does at every step); perm (B, m) int32, row i of P·A is row perm[i] of A.

    Notes:
        The permutations compose backwards: the rows of block column s that end at
        positions R_{s+1}.. are rows R_{s+1} + moves[s + 1][q - R_{s+1}], where q are the
        rows of block column s + 1 that end there (its own diagonal rows included, at
        their place). Per block column a gather of the index, one of the rows and a slice
        update: the contract of the one-launch ``lu_assemble`` kernel
        (``Blocks.lu_assemble``), which KERNELS use.
    """
    steps, batch, m = moves.shape
    # A new array, as the kernel's output is: updating ``stored`` itself while its block
    # columns are still to be gathered made MLX copy it at each step (7.4 n² at n = 1024).
    packed = stored[...]
    last = (steps - 1) * block
    ends = mx.broadcast_to(mx.arange(last, m, dtype=mx.int32), (batch, m - last))
    # Each step's first row as a slice of one array, not a Python int: under mx.compile a
    # scalar operand is inlined into the fused kernel's source, one kernel (and one JIT
    # compilation) per step and per matrix order (compiled_graphs).
    starts = mx.arange(0, steps * block, block, dtype=mx.int32)
    for s in range(steps - 2, -1, -1):
        start, offset = (s + 1) * block, starts[s + 1 : s + 2]
        moved = mx.take_along_axis(moves[s + 1, :, : m - start], ends - offset, axis=1)
        rows = offset + moved
        columns = stored[:, :, s * block : start]
        packed[:, start:, s * block : start] = blocked_panel.gather_rows(columns, rows)
        diagonal = mx.broadcast_to(mx.arange(s * block, start, dtype=mx.int32), (batch, block))
        ends = mx.concatenate([diagonal, rows], axis=1)
    return packed, mx.take_along_axis(moves[0], ends, axis=1)


def parity(perm: mx.array) -> mx.array:
    """The sign (+1/-1, float32) of each permutation of a (B, m) stack.

    Counts cycles by pointer jumping (each entry learns the smallest index on its cycle
    in ceil(log2 m) rounds of two gathers): sign = (-1)^(m - cycles), where m - cycles is
    the number of entries that are not the smallest of their cycle (counted as such: m
    as a Python int would be a per-order constant of a fused kernel under mx.compile,
    see compiled_graphs). O(m log m) work and about 3 log2 m ops, against a loop of m
    steps to replay LAPACK's interchanges.
    """
    m = perm.shape[-1]
    index = mx.arange(m, dtype=mx.int32)
    label = mx.broadcast_to(index, perm.shape)
    step = perm
    for _ in range(max(m - 1, 0).bit_length()):
        label = mx.minimum(label, mx.take_along_axis(label, step, axis=1))
        step = mx.take_along_axis(step, step, axis=1)
    transpositions = mx.sum(label != index, axis=-1)
    return 1 - 2 * (transpositions % 2).astype(mx.float32)


def _unpack(x: mx.array, outputs: tuple) -> tuple:
    """Reshape (B, ...) outputs back to the batch shape of ``x``."""
    batch = x.shape[:-2]
    return tuple(o.reshape(*batch, *o.shape[1:]) for o in outputs)


def lu_factor(
    x: mx.array, *, blocks: Blocks = KERNELS, block: int | None = None, leaf: int | None = LEAF
) -> tuple:
    """Packed LU and pivots of a (..., M, N) stack: ``((lu, piv), None)``.

    Args:
        x: (..., M, N).
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size; None: :func:`default_block` of n.
        leaf: recursive panels down to this width (:func:`panel_lu`); None: off.

    Returns:
        ``((lu, piv), None)``: lu (..., M, N) packed L\\U; piv (..., min(M, N)) int32,
        0-based LAPACK pivots. Singular matrices keep their zero pivot (no failure).

    See Also:
        scipy.linalg.lu_factor
    """
    packed, perm, piv = getrf_pivots(blocks, flat(x), block=block, leaf=leaf)
    if piv is None:  # the building block gave no pivots: replay the permutation
        m, k = x.shape[-2], min(x.shape[-2:])
        piv = blocked_panel.pivots(perm, k)
        if m > k:
            # Rows k.. of L in the order LAPACK's interchanges leave them (the MLX-op panel
            # keeps its non-pivot rows in their original order), so that P·A = L·U holds
            # for the P these pivots define.
            order = blocked_panel.permutation(piv, m)
            inverse = blocked_panel.inverse_permutation(perm)
            packed = blocks.gather_rows(packed, mx.take_along_axis(inverse, order, axis=1))
    return _unpack(x, (packed, piv)), None


def lu(
    x: mx.array, *, blocks: Blocks = KERNELS, block: int | None = None, leaf: int | None = LEAF
) -> tuple:
    """``((P, L, U), None)`` with x = P L U, from the blocked packed LU.

    Args:
        x: (..., M, N).
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size; None: :func:`default_block` of n.
        leaf: recursive panels down to this width (:func:`panel_lu`); None: off.

    Returns:
        P (..., M, M) permutation matrix, L (..., M, K) unit lower trapezoidal, U
        (..., K, N) upper trapezoidal, K = min(M, N).

    See Also:
        scipy.linalg.lu
    """
    m, n = x.shape[-2:]
    k = min(m, n)
    packed, perm = getrf(blocks, flat(x), block=block, leaf=leaf)
    rows = mx.arange(m, dtype=mx.int32)
    p = (perm[..., None, :] == rows[:, None]).astype(x.dtype)
    lower = mx.tril(packed[..., :, :k], -1) + mx.eye(m, k, dtype=x.dtype)
    upper = mx.triu(packed[..., :k, :])
    return _unpack(x, (p, lower, upper)), None


def _lu_diagonal(
    x: mx.array, blocks: Blocks, block: int | None, leaf: int | None
) -> tuple[mx.array, mx.array]:
    """U's diagonal (B, n) and the permutation's sign (B,) of the LU of ``x``."""
    packed, perm = getrf(blocks, flat(x), block=block, leaf=leaf)
    return mx.diagonal(packed, axis1=-2, axis2=-1), parity(perm).astype(x.dtype)


def det(
    x: mx.array, *, blocks: Blocks = KERNELS, block: int | None = None, leaf: int | None = LEAF
) -> tuple:
    """Determinant of a (..., n, n) stack: ``((det,), None)``, det of shape (...).

    Notes:
        The permutation's sign times the product of U's diagonal (numpy.linalg.det's
        method): may overflow or underflow where ``slogdet`` does not.
    """
    diagonal, swaps_sign = _lu_diagonal(x, blocks, block, leaf)
    return ((swaps_sign * mx.prod(diagonal, axis=-1)).reshape(x.shape[:-2]),), None


def slogdet(
    x: mx.array, *, blocks: Blocks = KERNELS, block: int | None = None, leaf: int | None = LEAF
) -> tuple:
    """``((sign, logabsdet), None)`` of a (..., n, n) stack, each of shape (...).

    Notes:
        Sums log|u_ii| (no overflow or underflow); sign from the permutation and the
        signs of U's diagonal (0 for a singular matrix, whose logabsdet is -inf).
    """
    diagonal, swaps_sign = _lu_diagonal(x, blocks, block, leaf)
    sign = swaps_sign * mx.prod(mx.sign(diagonal), axis=-1)
    logabsdet = mx.sum(mx.log(mx.abs(diagonal)), axis=-1)
    batch = x.shape[:-2]
    return (sign.reshape(batch), logabsdet.reshape(batch)), None


def _getrs(
    blocks: Blocks, packed: mx.array, perm: mx.array, b: mx.array, *, trans: bool, block: int | None
) -> mx.array:
    """Solve with a (B, n, n) packed LU and its row permutation ``perm`` (B, n): getrs.

    Where products are split (TF32), ``packed`` is split a slab of block columns at a
    time (``trsm``'s ``slabs``): the right-hand side is often narrow, and splitting the
    whole of ``packed`` would keep two more n² arrays alive through both substitutions.
    """
    if trans:
        # Aᵀ = Uᵀ Lᵀ P: Uᵀ y = b, Lᵀ z = y, x = Pᵀ z (x[perm[i]] = z[i]).
        block = default_block(packed.shape[-1]) if block is None else block
        solve = functools.partial(trsm, blocks, packed, block=block, slabs=True)
        y = solve(b, lower=False, trans=True, unit=False)
        z = solve(y, lower=True, trans=True, unit=True)
        return blocks.gather_rows(z, blocked_panel.inverse_permutation(perm))
    return _substitute(blocks, packed, blocks.gather_rows(b, perm), block)


def _substitute(blocks: Blocks, packed: mx.array, pb: mx.array, block: int | None) -> mx.array:
    """U⁻¹ L⁻¹ ``pb`` for a (B, n, n) packed LU and the permuted right-hand side P·b."""
    block = default_block(packed.shape[-1]) if block is None else block
    solve = functools.partial(trsm, blocks, packed, block=block, slabs=True)
    y = solve(pb, lower=True, trans=False, unit=True)
    return solve(y, lower=False, trans=False, unit=False)


def solve(
    a: mx.array,
    b: mx.array,
    *,
    blocks: Blocks = KERNELS,
    block: int | None = None,
    leaf: int | None = LEAF,
) -> tuple:
    """A X = B by blocked LU with partial pivoting: ``((X,), failed)``.

    Args:
        a: (..., n, n).
        b: (..., n, K), same batch shape as ``a``.
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size; None: :func:`default_block` of n.
        leaf: recursive panels down to this width (:func:`panel_lu`); None: off.

    Returns:
        ``((X,), failed)``: X (..., n, K); ``failed`` (...) marks exactly singular
        matrices (a zero pivot), whose X is NaN.

    Notes:
        LAPACK dgesv: getrf then getrs (row gather, unit-lower and upper blocked
        substitutions), 2n³/3 + 2n²K flops.

    See Also:
        scipy.linalg.solve
    """
    packed, perm = getrf(blocks, flat(a), block=block, leaf=leaf)
    x = _getrs(blocks, packed, perm, flat(b), trans=False, block=block)
    failed = zero_diagonal(packed)
    return (nan_where(failed, x).reshape(b.shape),), failed.reshape(a.shape[:-2])


def inv(
    x: mx.array, *, blocks: Blocks = KERNELS, block: int | None = None, leaf: int | None = LEAF
) -> tuple:
    """A⁻¹ of a (..., n, n) stack as the solve against the identity: ``((inv,), failed)``.

    Notes:
        getrf + getrs with B = I: 2n³/3 + 2n³ flops (LAPACK's getri needs 2n³ in all but
        works in place; here both substitutions are blocked products). The permuted
        identity P·I is formed directly (row i is e_perm[i], one comparison), not as
        an identity and its row gather: one n² array fewer.
    """
    a = flat(x)
    n = a.shape[-1]
    packed, perm = getrf(blocks, a, block=block, leaf=leaf)
    permuted = (perm[:, :, None] == mx.arange(n, dtype=mx.int32)).astype(a.dtype)
    inverse = _substitute(blocks, packed, permuted, block)
    failed = zero_diagonal(packed)
    return (nan_where(failed, inverse).reshape(x.shape),), failed.reshape(x.shape[:-2])


def lu_solve(
    packed: mx.array,
    piv: mx.array,
    b: mx.array,
    *,
    trans: int,
    blocks: Blocks = KERNELS,
    block: int | None = None,
) -> tuple:
    """Solve with a packed LU from ``lu_factor``: ``((X,), failed)``.

    Args:
        packed: (..., n, n) packed L\\U.
        piv: (..., n) int32 0-based LAPACK pivots.
        b: (..., n, K), same batch shape.
        trans: 0 solves A X = B, 1 and 2 (real matrices) Aᵀ X = B.
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size; None: :func:`default_block` of n.

    Returns:
        ``((X,), failed)``: X (..., n, K); ``failed`` (...) marks a zero diagonal of U or
        a pivot outside [0, n), whose X is NaN.

    Notes:
        LAPACK dgetrs: the interchanges as one gather, two blocked substitutions. The
        pivots become a permutation by a tree of compositions
        (``blocked_panel.permutation``: log2 n gathers over an n x n int32 array).

    See Also:
        scipy.linalg.lu_solve
    """
    n = packed.shape[-1]
    pf = flat(packed)
    piv = piv.reshape(-1, n)
    # The largest valid pivot as an array, not a Python int: under mx.compile an int
    # operand is inlined into the fused kernel, one kernel per order (compiled_graphs).
    last = mx.arange(n - 1, n, dtype=piv.dtype)
    bad = mx.any((piv < 0) | (piv > last), axis=-1)
    perm = blocked_panel.permutation(mx.clip(piv, 0, last), n)
    x = _getrs(blocks, pf, perm, flat(b), trans=trans != 0, block=block)
    failed = bad | zero_diagonal(pf)
    return (nan_where(failed, x).reshape(b.shape),), failed.reshape(packed.shape[:-2])
