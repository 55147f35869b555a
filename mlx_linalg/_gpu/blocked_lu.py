"""Blocked LU with partial pivoting for large matrices, and what is built on it: lu_factor,
lu, lu_solve, solve, inv, det, slogdet.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept. Pivots are LAPACK's, 0-based int32: row i was
interchanged with row ``piv[i]``.
"""

import mlx.core as mx

from mlx_linalg._gpu.blocked_common import BLOCK, KERNELS, Blocks, flat, nan_where, subtract_product
from mlx_linalg._gpu.blocked_triangular import trsm


def _gather_rows(x: mx.array, rows: mx.array) -> mx.array:
    """Rows ``rows[b]`` (B, r) of each x[b] (B, m, c): (B, r, c)."""
    index = mx.broadcast_to(rows[..., None], (*rows.shape, x.shape[-1]))
    return mx.take_along_axis(x, index, axis=1)


def getrf(
    blocks: Blocks, a: mx.array, *, block: int = BLOCK
) -> tuple[mx.array, mx.array, mx.array]:
    """LU with partial pivoting of a (B, m, n) stack, blocked: ``(packed, piv, perm)``.

    Returns:
        packed (B, m, n): U on and above the diagonal, L's multipliers below (unit
        diagonal implied); piv (B, min(m, n)) int32, 0-based LAPACK pivots; perm (B, m)
        int32, row i of P·A is row perm[i] of A. A zero pivot is kept (as in dgetrf: the
        factorization completes; solves with it fail).

    Notes:
        Right-looking blocked LU (Golub & Van Loan, Matrix Computations 4th ed., Alg.
        3.4.2 with §3.4.7's partial pivoting; LAPACK dgetrf). For each block column k of
        width b: factor the tall panel A_{k:,k} with partial pivoting (the building
        block's ``lu``, getf2); apply its row interchanges to the whole row block as one
        gather (dlaswp, left columns included); U_{k,k+1:} = L_kk⁻¹ A_{k,k+1:} by
        unit-lower substitution; A_{k+1:,k+1:} -= L_{k+1:,k} U_{k,k+1:} by a
        float32-accurate product (``subtract_product``). The panel is ``block`` wide;
        its triangular solve runs in blocks of ``blocks.max_n``. 2n³/3 flops for a square
        matrix, all but O(n²b) in the products; the interchanges move (m-k) x n entries per step.

        The panel factorization is a column-by-column loop of MLX ops on the GPU too
        (``reference.lu_small``: argmax pivot, swap by gather, rank-1 update), a few ops
        per column: the piece of this algorithm that most wants a kernel.
    """
    batch, m, n = a.shape
    k = min(m, n)
    work = mx.array(a)  # a copy: the steps below assign into it
    perm = mx.broadcast_to(mx.arange(m, dtype=mx.int32), (batch, m))
    pivots = []
    for start in range(0, k, block):
        stop = min(start + block, k)
        width = stop - start
        packed, piv, local = blocks.lu(work[:, start:, start:stop])
        pivots.append(piv + start)
        perm = mx.concatenate(
            [perm[:, :start], mx.take_along_axis(perm[:, start:], local, axis=1)], axis=1
        )
        rows = _gather_rows(work[:, start:, :], local)
        pieces = [rows[:, :, :start], packed]
        if stop < n:
            l11 = packed[:, :width]
            u12 = trsm(
                blocks,
                l11,
                rows[:, :width, stop:],
                lower=True,
                trans=False,
                unit=True,
                block=blocks.max_n,
            )
            right = u12
            if start + width < m:
                trailing = subtract_product(rows[:, width:, stop:], packed[:, width:], u12)
                right = mx.concatenate([u12, trailing], axis=1)
            pieces.append(right)
        work[:, start:, :] = mx.concatenate(pieces, axis=2)
    piv = mx.concatenate(pivots, axis=1) if len(pivots) > 1 else pivots[0]
    return work, piv, perm


def _unpack(x: mx.array, outputs: tuple) -> tuple:
    """Reshape (B, ...) outputs back to the batch shape of ``x``."""
    batch = x.shape[:-2]
    return tuple(o.reshape(*batch, *o.shape[1:]) for o in outputs)


