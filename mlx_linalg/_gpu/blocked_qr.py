"""Blocked Householder QR with compact WY for large matrices.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept.

The tall panel (geqr2) is the building block's ``qr``: one launch of the ``qr_panel``
kernel in ``KERNELS`` (``blocked_panel.qr_panel_kernel``), the MLX-op column loop
``blocked_panel.qr_panel`` in ``REFERENCE``; T comes from one product and one triangular
solve (the ``trsm_small`` kernel on the GPU); everything else is matrix products.
"""

import mlx.core as mx

from mlx_linalg import _precision
from mlx_linalg._gpu.blocked_common import (
    BLOCK,
    KERNELS,
    Blocks,
    flat,
    subtract_product,
)
from mlx_linalg._gpu.blocked_triangular import trsm
from mlx_linalg._gpu.reference import nan_where


def _triangular_factor(blocks: Blocks, v: mx.array, tau: mx.array) -> mx.array:
    """The compact-WY T (B, b, b) of reflectors V (B, r, b) and tau (B, b) (dlarft).

    H₁ ⋯ H_b = I - V T Vᵀ with T⁻¹ = diag(1/tau) + striu(VᵀV) (Puglisi 1992; Joffrain
    et al. 2006), i.e. T = (I + diag(tau) striu(VᵀV))⁻¹ diag(tau): one product and one
    unit-upper triangular solve, valid with tau = 0 (a reflector that is the identity),
    instead of dlarft's b dependent matrix-vector steps.
    """
    b = v.shape[-1]
    gram = _precision.matmul(mx.swapaxes(v, -1, -2), v)
    scaled = tau[:, :, None] * mx.triu(gram, 1)
    diagonal = tau[:, :, None] * mx.eye(b, dtype=v.dtype)
    return trsm(blocks, scaled, diagonal, lower=False, trans=False, unit=True, block=blocks.max_n)


def _vectors(packed: mx.array) -> mx.array:
    """V (B, r, b): unit lower trapezoidal from a packed panel."""
    r, b = packed.shape[-2:]
    return mx.tril(packed, -1) + mx.eye(r, b, dtype=packed.dtype)


def _reflect(v: mx.array, t: mx.array, c: mx.array, *, transpose: bool) -> mx.array:
    """(I - V T Vᵀ) C, or its transpose applied (LAPACK dlarfb, from the left)."""
    w = _precision.matmul(mx.swapaxes(v, -1, -2), c)
    op_t = mx.swapaxes(t, -1, -2) if transpose else t
    return subtract_product(c, v, _precision.matmul(op_t, w))


def geqrf(
    blocks: Blocks, a: mx.array, *, block: int = BLOCK
) -> tuple[mx.array, list[tuple[mx.array, mx.array]]]:
    """Blocked Householder QR of a (B, m, n) stack: ``(R, reflectors)``.

    Returns:
        R (B, k, n), k = min(m, n), upper trapezoidal; reflectors, per block column
        starting at ``start``, ``(V, T)`` with V (B, m - start, b) and T (B, b, b): that
        block's reflectors are I - V T Vᵀ acting on rows start: (compact WY).

    Notes:
        Right-looking blocked Householder QR (Golub & Van Loan, Matrix Computations 4th
        ed., Alg. 5.2.2 with the compact WY representation of §5.1.7, Schreiber & Van Loan
        1989; LAPACK dgeqrf, dgeqr2, dlarft, dlarfb). For each block column: Householder
        QR of the tall panel (the building block's ``qr``); T from the panel's
        vectors; the trailing columns updated by C -= V (Tᵀ (Vᵀ C)), float32-accurate
        products. The trailing matrix is its own, shrinking array; R is assembled from its
        block rows at the end. 2mn² - 2n³/3 flops, all but O(mnb) in the products.
    """
    _, m, n = a.shape
    k = min(m, n)
    trailing = a
    reflectors = []
    rows_of_r = []
    for start in range(0, k, block):
        width = min(block, k - start)
        packed, tau = blocks.qr(trailing[:, :, :width])
        v = _vectors(packed)
        t = _triangular_factor(blocks, v, tau)
        reflectors.append((v, t))
        row = mx.triu(packed[:, :width])
        if start + width < n:
            updated = _reflect(v, t, trailing[:, :, width:], transpose=True)
            row = mx.concatenate([row, updated[:, :width]], axis=2)
            trailing = updated[:, width:]
        rows_of_r.append(mx.pad(row, [(0, 0), (0, 0), (start, 0)]))
    r = mx.concatenate(rows_of_r, axis=1) if len(rows_of_r) > 1 else rows_of_r[0]
    return r, reflectors


def qr(x: mx.array, *, mode: str, blocks: Blocks = KERNELS, block: int = BLOCK) -> tuple:
    """Householder QR of a stack, blocked: ``((Q, R), failed)``.

    Args:
        x: (..., M, N).
        mode: ``"reduced"`` (Q (..., M, K), R (..., K, N), K = min(M, N)) or
            ``"complete"`` (Q (..., M, M), R (..., M, N)).
        blocks: the diagonal-block building blocks (kernels on the GPU: the triangular
            solve that forms T).
        block: block size (panel width).

    Returns:
        ``((Q, R), failed)``: R upper trapezoidal with LAPACK's signs (R's diagonal may be
        negative); ``failed`` (...) marks matrices with a NaN or Inf entry, whose Q and R
        are NaN.

    Notes:
        geqrf, then Q formed by applying the blocks' reflectors to the first columns of
        the identity from the last block to the first (LAPACK dorgqr). When block j is
        applied, Q is the identity outside rows and columns start_j:, so each step works
        on the (m - start_j) x (columns - start_j) corner only and makes it a new array.
        4m²n - 2mn² + 2n³/3 flops (reduced, m >= n) in all.

    See Also:
        scipy.linalg.qr
    """
    a = flat(x)
    batch, m, n = a.shape
    k = min(m, n)
    r, reflectors = geqrf(blocks, a, block=block)
    columns = m if mode == "complete" else k
    if columns > k:  # complete Q of a tall matrix: R gets zero rows
        r = mx.pad(r, [(0, 0), (0, columns - k), (0, 0)])
    starts = list(range(0, k, block))
    corner = mx.broadcast_to(
        mx.eye(m - starts[-1], columns - starts[-1], dtype=a.dtype),
        (batch, m - starts[-1], columns - starts[-1]),
    )
    for start, (v, t) in zip(reversed(starts), reversed(reflectors), strict=True):
        width = v.shape[-1]
        if corner.shape[1] < m - start:  # border the corner with the identity's rows
            top = mx.broadcast_to(
                mx.eye(width, columns - start, dtype=a.dtype), (batch, width, columns - start)
            )
            corner = mx.concatenate([top, mx.pad(corner, [(0, 0), (0, 0), (width, 0)])], axis=1)
        corner = _reflect(v, t, corner, transpose=False)
    failed = mx.logical_not(mx.all(mx.isfinite(a), axis=(-2, -1)))
    shape = x.shape[:-2]
    q = nan_where(failed, corner).reshape(*shape, m, columns)
    r = nan_where(failed, r).reshape(*shape, columns, n)
    return (q, r), failed.reshape(shape)
