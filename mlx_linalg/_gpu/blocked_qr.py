"""Blocked Householder QR with compact WY and a recursive tall panel, for large matrices.

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in (the
MLX-op building blocks also take float64), ``(outputs, failed)`` out, lazy (no host
synchronization), batch axes kept.

Each outer block column (``block`` columns) is a tall panel (:func:`panel`), factored by
the building block's ``qr`` (one launch of the one-threadgroup ``qr_panel`` kernel in
``KERNELS``, the MLX-op column loop ``blocked_panel.qr_panel`` in ``REFERENCE``), or, with
``leaf=``, recursively: halves of it are factored in turn and the right half is updated by
the left half's reflectors with matrix products, so the building block only factors leaves
of at most ``leaf`` columns. The defaults (32-column panels, no recursion) were the fastest
on an H100 (docs/kernels-blocked-recursive.md). With ``panel="tsqr"`` each panel is
factored instead by TSQR and Householder reconstruction over the whole GPU
(``mlx_linalg._gpu.tsqr``, which also gives V and T). T comes from one product and one
triangular solve (the ``trsm_small`` kernel on the GPU); everything else is matrix
products. Q is formed ``Q_BLOCK`` reflector columns (several panels) at a time.

Memory: the graph keeps a few (B, m, n)-sized arrays alive at once (R, Q's corner, the
trailing matrix and its update, the reflectors); docs/kernels-blocked.md, "Memory of the
QR graph", says what kept every step's array alive before and how MLX's evaluation order
was steered (``mx.depends``).
"""

from typing import NamedTuple

import mlx.core as mx
import numpy as np

from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_common
from mlx_linalg._gpu.blocked_common import (
    KERNELS,
    Blocks,
    finite_matrices,
    flat,
    rank_update_applies,
    subtract_product,
    transposed_product_applies,
)
from mlx_linalg._gpu.blocked_triangular import trsm
from mlx_linalg._gpu.reference import nan_where

# Columns per outer step (panel width), and the widest panel the building block's qr (the
# one-threadgroup qr_panel kernel) factors: wider panels are split in two, recursively
# (:func:`panel`); None (or LEAF >= BLOCK) factors each panel with one qr_panel launch.
# Measured on an H100 (2026-11-26, tools/bench_blocked.py, float32, ms at n = 1024 / 4096):
# block 32 unrecursed 26.8 / 224, 64 unrecursed 37.4 / 262, 128 unrecursed 64.3 / 418,
# 128 with leaves of 16 40.7 / 297, of 32 33.0 / 262, 256 with leaves of 32 37.9 / 293.
# The recursion makes wide blocks affordable, but each leaf adds some 25 launches, which
# cost more than the narrow panel saves: narrow unrecursed panels win.
BLOCK = 32
LEAF = None
# Reflector columns applied per step of Q's formation: the blocks' reflectors are merged,
# this many columns (a multiple of BLOCK) at a time, into one compact WY block, so that
# forming Q takes a fourth of the steps, each on a wider block: fewer launches, and fewer
# (B, m, n)-sized arrays per launch (which bounds the memory that MLX's evaluation keeps
# in flight ahead of the device: docs/kernels-blocked.md, "Memory of the QR graph").
Q_BLOCK = 128
# How each panel is factored (:func:`geqrf`'s ``panel``): "kernel", the building block's
# ``qr`` (one launch of the one-threadgroup ``qr_panel`` kernel per panel, or the recursion
# of :func:`panel`), or "tsqr", TSQR with Householder reconstruction on the whole GPU
# (``mlx_linalg._gpu.tsqr``; docs/kernels-blocked.md, "TSQR panel"). TSQR measured faster
# on an H100 (2026-11-26, tools/bench_qr_panel.py, float32, ms, kernel -> tsqr): the QR at
# n = 1024 25.0 -> 22.3, 2048 63.0 -> 51.9, 4096 220 -> 189, 8192 922 -> 612, with the same
# R to 7e-7 and the same orthogonality; a 4096 x 32 panel alone 2.0 -> 1.0, 8192 x 32
# 3.5 -> 1.1.
PANEL = "tsqr"
PANELS = ("kernel", "tsqr")
# Products a @ b with batch x rows x inner x columns at most this many elements are formed
# as a broadcast product and a sum (two launches, float32 arithmetic) where the device
# multiplies float32 in reduced precision (the split product there is seven launches,
# :func:`_split_product`). Memory traffic grows with the limit: 4M elements are 16 MB
# written and read.
ELEMENTWISE_PRODUCT_ELEMENTS = 1 << 22
# Identities up to this order are host constants (no launch, copied with the graph's
# inputs) rather than mx.eye's four ops.
CONSTANT_ORDER = 512