def lu_factor(x: mx.array, *, blocks: Blocks = KERNELS, block: int = BLOCK) -> tuple:
    """Packed LU and pivots of a (..., M, N) stack: ``((lu, piv), None)``.

    Args:
        x: (..., M, N).
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size.

    Returns:
        ``((lu, piv), None)``: lu (..., M, N) packed L\\U; piv (..., min(M, N)) int32,
        0-based LAPACK pivots. Singular matrices keep their zero pivot (no failure).

    See Also:
        scipy.linalg.lu_factor
    """
    packed, piv, _ = getrf(blocks, flat(x), block=block)
    return _unpack(x, (packed, piv)), None


def lu(x: mx.array, *, blocks: Blocks = KERNELS, block: int = BLOCK) -> tuple:
    """``((P, L, U), None)`` with x = P L U, from the blocked packed LU.

    Args:
        x: (..., M, N).
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size.

    Returns:
        P (..., M, M) permutation matrix, L (..., M, K) unit lower trapezoidal, U
        (..., K, N) upper trapezoidal, K = min(M, N).

    See Also:
        scipy.linalg.lu
    """
    m, n = x.shape[-2:]
    k = min(m, n)
    packed, _, perm = getrf(blocks, flat(x), block=block)
    rows = mx.arange(m, dtype=mx.int32)
    p = (perm[..., None, :] == rows[:, None]).astype(x.dtype)
    lower = mx.tril(packed[..., :, :k], -1) + mx.eye(m, k, dtype=x.dtype)
    upper = mx.triu(packed[..., :k, :])
    return _unpack(x, (p, lower, upper)), None


def _lu_diagonal(x: mx.array, blocks: Blocks, block: int) -> tuple[mx.array, mx.array]:
    """U's diagonal (B, n) and the permutation's sign (B,) of the LU of ``x``."""
    packed, piv, _ = getrf(blocks, flat(x), block=block)
    swaps = mx.sum(piv != mx.arange(piv.shape[-1], dtype=mx.int32), axis=-1)
    parity = 1 - 2 * (swaps % 2).astype(x.dtype)
    return mx.diagonal(packed, axis1=-2, axis2=-1), parity


def det(x: mx.array, *, blocks: Blocks = KERNELS, block: int = BLOCK) -> tuple:
    """Determinant of a (..., n, n) stack: ``((det,), None)``, U's diagonal product.

    Notes:
        LAPACK-style det through getrf (as numpy.linalg.det): may overflow or underflow
        where ``slogdet`` does not.
    """
    diagonal, parity = _lu_diagonal(x, blocks, block)
    return ((parity * mx.prod(diagonal, axis=-1)).reshape(x.shape[:-2]),), None


def slogdet(x: mx.array, *, blocks: Blocks = KERNELS, block: int = BLOCK) -> tuple:
    """``((sign, logabsdet), None)`` of a (..., n, n) stack: sums log|u_ii|, no overflow."""
    diagonal, parity = _lu_diagonal(x, blocks, block)
    sign = parity * mx.prod(mx.sign(diagonal), axis=-1)
    logabsdet = mx.sum(mx.log(mx.abs(diagonal)), axis=-1)
    batch = x.shape[:-2]
    return (sign.reshape(batch), logabsdet.reshape(batch)), None


def _singular(packed: mx.array) -> mx.array:
    return mx.any(mx.diagonal(packed, axis1=-2, axis2=-1) == 0, axis=-1)


def _getrs(
    blocks: Blocks, packed: mx.array, perm: mx.array, b: mx.array, *, trans: bool, block: int
) -> mx.array:
    """Solve with a (B, n, n) packed LU and its row permutation ``perm`` (B, n): getrs."""
    if trans:
        # Aᵀ = Uᵀ Lᵀ P: Uᵀ y = b, Lᵀ z = y, x = Pᵀ z (x[perm[i]] = z[i]).
        y = trsm(blocks, packed, b, lower=False, trans=True, unit=False, block=block)
        z = trsm(blocks, packed, y, lower=True, trans=True, unit=True, block=block)
        return _gather_rows(z, mx.argsort(perm, axis=-1).astype(mx.int32))
    y = trsm(blocks, packed, _gather_rows(b, perm), lower=True, trans=False, unit=True, block=block)
    return trsm(blocks, packed, y, lower=False, trans=False, unit=False, block=block)


