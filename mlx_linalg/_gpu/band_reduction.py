"""Stage 1 of the two-stage tridiagonal reduction: a dense symmetric matrix to band form.

The symmetric eigensolver's usual first step, the reduction to tridiagonal form (LAPACK
dsytrd), spends half its flops in matrix-vector products (dsymv), which run at memory
speed. The two-stage reduction (Bischof, Lang & Sun, "A framework for symmetric band
reduction", ACM TOMS 26(4), 2000; Haidar, Ltaief & Dongarra, "Parallel reduction to
condensed forms for symmetric eigenvalue problems using aggregated fine-grained and
memory-aware kernels", SC11; PLASMA's dsytrd_sy2sb, MAGMA's ssytrd_sy2sb) first reduces
the matrix to a band of width ``band`` with blocked Householder QR panels and two-sided
updates whose flops are all matrix products (this module), then chases the band down to
tridiagonal (stage 2, O(n²·band) flops; not here), before a tridiagonal eigensolver and
the back-transformation of the eigenvectors (:func:`apply_q` for stage 1's part).

Like the blocked factorizations (``blocked_qr``), :func:`sy2sb` is a lazy MLX graph: a
Python loop over block columns, one panel factorization per block column by the blocked
QR's panel machinery (``blocked_qr.panel`` or ``tsqr.panel``, with ``blocked_common``'s
building blocks: kernels on the GPU, their MLX-op references on the CPU), everything else
float32-accurate matrix products (``blocked_common.subtract`` with split-once operands,
``blocked_qr._product``) and slices; nothing synchronizes with the host. Every few block
columns the graph built so far starts evaluating (``_tracing.start_every``), so the GPU
works while Python builds the rest.
"""

import mlx.core as mx

from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_qr
from mlx_linalg._gpu.blocked_common import (
    KERNELS,
    Blocks,
    finite_matrices,
    flat,
    left,
    right,
    subtract,
    subtract_product,
)
from mlx_linalg._gpu.reference import nan_where
from mlx_linalg._tracing import start_every

# Band width (columns per block column). 32 is the blocked QR's panel width (the widest the
# one-launch TSQR panel takes is 63); to be tuned on the GPU (tools/bench_band_reduction.py).
BAND = 32


def _symmetric(a: mx.array) -> mx.array:
    """The symmetric matrix whose lower triangle is ``a``'s (two launches and a transpose)."""
    return mx.tril(a) + mx.swapaxes(mx.tril(a, -1), -1, -2)


def _two_sided(trailing: mx.array, band: int, v: mx.array, t: mx.array) -> mx.array:
    """Qᵀ S₂₂ Q for the symmetric S₂₂ = trailing[:, band:, band:] (B, r, r) and
    Q = I - V T Vᵀ (V (B, r, w), T (B, w, w)).

    The SYR2K form (LAPACK dsytrd / dlatrd; PLASMA dsytrd_sy2sb): X = S₂₂ V T,
    W = X - ½ V (Tᵀ (Vᵀ X)), Qᵀ S₂₂ Q = S₂₂ - V Wᵀ - W Vᵀ, the last as one product
    S₂₂ - [V W] [W V]ᵀ of inner size 2w (one fused ``addmm``, two with split products).
    Derivation: QᵀSQ = S - X Vᵀ - V Xᵀ + V M Vᵀ with M = Tᵀ Vᵀ S V T = Tᵀ Vᵀ X symmetric,
    and V M Vᵀ is split evenly between the two rank-w terms. 2r²w flops for S V, 4r²w for
    the rank-2w update (full products: MLX has no symmetric ones), 4rw² + O(w³) for the
    thin ones.

    S₂₂ V is formed as 0 - S₂₂ V by ``blocked_common.subtract`` (the split-once operands:
    on the GPU, S₂₂'s hi part and stacked pair in one launch of the ``split_pair`` kernel),
    so the sign is carried: with Z = -X, W = ½ V (Tᵀ (Vᵀ Z)) - Z. The operands [V W] and
    [Wᵀ; Vᵀ] are written in one launch each (``_precision.pair``). The product reads the
    trailing matrix's rows whole, [S₂₁ S₂₂] [0; V] (as ``blocked_qr._reflect`` reads C
    whole): a row block of a contiguous matrix is itself contiguous, where S₂₂ alone is a
    strided view that the split (a kernel input) would copy first; the cost is ``band``
    more columns of a thin product. Vᵀ Z is summed over row chunks
    (``blocked_qr._transposed_product``, as the QR's Vᵀ C), and on a GPU that splits
    float32 products the narrow ones take the ``rank_update`` kernel
    (``blocked_common.subtract_product``): Vᵀ Z in its product form, W, and the rank-2w
    update of S₂₂ read in place from the trailing matrix (no copy of the S₂₂ view). A NaN
    or Inf in S₂₁ spreads to its own matrix only, whose band is NaN anyway.
    """
    batch, r, w = v.shape
    zero = mx.zeros((batch, r, w), dtype=v.dtype)
    padded = mx.pad(v, [(0, 0), (band, 0), (0, 0)])
    z = blocked_qr._product(subtract(zero, left(trailing[:, band:]), right(padded)), t)  # -S₂₂VT
    m = blocked_qr._product(mx.swapaxes(t, -1, -2), blocked_qr._transposed_product(v, z))
    w_ = subtract_product(-z, v, -0.5 * m)  # ½ V M - Z
    vw = _precision.pair(v, w_, -1)
    wv = _precision.pair(mx.swapaxes(w_, -1, -2), mx.swapaxes(v, -1, -2), -2)
    return subtract_product(trailing, vw, wv, at=(band, band))


