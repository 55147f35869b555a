"""Blocked Cholesky factorization for large matrices.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept.
"""

import mlx.core as mx

from mlx_linalg._gpu.blocked_common import BLOCK, KERNELS, Blocks, flat, solve_block
from mlx_linalg._gpu.blocked_triangular import (
    left,
    right,
    split_parts,
    subtract,
    transposed_parts,
)
from mlx_linalg._gpu.reference import nan_where

# A piece of the factor: (first row, first column, (B, h, w) block of L, or (B, w, h)
# block of Lᵀ when the flag is set).
Piece = tuple[int, int, mx.array, bool]


def potrf(
    blocks: Blocks, a: mx.array, *, block: int = BLOCK, upper: bool = False
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
        matrix product (``subtract_product``). A diagonal block larger than the building
        blocks take (``blocks.max_n``) is factored by this algorithm with blocks of that
        size, so every leaf is one kernel launch, and the panel's substitution runs over
        those leaves (the diagonal blocks and the columns below them as they came out).
        n³/3 flops in LAPACK; here the trailing product forms the full square instead of
        one triangle (MLX has no syrk), about 2n³/3.

        Right-looking rather than left-looking because each step's trailing update is one
        large product of shape (n-k) x b x (n-k), the shape GPUs multiply fastest; a
        left-looking step multiplies a thin (n-k) x k by k x b, whose small output
        parallelizes poorly. The trailing matrix is its own, shrinking array (the fused
        update reads and writes it once per step, with no copy of the whole matrix).

        Launches (issue #7: the graph is launch-bound on the GPU): the building blocks'
        factors are lower triangular with zeros above (their contract), so no ``tril``;
        the pieces (each leaf's diagonal block and each panel, as the kernels wrote them)
        are written once into one zero n x n array, one slice update each, instead of
        padded and concatenated per step; and ``failed`` is the last diagonal block's
        flag alone: a failed block's factor is all NaN (the building block's contract),
        so its panel, every later trailing matrix and with it every later diagonal block
        are NaN and fail too. Where products are split (TF32 devices), each panel L21 is
        split into hi and lo parts once for its two products (the trailing update, and the
        coupling of the enclosing panel's solve), as ``subtract_product`` would split it,
        so the results are the same bit for bit.
    """
    batch, n = a.shape[0], a.shape[-1]
    pieces: list[Piece] = []
    _, failed = _factor(blocks, a, block, 0, pieces)
    return nan_where(failed, _assemble(pieces, batch, n, a.dtype, upper)), failed


def _factor(
    blocks: Blocks, a: mx.array, block: int, offset: int, pieces: list[Piece]
) -> tuple[list, mx.array]:
    """Factor ``a`` (B, m, m), whose corner is (offset, offset) of the whole factor.

    Appends the factor's pieces to ``pieces`` and returns its leaves (each diagonal
    block's factor and the column below it within ``a`` as a left
    ``blocked_triangular.Operand``, None for the last; complete when
    ``block <= blocks.max_n``, as in the recursive calls) and the last diagonal block's
    failure flag (B,).
    """
    m = a.shape[-1]
    trailing = a
    leaves: list = []
    for start in range(0, m, block):
        width = min(block, m - start)
        corner = offset + start
        diagonal = trailing[:, :width, :width]
        if width <= blocks.max_n:
            l11, failed = blocks.cholesky(diagonal)
            pieces.append((corner, corner, l11, False))
            diagonal_leaves = [(l11, None)]
        else:
            diagonal_leaves, failed = _factor(blocks, diagonal, blocks.max_n, corner, pieces)
        below = None
        if start + width < m:
            # L21 = A21 L11⁻ᵀ, i.e. L21ᵀ = L11⁻¹ A21ᵀ: the panel's rows are right-hand sides.
            panel = mx.swapaxes(trailing[:, width:, :width], -1, -2)
            l21t = _forward(blocks, diagonal_leaves, panel)
            pieces.append((corner + width, corner, l21t, True))
            # L21 split once for its products: this update and, in a recursive call, the
            # panel solve's coupling (blocked_triangular.Operand).
            parts = split_parts(l21t)
            below = left(mx.swapaxes(l21t, -1, -2), transposed_parts(parts))
            trailing = subtract(trailing[:, width:, width:], below, right(l21t, parts))
        if width <= blocks.max_n:
            leaves.append((l11, below))
    return leaves, failed


def _forward(blocks: Blocks, leaves: list, x: mx.array) -> mx.array:
    """L⁻¹ x for the lower triangular L given by its leaves (``_factor``'s): for each
    diagonal block, its substitution, then the rows below less the column below it times
    the solution (as ``blocked_triangular.trsm`` with blocks of the leaves' width)."""
    rest = x
    solved = []
    for diagonal, below in leaves:
        width = diagonal.shape[-1]
        rhs, rest = rest[:, :width], rest[:, width:]
        xk = solve_block(blocks, diagonal, rhs, lower=True, trans=False, unit=False)
        solved.append(xk)
        if rest.shape[1]:
            rest = subtract(rest, below, right(xk))
    return mx.concatenate(solved, axis=1) if len(solved) > 1 else solved[0]


def _assemble(pieces: list[Piece], batch: int, n: int, dtype: mx.Dtype, upper: bool) -> mx.array:
    """The (B, n, n) factor (L, or U = Lᵀ when ``upper``) from its pieces: one zero array
    and one slice update per piece (a single piece is the factor itself)."""
    if len(pieces) == 1:
        factor = pieces[0][2]
        return mx.swapaxes(factor, -1, -2) if upper else factor
    factor = mx.zeros((batch, n, n), dtype=dtype)
    for row, column, piece, transposed in pieces:
        if transposed != upper:
            piece = mx.swapaxes(piece, -1, -2)
        if upper:
            row, column = column, row
        factor[:, row : row + piece.shape[1], column : column + piece.shape[2]] = piece
    return factor


def cholesky(x: mx.array, *, upper: bool, blocks: Blocks = KERNELS, block: int = BLOCK) -> tuple:
    """Cholesky factor of a stack of symmetric positive definite matrices, blocked.

    Args:
        x: (..., n, n); the lower triangle is read (the upper one when ``upper``).
        upper: return U with A = Uᵀ U instead of L with A = L Lᵀ.
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size.

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
