"""Blocked Cholesky factorization for large matrices.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept.
"""

import mlx.core as mx

from mlx_linalg._gpu import blocked_common
from mlx_linalg._gpu.blocked_common import (
    KERNELS,
    Blocks,
    Operand,
    first_columns,
    flat,
    gram,
    subtract,
)
from mlx_linalg._gpu.reference import nan_where

# A piece of the factor: (first row, first column, (B, h, w) block of L).
Piece = tuple[int, int, mx.array]
# Block columns per step where the caller gives none, read at call time (so that
# tools/ab_settings.py can vary it): blocked_common's, 128 (leaves of 64).
BLOCK = blocked_common.BLOCK


def potrf(
    blocks: Blocks, a: mx.array, *, block: int | None = None, upper: bool = False
) -> tuple[mx.array, mx.array]:
    """Lower Cholesky factor of a (B, n, n) stack, blocked: ``(L, failed)``.

    Only the lower triangle of ``a`` is read. ``failed`` (B,) marks matrices that are not
    positive definite (a diagonal block whose factorization fails, NaN/Inf included);
    their L is all NaN. With ``upper``, the factor is returned as U = Lᵀ (written in that
    orientation, not a transposed view).

    Notes:
        Right-looking blocked Cholesky (Golub & Van Loan, Matrix Computations 4th ed.,
        Alg. 4.2.4; LAPACK dpotrf's right-looking variant). For each block column k of
        width b: L_kk = chol(A_kk) by the diagonal-block building block;
        L_{k+1:,k} = A_{k+1:,k} L_kk⁻ᵀ as a substitution with the panel's rows as
        right-hand sides (never an explicit inverse, so the panel is as accurate as
        LAPACK's dtrsm); A_{k+1:,k+1:} -= L_{k+1:,k} L_{k+1:,k}ᵀ by a float32-accurate
        matrix product (``subtract``'s ops). A block column wider than the building
        blocks take (``blocks.max_n``) is factored in leaves of that width, each leaf's
        substitution covering every row below it (:func:`_panel`), so every leaf is one
        kernel launch. n³/3 flops in LAPACK; here the trailing product forms the full
        square instead of one triangle (MLX has no syrk), about 2n³/3. The first block
        column takes the n mod b columns that do not fill a block (b when there are
        none), so that every later trailing matrix is whole blocks.

        Right-looking rather than left-looking because each step's trailing update is one
        large product of shape (n-k) x b x (n-k), the shape GPUs multiply fastest; a
        left-looking step multiplies a thin (n-k) x k by k x b, whose small output
        parallelizes poorly. The trailing matrix is kept as its block columns stacked
        along a leading axis, (n/b, B, n-k, b) (:func:`_block_columns`): its next trailing
        matrix, every block column less its first b rows, is then a stack of
        row-contiguous matrices, which the fused update reads in place (``mx.addmm``
        copies a C that is a plain slice of a square, one more pass over it: 4.2 of 24.8
        ms of GPU time at n = 8192 on an H100), and its first block column, the next
        panel, is one row-contiguous matrix.

        Launches (issue #7: the graph is launch-bound on the GPU; counts in
        docs/kernels-blocked.md): the building blocks' factors are lower triangular with
        zeros above (their contract), so no ``tril``; the pieces (each leaf's factor and
        the substitution below it, as the kernels wrote them) are written once into one
        zero n x n array, one slice update each, instead of padded and concatenated per
        step; ``failed`` is the last leaf's flag alone: a failed leaf's factor is all NaN
        (the building block's contract), so the substitution below it, every later
        trailing matrix and with it every later leaf are NaN and fail too; every
        operand of a product is row-contiguous or the transpose of a row-contiguous
        array (MLX's CUDA products copy any other view first): the substitutions solve
        L's rows below a leaf as rows, and where products are split (TF32 devices) the
        operands of each update L Lᵀ come split from one launch
        (``blocked_common.gram``).
    """
    block = BLOCK if block is None else block
    batch, n = a.shape[0], a.shape[-1]
    pieces: list[Piece] = []
    first = n % block or block
    below, failed = _panel(blocks, a, first, 0, pieces)
    if below is not None:
        columns = _update(_block_columns(a[:, first:, first:], block), below, block)
        for corner in range(first, n, block):
            panel = columns[:1].squeeze(0)  # a view (columns[0] would be a gather)
            below, failed = _panel(blocks, panel, block, corner, pieces)
            if below is not None:
                columns = _update(columns[1:, :, block:], below, block)
    return nan_where(failed, _assemble(pieces, batch, n, a.dtype, upper)), failed