def sy2sb(
    a: mx.array,
    *,
    band: int = BAND,
    blocks: Blocks = KERNELS,
    panel: str | None = None,
) -> tuple[mx.array, list[blocked_qr.Reflectors]]:
    """Reduce symmetric matrices to band form by orthogonal similarity: Qᵀ A Q = band.

    Args:
        a: (..., n, n) float32 or float64; only the lower triangle is read.
        band: the band's half-width b >= 1 (entries with |i - j| > b are zero).
        blocks: the blocked QR's building blocks (``blocked_common.KERNELS`` on the GPU,
            ``blocked_common.REFERENCE`` anywhere).
        panel: how each panel is factored (``blocked_qr.PANELS``; None: ``blocked_qr.PANEL``
            at the call): "kernel" (``blocked_qr.panel``) or "tsqr" (``tsqr.panel``).

    Returns:
        ``(band_matrix, reflectors)``: band_matrix (..., n, n) symmetric (bit for bit),
        zero outside the band; reflectors, one ``blocked_qr.Reflectors`` per block
        column, in order: V (B, n - row, w), T (B, w, w), tau (B, w) with B the flattened
        batch and row = j + b for the block column starting at column j, I - V T Vᵀ
        acting on rows ``row:``; Q = H₁ H₂ ⋯ H_K with H_k that block
        column's I - V T Vᵀ embedded in the identity (:func:`apply_q`). A matrix with a
        NaN or Inf in its lower triangle gives an all-NaN band (its reflectors are
        undefined); the other matrices of the batch are unaffected.

    Raises:
        ValueError: ``band`` below 1, a non-square or non-floating input.

    Notes:
        Blocked two-sided Householder reduction (Bischof, Lang & Sun 2000, the SBR
        framework's dense-to-band step; Haidar, Ltaief & Dongarra, SC11; PLASMA
        dsytrd_sy2sb). For each block column starting at column j, with the trailing
        symmetric matrix S = A[j:, j:] = [[S₁₁, S₂₁ᵀ], [S₂₁, S₂₂]] (S₁₁ b x b, S₂₁ r x b,
        r = n - j - b): Householder QR of the panel S₂₁ = Q [R; 0] (compact WY,
        Q = I - V T Vᵀ, LAPACK's conventions), S₂₁ ← [R; 0] (within the band), and
        S₂₂ ← Qᵀ S₂₂ Q in the SYR2K form (:func:`_two_sided`); S₂₂ is the next trailing
        matrix, a new, shrinking array (as ``blocked_qr.geqrf``'s), whose first block
        column with the R above it is copied out before the next step starts
        (``mx.depends``: blocked_qr's "Memory" notes). When r < b (the last step for
        n not a multiple of b) only the first r columns are factored (an r x r QR); the
        panel's other columns, Qᵀ S₂₁[:, r:], lie within the band. The band is assembled
        from the blocks' lower triangles and symmetrized at the end.

        Flops: with symmetric products (LAPACK's dsyr2k, dsymm) stage 1 costs about 4n³/3;
        here the products are full (2r²b for S₂₂V, 4r²b for the rank-2b update per step),
        so about 2n³, nearly all of it in matrix products, plus the panels' QR
        (about 2rb² + 4rb² per block column) and O(nb²) in the thin products.
    """
    if band < 1:
        raise ValueError(f"[mlx_linalg.sy2sb] band must be >= 1, got {band}")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"[mlx_linalg.sy2sb] expected square matrices, got shape {a.shape}")
    if a.dtype not in (mx.float32, mx.float64):
        raise ValueError(f"[mlx_linalg.sy2sb] expected float32 or float64, got {a.dtype}")
    panel = blocked_qr.PANEL if panel is None else panel
    if panel not in blocked_qr.PANELS:
        raise ValueError(
            f"[mlx_linalg.sy2sb] panel must be one of {blocked_qr.PANELS}, got {panel!r}"
        )
    x = flat(a)
    batch, n, _ = x.shape
    failed = mx.logical_not(finite_matrices(mx.tril(x)))
    trailing = _symmetric(x)
    lower = mx.zeros((batch, n, n), dtype=x.dtype)
    reflectors: list[blocked_qr.Reflectors] = []
    start = 0
    while n - start - band > 1:
        rows = n - start - band  # the panel's rows
        width = min(band, rows)  # columns factored (r x r when r < band)
        s21 = trailing[:, band:, :band]
        factored = blocked_qr._factor_panel(blocks, s21[:, :, :width], leaf=None, kind=panel)
        v, t = factored.v, factored.t
        reflectors.append(blocked_qr.Reflectors(v, t, factored.tau))
        r = blocked_qr._upper(factored.packed) if factored.r is None else factored.r
        if width < band:  # the columns right of the square panel, within the band
            r = mx.concatenate(
                [r, blocked_qr._reflect(v, t, s21[:, :, width:], transpose=True)], axis=2
            )
        column = mx.concatenate([trailing[:, :band, :band], r], axis=1)
        lower[:, start : start + band + width, start : start + band] = column
        trailing = mx.depends(_two_sided(trailing, band, v, t), column)
        start += band
        start_every(len(reflectors), trailing)
    lower[:, start:, start:] = trailing
    lower = mx.tril(lower)
    upper = mx.swapaxes(mx.tril(lower, -1), -1, -2)
    banded = nan_where(failed, lower + upper)
    return banded.reshape(a.shape), reflectors