class Panel(NamedTuple):
    """A factored tall panel (B, r, b) (:func:`panel`).

    Attributes:
        packed: (B, r, b): R on and above the diagonal, the reflectors' tails below (unit
            leading entries implied), as geqr2.
        taus: the leaves' tau arrays (B, leaf width), in column order.
        v: (B, r, b) the reflectors, unit lower trapezoidal, or None.
        t: (B, b, b) upper triangular with H₁ ⋯ H_b = I - V T Vᵀ, or None.
        tau: (B, b) all the panel's tau, with V and T, or None.
        r: (B, b, b) R's rows (packed's top square, zero below the diagonal) where the
            panel has them apart (the TSQR panel: so :func:`geqrf` reads them without
            forming ``packed``), or None.
    """

    packed: mx.array
    taus: list[mx.array]
    v: mx.array | None
    t: mx.array | None
    tau: mx.array | None = None
    r: mx.array | None = None


class Reflectors(NamedTuple):
    """One block column's reflectors in compact WY form: I - V T Vᵀ acts on the rows from
    the block's first column on (:func:`geqrf`).

    Attributes:
        v: (B, r, b) unit lower trapezoidal.
        t: (B, b, b) upper triangular.
        tau: (B, b) the reflectors' tau (T's diagonal).
    """

    v: mx.array
    t: mx.array
    tau: mx.array


def _elementwise(a: mx.array, b: mx.array) -> bool:
    """Whether ``a @ b`` is better formed by :func:`_elementwise_product`: the device multiplies
    float32 in reduced precision and the product is small."""
    batch, p, q = a.shape
    return (
        a.dtype == mx.float32
        and batch * p * q * b.shape[-1] <= ELEMENTWISE_PRODUCT_ELEMENTS
        and _precision.needs_split()
    )


def _elementwise_product(a: mx.array, b: mx.array) -> mx.array:
    """(B, p, q) @ (B, q, s) as a broadcast product and a sum: float32 products and sums
    (a float32 GEMM's arithmetic, never TF32), two launches (the split product is eight
    to ten) and a (B, p, q, s) temporary."""
    return mx.sum(a[:, :, :, None] * b[:, None, :, :], axis=2)


def _split_product(a: mx.array, b: mx.array) -> mx.array:
    """(B, p, q) @ (B, q, s), float32-accurate where the device multiplies float32 in
    reduced precision: hi·hi + hi·lo + lo·hi (``_precision.split_float32``'s halves) as
    three accumulating products (a matmul and two addmm).

    ``_precision.matmul`` forms the same three terms as two products, the corrections in
    one of inner size 2q, for which it stacks both halves of each operand: for Vᵀ C, with
    C a (B, m, n) trailing matrix or Q's corner, that is two more (B, m, n) arrays at
    once. Here only the halves exist, and one launch fewer (no stacking).
    """
    a_hi, a_lo = _precision.split_float32(a)
    b_hi, b_lo = _precision.split_float32(b)
    looped = _precision.per_matrix(a, b)
    product = _precision.product(a_hi, b_hi, looped=looped)
    product = _precision.accumulate(product, a_hi, b_lo, looped=looped)
    return _precision.accumulate(product, a_lo, b_hi, looped=looped)


def _product(a: mx.array, b: mx.array) -> mx.array:
    """``a @ b`` for (B, p, q) and (B, q, s), float32-accurate whatever the device."""
    if _elementwise(a, b):
        return _elementwise_product(a, b)
    if a.dtype == mx.float32 and _precision.needs_split():
        return _split_product(a, b)
    return _precision.product(a, b)


