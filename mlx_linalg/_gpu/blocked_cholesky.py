"""Blocked Cholesky factorization for large matrices.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept.
"""

import mlx.core as mx

from mlx_linalg._gpu.blocked_common import BLOCK, KERNELS, Blocks, flat, subtract_product
from mlx_linalg._gpu.blocked_triangular import trsm
from mlx_linalg._gpu.reference import nan_where


def potrf(blocks: Blocks, a: mx.array, *, block: int = BLOCK) -> tuple[mx.array, mx.array]:
    """Lower Cholesky factor of a (B, n, n) stack, blocked: ``(L, failed)``.

    Only the lower triangle of ``a`` is read. ``failed`` (B,) marks matrices that are not
    positive definite (a diagonal block whose factorization fails, NaN/Inf included);
    their L is all NaN.

    Notes:
        Right-looking blocked Cholesky (Golub & Van Loan, Matrix Computations 4th ed.,
        Alg. 4.2.4; LAPACK dpotrf's right-looking variant). For each block column k of
        width b: L_kk = chol(A_kk) by the diagonal-block building block;
        L_{k+1:,k} = A_{k+1:,k} L_kk⁻ᵀ as a substitution with the panel's rows as
        right-hand sides (never an explicit inverse, so the panel is as accurate as
        LAPACK's dtrsm); A_{k+1:,k+1:} -= L_{k+1:,k} L_{k+1:,k}ᵀ by a float32-accurate
        matrix product (``subtract_product``). A diagonal block larger than the building
        blocks take (``blocks.max_n``) is factored by this algorithm with blocks of that
        size, so every leaf is one kernel launch. n³/3 flops in LAPACK; here the trailing
        product forms the full square instead of one triangle (MLX has no syrk), about
        2n³/3.

        Right-looking rather than left-looking because each step's trailing update is one
        large product of shape (n-k) x b x (n-k), the shape GPUs multiply fastest; a
        left-looking step multiplies a thin (n-k) x k by k x b, whose small output
        parallelizes poorly. The trailing matrix is its own, shrinking array (the fused
        update reads and writes it once per step, with no copy of the whole matrix), and
        the finished block columns are assembled once at the end: memory is a few n x n
        arrays at most.
    """
    n = a.shape[-1]
    trailing = a
    failed = mx.zeros(a.shape[:1], dtype=mx.bool_)
    columns = []
    for start in range(0, n, block):
        width = min(block, n - start)
        diagonal = trailing[:, :width, :width]
        if width <= blocks.max_n:
            l11, bad = blocks.cholesky(diagonal)
        else:
            l11, bad = potrf(blocks, diagonal, block=blocks.max_n)
        failed = failed | bad
        column = mx.tril(l11)
        if start + width < n:
            # L21 = A21 L11⁻ᵀ, i.e. L21ᵀ = L11⁻¹ A21ᵀ: the panel's rows are right-hand sides.
            panel = mx.swapaxes(trailing[:, width:, :width], -1, -2)
            l21t = trsm(blocks, l11, panel, lower=True, trans=False, unit=False, block=blocks.max_n)
            l21 = mx.swapaxes(l21t, -1, -2)
            trailing = subtract_product(trailing[:, width:, width:], l21, l21t)
            column = mx.concatenate([column, l21], axis=1)
        columns.append(mx.pad(column, [(0, 0), (start, 0), (0, 0)]))
    factor = mx.concatenate(columns, axis=2) if len(columns) > 1 else columns[0]
    return nan_where(failed, factor), failed


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
    factor, failed = potrf(blocks, a, block=block)
    if upper:
        factor = mx.swapaxes(factor, -1, -2)
    return (factor.reshape(x.shape),), failed.reshape(x.shape[:-2])
