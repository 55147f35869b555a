"""Blocked Householder QR with compact WY for large matrices.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept.

Unlike Cholesky and LU, QR has no diagonal-block kernel to plug in: the small QR kernel
(``qr_small``) takes at most 64 rows and returns Q explicitly, while a blocked QR needs a
tall panel's Householder vectors. The panel here is a column loop of MLX ops (geqr2), the
piece that wants a kernel; everything else is matrix products.
"""

import mlx.core as mx

from mlx_linalg import _precision
from mlx_linalg._gpu.blocked_common import BLOCK, flat, nan_where, subtract_product


def _householder(x: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """LAPACK dlarfg for each column x (B, r): ``(v, tau, beta)`` with v[:, 0] = 1 and
    (I - tau v vᵀ) x = beta e₁. tau = 0 (H = I) where x[1:] is zero.

    The norm is taken of x scaled by max|x|, so no square overflows or underflows.
    """
    alpha, tail = x[:, 0], x[:, 1:]
    big = mx.max(mx.abs(x), axis=1)
    scale = mx.where(big > 0, big, 1.0)
    tail_sq = mx.sum(mx.square(tail / scale[:, None]), axis=1)
    identity = tail_sq == 0
    norm = scale * mx.sqrt(mx.square(alpha / scale) + tail_sq)
    beta = mx.where(alpha >= 0, -norm, norm)
    beta = mx.where(identity, alpha, beta)
    safe_beta = mx.where(identity, 1.0, beta)
    tau = mx.where(identity, 0.0, (beta - alpha) / safe_beta)
    denominator = mx.where(identity, 1.0, alpha - beta)
    v = mx.concatenate([mx.ones_like(alpha)[:, None], tail / denominator[:, None]], axis=1)
    return v, tau, beta


def _panel(panel: mx.array) -> tuple[mx.array, mx.array]:
    """Householder QR (geqr2) of a (B, r, b) panel, r >= b, and its compact-WY T (dlarft).

    Returns:
        ``(packed, t)``: packed (B, r, b) with R on and above the diagonal and the
        Householder vectors' tails below (unit leading entries implied); t (B, b, b) upper
        triangular with H₁ H₂ ⋯ H_b = I - V T Vᵀ.
    """
    batch, r, b = panel.shape
    work = mx.array(panel)  # a copy: the steps below assign into it
    vectors = mx.zeros((batch, r, b), dtype=panel.dtype)
    t = mx.zeros((batch, b, b), dtype=panel.dtype)
    for j in range(b):
        v, tau, beta = _householder(work[:, j:, j])
        if j + 1 < b:
            w = mx.sum(v[:, :, None] * work[:, j:, j + 1 :], axis=1)  # vᵀ A, (B, b - j - 1)
            work[:, j:, j + 1 :] = work[:, j:, j + 1 :] - tau[:, None, None] * (
                v[:, :, None] * w[:, None, :]
            )
        work[:, j, j] = beta
        work[:, j + 1 :, j] = v[:, 1:]
        vectors[:, j:, j] = v
        # dlarft: T[:j, j] = -tau_j T[:j, :j] (V[:, :j]ᵀ v_j), T[j, j] = tau_j.
        if j:
            vtv = mx.sum(vectors[:, j:, :j] * v[:, :, None], axis=1)  # (B, j)
            column = -tau[:, None] * mx.sum(t[:, :j, :j] * vtv[:, None, :], axis=2)
            t[:, :j, j] = column
        t[:, j, j] = tau
    return work, t


def _vectors(packed: mx.array) -> mx.array:
    """V (B, r, b): unit lower trapezoidal from a packed panel."""
    r, b = packed.shape[-2:]
    return mx.tril(packed, -1) + mx.eye(r, b, dtype=packed.dtype)


def _apply_transpose(v: mx.array, t: mx.array, c: mx.array) -> mx.array:
    """(I - V T Vᵀ)ᵀ C = C - V (Tᵀ (Vᵀ C)) (LAPACK dlarfb, left, transpose)."""
    w = _precision.matmul(mx.swapaxes(v, -1, -2), c)
    return subtract_product(c, v, _precision.matmul(mx.swapaxes(t, -1, -2), w))


def _apply(v: mx.array, t: mx.array, c: mx.array) -> mx.array:
    """(I - V T Vᵀ) C = C - V (T (Vᵀ C)) (LAPACK dlarfb, left, no transpose)."""
    w = _precision.matmul(mx.swapaxes(v, -1, -2), c)
    return subtract_product(c, v, _precision.matmul(t, w))


def geqrf(
    a: mx.array, *, block: int = BLOCK
) -> tuple[mx.array, list[tuple[int, mx.array, mx.array]]]:
    """Blocked Householder QR of a (B, m, n) stack: ``(packed, reflectors)``.

    Returns:
        packed (B, m, n) with R on and above the diagonal; reflectors, per block column,
        ``(start, V, T)`` with V (B, m - start, b) and T (B, b, b): that block's
        reflectors are I - V T Vᵀ acting on rows start: (compact WY).

    Notes:
        Right-looking blocked Householder QR (Golub & Van Loan, Matrix Computations 4th
        ed., Alg. 5.2.2 with the compact WY representation of §5.1.7, Schreiber & Van Loan
        1989; LAPACK dgeqrf, dgeqr2, dlarft, dlarfb). For each block column: Householder
        QR of the tall panel; T from the panel's vectors; the trailing columns updated by
        C -= V (Tᵀ (Vᵀ C)), three float32-accurate products. 2mn² - 2n³/3 flops, all but
        O(mnb) in the products.
    """
    _, m, n = a.shape
    k = min(m, n)
    work = mx.array(a)  # a copy: the steps below assign into it
    reflectors = []
    for start in range(0, k, block):
        stop = min(start + block, k)
        packed, t = _panel(work[:, start:, start:stop])
        work[:, start:, start:stop] = packed
        v = _vectors(packed)
        if stop < n:
            work[:, start:, stop:] = _apply_transpose(v, t, work[:, start:, stop:])
        reflectors.append((start, v, t))
    return work, reflectors


def qr(x: mx.array, *, mode: str, block: int = BLOCK) -> tuple:
    """Householder QR of a stack, blocked: ``((Q, R), failed)``.

    Args:
        x: (..., M, N).
        mode: ``"reduced"`` (Q (..., M, K), R (..., K, N), K = min(M, N)) or
            ``"complete"`` (Q (..., M, M), R (..., M, N)).
        block: block size (panel width).

    Returns:
        ``((Q, R), failed)``: R upper trapezoidal with LAPACK's signs (R's diagonal may be
        negative); ``failed`` (...) marks matrices with a NaN or Inf entry, whose Q and R
        are NaN.

    Notes:
        geqrf, then Q formed by applying the blocks' reflectors to the first columns of
        the identity from the last block to the first (LAPACK dorgqr): rows and columns
        above a block's start stay those of the identity, so each step updates only
        Q[start:, start:]. 4m²n - 2mn² + 2n³/3 flops (reduced, m >= n) in all.

    See Also:
        scipy.linalg.qr
    """
    a = flat(x)
    m, n = a.shape[-2:]
    k = min(m, n)
    packed, reflectors = geqrf(a, block=block)
    columns = m if mode == "complete" else k
    q = mx.broadcast_to(mx.eye(m, columns, dtype=a.dtype), (a.shape[0], m, columns))
    q = mx.array(q)  # a copy: the steps below assign into it
    for start, v, t in reversed(reflectors):
        q[:, start:, start:] = _apply(v, t, q[:, start:, start:])
    r = mx.triu(packed[:, :columns, :])
    failed = mx.logical_not(mx.all(mx.isfinite(a), axis=(-2, -1)))
    batch = x.shape[:-2]
    q = nan_where(failed, q).reshape(*batch, m, columns)
    r = nan_where(failed, r).reshape(*batch, columns, n)
    return (q, r), failed.reshape(batch)