def _transposed_product(v: mx.array, c: mx.array) -> mx.array:
    """Vᵀ C for V (B, r, p) and C (B, r, q), float32-accurate, accumulated over at most
    ``_precision.CHUNK`` rows per product: the rows split into S chunks (views where C's
    rows are contiguous), the (B·S) chunk products summed by MLX's reduction.

    A device product accumulates its whole inner dimension in float32, and on an H100 its
    error grew with it (docs/kernels-blocked.md, "Long inner dimensions"); r is up to the
    matrix's order here. Where r has no divisor in [CHUNK/2, CHUNK] the product is whole.
    The chunk products are one launch of float32 FMAs reading C once
    (``blocked_common.transposed_product_kernel``) where V is narrow on a GPU that splits
    float32 products, else ``_product``'s.
    """
    batch, rows, p = v.shape
    width = _precision.chunk_width(rows)
    if width is None:
        if rows <= _precision.CHUNK and transposed_product_applies(v, c):
            return blocked_common.transposed_product_kernel(v, c)
        return _product(mx.swapaxes(v, -1, -2), c)
    count, q = rows // width, c.shape[-1]
    v_chunks = v.reshape(batch * count, width, p)
    c_chunks = c.reshape(batch * count, width, q)
    if transposed_product_applies(v_chunks, c_chunks):
        chunks = blocked_common.transposed_product_kernel(v_chunks, c_chunks)
    else:
        chunks = _product(mx.swapaxes(v_chunks, -1, -2), c_chunks)
    return mx.sum(chunks.reshape(batch, count, p, q), axis=1)


def _subtract_product(c: mx.array, a: mx.array, b: mx.array, *, skip: int = 0) -> mx.array:
    """``c[..., skip:] - a @ b``, float32-accurate: ``blocked_common.subtract_product`` (C
    read in place from column ``skip``: one ``rank_update`` launch for a narrow ``a``, or
    one ``addmm``, or the split product), or three launches through
    :func:`_elementwise_product` where that is the better choice."""
    if _elementwise(a, b) and not rank_update_applies(c, a, b):
        return c[..., skip:] - _elementwise_product(a, b)
    return subtract_product(c, a, b, at=(0, skip))


def _identity(n: int, dtype: mx.Dtype) -> mx.array:
    """The (n, n) identity: a constant (no graph op) up to :data:`CONSTANT_ORDER`, else
    ``mx.eye`` (four ops)."""
    if n > CONSTANT_ORDER:
        return mx.eye(n, dtype=dtype)
    return mx.array(np.eye(n), dtype=dtype)


def _strictly_lower(n: int) -> mx.array:
    """(n, n) bool constant: True below the diagonal."""
    return mx.array(np.tri(n, k=-1, dtype=bool))


def _vectors(packed: mx.array) -> mx.array:
    """V (B, r, b): unit lower trapezoidal from a packed panel (two launches)."""
    r, b = packed.shape[-2:]
    top = mx.where(_strictly_lower(b), packed[:, :b], _identity(b, packed.dtype))
    return mx.concatenate([top, packed[:, b:]], axis=1) if r > b else top


def _upper(packed: mx.array) -> mx.array:
    """R's rows (B, b, b) of a packed panel: its top square, zero below the diagonal."""
    b = packed.shape[-1]
    return mx.where(_strictly_lower(b), 0.0, packed[:, :b])


def _triangular_factor(blocks: Blocks, v: mx.array, tau: mx.array) -> mx.array:
    """The compact-WY T (B, b, b) of reflectors V (B, r, b) and tau (B, b) (dlarft).

    H₁ ⋯ H_b = I - V T Vᵀ with T⁻¹ = diag(1/tau) + striu(VᵀV) (Puglisi 1992; Joffrain
    et al. 2006), i.e. T = (I + diag(tau) striu(VᵀV))⁻¹ diag(tau): one product and one
    unit-upper triangular solve, valid with tau = 0 (a reflector that is the identity),
    instead of dlarft's b dependent matrix-vector steps. The solve reads only the strict
    upper triangle, so diag(tau) VᵀV needs no masking.
    """
    b = v.shape[-1]
    gram = _transposed_product(v, v)
    scaled = tau[:, :, None] * gram
    diagonal = tau[:, None, :] * _identity(b, v.dtype)
    return trsm(blocks, scaled, diagonal, lower=False, trans=False, unit=True, block=blocks.max_n)