def solve(a: mx.array, b: mx.array, *, blocks: Blocks = KERNELS, block: int = BLOCK) -> tuple:
    """A X = B by blocked LU with partial pivoting: ``((X,), failed)``.

    Args:
        a: (..., n, n).
        b: (..., n, K), same batch shape as ``a``.
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size.

    Returns:
        ``((X,), failed)``: X (..., n, K); ``failed`` (...) marks exactly singular
        matrices (a zero pivot), whose X is NaN.

    Notes:
        LAPACK dgesv: getrf then getrs (row gather, unit-lower and upper blocked
        substitutions), 2n³/3 + 2n²K flops.

    See Also:
        scipy.linalg.solve
    """
    packed, _, perm = getrf(blocks, flat(a), block=block)
    x = _getrs(blocks, packed, perm, flat(b), trans=False, block=block)
    failed = _singular(packed)
    return (nan_where(failed, x).reshape(b.shape),), failed.reshape(a.shape[:-2])


def inv(x: mx.array, *, blocks: Blocks = KERNELS, block: int = BLOCK) -> tuple:
    """A⁻¹ of a (..., n, n) stack as the solve against the identity: ``((inv,), failed)``.

    Notes:
        getrf + getrs with B = I: 2n³/3 + 2n³ flops (LAPACK's getri needs 2n³ in all but
        works in place; here both substitutions are blocked products).
    """
    a = flat(x)
    eye = mx.broadcast_to(mx.eye(x.shape[-1], dtype=x.dtype), a.shape)
    return solve(x, eye.reshape(x.shape), blocks=blocks, block=block)


def _permutation(piv: mx.array, n: int) -> tuple[mx.array, mx.array]:
    """The row permutation (B, n) of LAPACK pivots (B, n), and which pivots are invalid.

    The interchanges are sequential (row j with row piv[j], j = 0, 1, ...), so this is a
    loop of n steps of a few MLX ops each: a one-thread-per-matrix kernel would do it in
    one launch.
    """
    batch = piv.shape[0]
    bad = mx.any((piv < 0) | (piv >= n), axis=-1)
    piv = mx.clip(piv, 0, n - 1)
    perm = mx.broadcast_to(mx.arange(n, dtype=mx.int32), (batch, n))
    for j in range(piv.shape[-1]):
        target = piv[:, j : j + 1]
        moved = mx.take_along_axis(perm, target, axis=1)
        perm = mx.put_along_axis(perm, target, perm[:, j : j + 1], axis=1)
        perm = mx.concatenate([perm[:, :j], moved, perm[:, j + 1 :]], axis=1)
    return perm, bad


def lu_solve(
    packed: mx.array,
    piv: mx.array,
    b: mx.array,
    *,
    trans: int,
    blocks: Blocks = KERNELS,
    block: int = BLOCK,
) -> tuple:
    """Solve with a packed LU from ``lu_factor``: ``((X,), failed)``.

    Args:
        packed: (..., n, n) packed L\\U.
        piv: (..., n) int32 0-based LAPACK pivots.
        b: (..., n, K), same batch shape.
        trans: 0 solves A X = B, 1 and 2 (real matrices) Aᵀ X = B.
        blocks: the diagonal-block building blocks (kernels on the GPU).
        block: block size.

    Returns:
        ``((X,), failed)``: X (..., n, K); ``failed`` (...) marks a zero diagonal of U or
        a pivot outside [0, n), whose X is NaN.

    Notes:
        LAPACK dgetrs: the interchanges as one gather, two blocked substitutions.

    See Also:
        scipy.linalg.lu_solve
    """
    n = packed.shape[-1]
    pf = flat(packed)
    perm, bad = _permutation(piv.reshape(-1, n), n)
    x = _getrs(blocks, pf, perm, flat(b), trans=trans != 0, block=block)
    failed = bad | _singular(pf)
    return (nan_where(failed, x).reshape(b.shape),), failed.reshape(packed.shape[:-2])