def _block_columns(x: mx.array, width: int) -> mx.array:
    """The (B, m, m) trailing matrix as its block columns, (m / width, B, m, width)."""
    batch, m = x.shape[0], x.shape[-1]
    return x.reshape(batch, m, m // width, width).transpose(2, 0, 1, 3)


def _update(columns: mx.array, below: mx.array, width: int) -> mx.array:
    """The next trailing matrix, block columns (J, B, m, width) less ``below`` (B, m, K) times
    the transpose of its J row blocks: block column j less below · below[:, jw:(j+1)w]ᵀ.

    One stacked update (``subtract``, split once by ``gram``): the left operands broadcast
    over the blocks, the right ones are transposed views of ``below``'s row blocks."""
    left, right = gram(below)

    def broadcast(part: mx.array | None) -> mx.array | None:
        return None if part is None else part[None]

    def row_blocks(part: mx.array | None) -> mx.array | None:
        if part is None:
            return None
        rows = mx.swapaxes(part, -1, -2)  # (B, m, K') as below's rows
        batch, m, k = rows.shape
        return rows.reshape(batch, m // width, width, k).transpose(1, 0, 3, 2)

    return subtract(
        columns,
        Operand(*(broadcast(part) for part in left[:3])),
        Operand(*(row_blocks(part) for part in right[:3])),
    )


def _panel(
    blocks: Blocks, trailing: mx.array, w: int, corner: int, pieces: list[Piece]
) -> tuple[mx.array | None, mx.array]:
    """Factor one block column: the first ``w`` columns of the (B, m, k) trailing matrix
    (k >= w: the whole trailing matrix, or its first block column), whose top square is
    the diagonal block at (corner, corner) of the whole factor.

    Appends its pieces to ``pieces``; returns L's part below the diagonal block,
    (B, m - w, w) (None where m = w), and the last leaf's failure flag (B,).

    Notes:
        In leaves of ``blocks.max_n`` columns (one leaf when w <= max_n), each one launch
        of ``blocks.cholesky_panel``: L_jj = chol(A_jj) and L_{j+1:,j} = A_{j+1:,j}
        L_jj⁻ᵀ for the rows inside the block and below it together; then the block's
        columns right of the leaf, all rows below it, less L_{j+1:,j} L_{j+1:w,j}ᵀ by one
        product. The same arithmetic as factoring the diagonal block first and then
        solving the panel against it (dpotrf with dtrsm's blocked loop), in fewer
        launches. Each leaf reads its columns in place from a row-contiguous array (the
        trailing matrix, or the previous leaf's update), and the first update reads the
        block's columns in place too (``subtract``'s ``at``), so no copy precedes them.
    """
    rest = trailing  # its first w - start columns: the block's columns still to factor
    below = []
    for start in range(0, w, blocks.max_n):
        width = min(blocks.max_n, w - start)
        factor, failed = blocks.cholesky_panel(rest, width)
        pieces.append((corner + start, corner + start, factor))
        if width == rest.shape[1]:
            break
        l21 = factor[:, width:]
        columns = w - start - width  # of the block, right of this leaf
        if columns:
            a, b = gram(l21)
            rest = subtract(rest, a, first_columns(b, columns), at=(width, width))
        below.append(l21[:, columns:])
    if not below:
        return None, failed
    return (mx.concatenate(below, axis=-1) if len(below) > 1 else below[0]), failed


def _assemble(pieces: list[Piece], batch: int, n: int, dtype: mx.Dtype, upper: bool) -> mx.array:
    """The (B, n, n) factor (L, or U = Lᵀ when ``upper``) from its pieces: one zero array
    and one slice update per piece (a single piece is the factor itself)."""
    if len(pieces) == 1:
        factor = pieces[0][2]
        return mx.swapaxes(factor, -1, -2) if upper else factor
    factor = mx.zeros((batch, n, n), dtype=dtype)
    for row, column, piece in pieces:
        if upper:
            piece = mx.swapaxes(piece, -1, -2)
            row, column = column, row
        factor[:, row : row + piece.shape[1], column : column + piece.shape[2]] = piece
    return factor


def cholesky(
    x: mx.array, *, upper: bool, blocks: Blocks = KERNELS, block: int | None = None
) -> tuple:
    """Cholesky factor of a stack of symmetric positive definite matrices, blocked.

    Args:
        x: (..., n, n); the lower triangle is read (the upper one when ``upper``).
        upper: return U with A = Uᵀ U instead of L with A = L Lᵀ.
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size (None: :data:`BLOCK`).

    Returns:
        ``((factor,), failed)``: factor (..., n, n) triangular; ``failed`` (...) marks
        matrices that are not positive definite, whose factor is all NaN.

    See Also:
        scipy.linalg.cholesky
    """
    a = flat(x)
    if upper:
        a = mx.swapaxes(a, -1, -2)
    factor, failed = potrf(blocks, a, block=block, upper=upper)
    return (factor.reshape(x.shape),), failed.reshape(x.shape[:-2])