def _reflect(v: mx.array, t: mx.array, c: mx.array, *, transpose: bool, skip: int = 0) -> mx.array:
    """(I - V T Vᵀ) C[..., skip:], or its transpose applied (LAPACK dlarfb, from the left).

    Vᵀ C is formed for all of C's columns and its first ``skip`` dropped: C is then read
    whole (a contiguous array where C[..., skip:] would be a strided view, which a matrix
    product copies first) at the cost of ``skip`` more columns of a thin product; so is the
    update C - V (op(T) W) where it is one ``rank_update`` launch (a panel's 32 reflectors
    on a GPU that splits float32 products: :func:`_subtract_product`).
    """
    w = _transposed_product(v, c)
    if skip:
        w = w[..., skip:]
    op_t = mx.swapaxes(t, -1, -2) if transpose else t
    return _subtract_product(c, v, _product(op_t, w), skip=skip)


def _left_width(b: int, leaf: int) -> int:
    """Columns of the left half: half the leaves (rounded up) of the ceil(b/leaf) a panel
    of width b needs, so every leaf but the last is ``leaf`` wide."""
    leaves = -(-b // leaf)
    return leaf * -(-leaves // 2)


def panel(blocks: Blocks, a: mx.array, *, leaf: int | None = LEAF, with_t: bool = True) -> Panel:
    """Householder QR (geqr2's result) of a tall (B, r, b) panel, r >= b, recursively.

    Args:
        blocks: the building blocks: ``qr`` factors the leaves, ``trsm`` forms T.
        a: (B, r, b), r >= b.
        leaf: the widest panel handed to ``blocks.qr``; None: the whole panel.
        with_t: also form V and T (the caller applies the reflectors); without, only the
            packed panel and tau (for a right half, whose reflectors its parent forms).

    Returns:
        :class:`Panel`: the packed panel and the leaves' tau, equal to ``blocks.qr(a)`` to
        rounding (the same reflectors, LAPACK's signs), and V and T when ``with_t``.

    Notes:
        Recursive QR (Elmroth & Gustavson, "Applying recursion to serial and parallel QR
        factorization leads to better performance", IBM J. Res. Dev. 44(4), 2000; LAPACK
        dgeqrt3): factor the left half [A₁] (with its V₁, T₁), apply its reflectors to the
        right half, A₂ ← (I - V₁ T₁ V₁ᵀ)ᵀ A₂ = A₂ - V₁ (T₁ᵀ (V₁ᵀ A₂)), and factor the rows
        below the left half's, A₂[b₁:], recursively; panels of at most ``leaf`` columns go
        to ``blocks.qr``. Unlike dgeqrt3, T is not merged from T₁, T₂ and V₁ᵀV₂ at every
        node (T = [[T₁, -T₁ V₁ᵀV₂ T₂], [0, T₂]]): only left halves and the caller need a
        T, and each gets it from its own VᵀV by one product and one triangular solve
        (:func:`_triangular_factor`), so right halves form neither V nor T: fewer launches
        (docs/kernels-blocked.md). 2rb² - 2b³/3 flops in the leaves and products, plus
        the T's.
    """
    b = a.shape[-1]
    if leaf is None or b <= leaf:
        packed, tau = blocks.qr(a)
        taus = [tau]
    else:
        b1 = _left_width(b, leaf)
        left = panel(blocks, a[:, :, :b1], leaf=leaf, with_t=True)
        right_columns = _reflect(left.v, left.t, a[:, :, b1:], transpose=True)
        right = panel(blocks, right_columns[:, b1:], leaf=leaf, with_t=False)
        packed = mx.concatenate(
            [left.packed, mx.concatenate([right_columns[:, :b1], right.packed], axis=1)], axis=2
        )
        taus = left.taus + right.taus
    if not with_t:
        return Panel(packed, taus, None, None)
    v = _vectors(packed)
    tau = mx.concatenate(taus, axis=1) if len(taus) > 1 else taus[0]
    return Panel(packed, taus, v, _triangular_factor(blocks, v, tau), tau)


def _factor_panel(blocks: Blocks, a: mx.array, *, leaf: int | None, kind: str) -> Panel:
    """A panel with V and T, by :func:`panel` (``kind`` "kernel") or ``tsqr.panel``."""
    if kind == "tsqr":
        from mlx_linalg._gpu import tsqr  # tsqr builds on this module

        return tsqr.panel(blocks, a, leaf=leaf)
    return panel(blocks, a, leaf=leaf)


def geqrf(
    blocks: Blocks,
    a: mx.array,
    *,
    block: int = BLOCK,
    leaf: int | None = LEAF,
    rows: int | None = None,
    panel: str | None = None,
) -> tuple[mx.array, list[Reflectors]]:
    """Blocked Householder QR of a (B, m, n) stack: ``(R, reflectors)``.

    Args:
        blocks: the diagonal-block building blocks.
        a: (B, m, n).
        block: block size (outer panel width).
        leaf: the widest panel the building block's ``qr`` factors (:func:`panel`).
        rows: R's rows: k = min(m, n) (None) or more, the rest zero.
        panel: how each panel is factored (:data:`PANELS`; None: :data:`PANEL` at the
            call): "kernel" (:func:`panel`) or "tsqr" (``tsqr.panel``: TSQR and
            Householder reconstruction; ``leaf`` unused).

    Returns:
        R (B, rows, n) upper trapezoidal; the :class:`Reflectors` of each block column,
        V (B, m - start, b) for the block starting at column ``start``: that block's
        reflectors are I - V T Vᵀ acting on rows start: (compact WY).

    Notes:
        Right-looking blocked Householder QR (Golub & Van Loan, Matrix Computations 4th
        ed., Alg. 5.2.2 with the compact WY representation of §5.1.7, Schreiber & Van Loan
        1989; LAPACK dgeqrf, dlarft, dlarfb). For each block column: Householder QR of the
        tall panel, recursively with leaves of at most ``leaf`` columns (:func:`panel`),
        with its V and T; the trailing columns updated by C -= V (Tᵀ (Vᵀ C)),
        float32-accurate products. 2mn² - 2n³/3 flops, all but O(mn·leaf) in the
        products.

        Memory (docs/kernels-blocked.md, "Memory of the QR graph"): the trailing matrix is
        its own, shrinking array, and each step's block row of R is copied out of it (one
        concatenate) before the next step starts: the next trailing matrix depends on that
        copy (``mx.depends``, no launch). Without the dependency MLX's evaluation order
        (the tape is built breadth-first from the outputs and run in reverse) deferred the
        block rows, which only R's assembly reads, to the end, and the block rows are
        views of the step's whole updated array: every step's array stayed alive, about
        n/(3·block) n² at once. R is a zero array that the block rows are written into
        (slice updates, in place).
    """
    panel = PANEL if panel is None else panel
    _, m, n = a.shape
    k = min(m, n)
    r = mx.zeros((a.shape[0], k if rows is None else rows, n), dtype=a.dtype)
    trailing = a
    reflectors = []
    for start in range(0, k, block):
        width = min(block, k - start)
        end = start + width
        factored = _factor_panel(blocks, trailing[:, :, :width], leaf=leaf, kind=panel)
        reflectors.append(Reflectors(factored.v, factored.t, factored.tau))
        row = _upper(factored.packed) if factored.r is None else factored.r
        if end < n:
            updated = _reflect(factored.v, factored.t, trailing, transpose=True, skip=width)
            row = mx.concatenate([row, updated[:, :width]], axis=2)
            if end < k:
                trailing = mx.depends(updated[:, width:], row)
        r[:, start:end, start:] = row
    return r, reflectors


def _merge(blocks: Blocks, group: list[Reflectors], after: mx.array) -> tuple[mx.array, mx.array]:
    """(V, T) of consecutive blocks' reflectors as one compact WY block (dlarft over the
    blocks' columns together).

    The blocks' V, each shifted down by the columns before it (the rows above a reflector
    are zero), side by side: one pad and a slice update per further block (in place); T
    from V and the blocks' tau as :func:`_triangular_factor` forms a panel's. All of it
    runs after ``after`` (``mx.depends``, no launch): so forming T, many small launches,
    comes between the steps of Q's formation, instead of all of it before the first
    step, and the steps' large arrays are spread out (docs/kernels-blocked.md, "Memory
    of the QR graph").
    """
    if len(group) == 1:
        return group[0].v, group[0].t
    first = mx.depends(group[0].v, after)
    rows, width = first.shape[1], sum(block.v.shape[-1] for block in group)
    v = mx.pad(first, [(0, 0), (0, 0), (0, width - first.shape[-1])])
    column = first.shape[-1]
    for block in group[1:]:
        b = block.v.shape[-1]
        v[:, rows - block.v.shape[1] :, column : column + b] = block.v
        column += b
    tau = mx.concatenate([block.tau for block in group], axis=1)
    return v, _triangular_factor(blocks, v, tau)


def _eye(rows: int, columns: int, batch: int, dtype: mx.Dtype) -> mx.array:
    """(batch, rows, columns) identity: a padded constant (one launch at most)."""
    size = min(rows, columns)
    eye = _identity(size, dtype)
    if (rows, columns) != (size, size):
        eye = mx.pad(eye, [(0, rows - size), (0, columns - size)])
    return mx.broadcast_to(eye, (batch, rows, columns))


def _border(corner: mx.array, width: int) -> mx.array:
    """[[I, 0], [0, corner]] with a (width, width) identity: one pad and one slice update
    (in place) of the identity block."""
    bordered = mx.pad(corner, [(0, 0), (width, 0), (width, 0)])
    bordered[:, :width, :width] = _identity(width, corner.dtype)
    return bordered


def qr(
    x: mx.array,
    *,
    mode: str,
    blocks: Blocks = KERNELS,
    block: int = BLOCK,
    leaf: int | None = LEAF,
    q_block: int = Q_BLOCK,
    panel: str | None = None,
) -> tuple:
    """Householder QR of a stack, blocked: ``((Q, R), failed)``.

    Args:
        x: (..., M, N).
        mode: ``"reduced"`` (Q (..., M, K), R (..., K, N), K = min(M, N)) or
            ``"complete"`` (Q (..., M, M), R (..., M, N)).
        blocks: the diagonal-block building blocks (kernels on the GPU: the panel
            leaves and the triangular solve that forms T).
        block: block size (outer panel width).
        leaf: the widest panel the building block's ``qr`` factors; wider panels are
            factored recursively (:func:`panel`). None, or ``leaf >= block``: no
            recursion (one building-block call per panel).
        q_block: reflector columns per step of Q's formation (a multiple of ``block``
            merges that many blocks' reflectors; ``block`` or less: one block per step).
        panel: how each panel is factored (:data:`PANELS`; None: :data:`PANEL` at the
            call): "kernel" or "tsqr" (TSQR and Householder reconstruction, ``tsqr.panel``).

    Returns:
        ``((Q, R), failed)``: R upper trapezoidal with LAPACK's signs (R's diagonal may be
        negative); ``failed`` (...) marks matrices with a NaN or Inf entry, whose Q and R
        are NaN.

    Raises:
        ValueError: ``block`` or ``leaf`` below 1, or an unknown ``panel``.

    Notes:
        geqrf, then Q formed by applying the blocks' reflectors to the first columns of
        the identity from the last block to the first (LAPACK dorgqr), ``q_block``
        columns of reflectors at a time (:func:`_merge`). When the block starting at
        column s is applied, Q is the identity outside rows and columns s:, so each step
        works on the (m - s) x (columns - s) corner only and makes it a new array.
        4m²n - 2mn² + 2n³/3 flops (reduced, m >= n) in all, plus O(q_block) more per
        row and column for the merged blocks' T and corners.

    See Also:
        scipy.linalg.qr
    """
    if block < 1 or (leaf is not None and leaf < 1):
        raise ValueError(f"[mlx_linalg.qr] block and leaf must be >= 1, got {block}, {leaf}")
    panel = PANEL if panel is None else panel
    if panel not in PANELS:
        raise ValueError(f"[mlx_linalg.qr] panel must be one of {PANELS}, got {panel!r}")
    a = flat(x)
    batch, m, n = a.shape
    k = min(m, n)
    columns = m if mode == "complete" else k
    r, reflectors = geqrf(blocks, a, block=block, leaf=leaf, rows=columns, panel=panel)
    merged = max(1, q_block // block)
    groups = [
        (start, reflectors[i : i + merged])
        for i, start in enumerate(range(0, k, block))
        if i % merged == 0
    ]
    last = groups[-1][0]
    corner = _eye(m - last, columns - last, batch, a.dtype)
    for start, group in reversed(groups):
        v, t = _merge(blocks, group, corner)
        if corner.shape[1] < m - start:  # border the corner with the identity's rows
            corner = _border(corner, m - start - corner.shape[1])
        corner = _reflect(v, t, corner, transpose=False)
    failed = mx.logical_not(finite_matrices(a))
    shape = x.shape[:-2]
    q = nan_where(failed, corner).reshape(*shape, m, columns)
    r = nan_where(failed, r).reshape(*shape, columns, n)
    return (q, r), failed.reshape(shape)