def apply_q(
    reflectors: list[blocked_qr.Reflectors],
    c: mx.array,
    *,
    transpose: bool = False,
) -> mx.array:
    """Q C (or Qᵀ C) with Q = H₁ ⋯ H_K the reflectors of :func:`sy2sb`.

    Args:
        reflectors: :func:`sy2sb`'s reflectors of (B, n, n) matrices (B the flattened
            batch).
        c: (B, n, k) or with the batch shape of the input of :func:`sy2sb` (..., n, k).
        transpose: apply Qᵀ instead of Q.

    Returns:
        Q C (or Qᵀ C), c's shape and dtype.

    Notes:
        Blocked compact-WY application (LAPACK dormtr / dlarfb, from the left): Q C applies
        the blocks from the last to the first, H_k C[row_k:] = C[row_k:] - V (T (Vᵀ
        C[row_k:])) with row_k = n - (V's rows); Qᵀ C the first to the last with Tᵀ. Each
        block updates only its rows (a slice update of one copy of C). About
        4(n - row_k)·b·k flops per block, 2n²k in all, all of it in matrix products. The
        blocks are not merged (blocked_qr.qr's ``Q_BLOCK``): a later step.
    """
    shape = c.shape
    result = mx.array(flat(c))  # a copy: assigned into below
    n = result.shape[1]
    order = reflectors if transpose else reversed(reflectors)
    for step, block in enumerate(order, 1):
        row = n - block.v.shape[1]
        result[:, row:] = blocked_qr._reflect(
            block.v, block.t, result[:, row:], transpose=transpose
        )
        start_every(step, result)
    return result.reshape(shape)
