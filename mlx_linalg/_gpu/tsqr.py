"""A tall panel's Householder QR by TSQR and Householder reconstruction (issue #7).

The blocked QR factors each (B, r, b) panel with one launch of the one-threadgroup
``qr_panel`` kernel, which walks all r rows b times on one multiprocessor. Here the panel
is factored by the whole GPU, in a number of launches that grows with log(r), not with b:

1. TSQR (Demmel, Grigori, Hoemmen & Langou, "Communication-optimal parallel and sequential
   QR and LU factorizations", SIAM J. Sci. Comput. 34, 2012): the rows are split into
   leaves of at most :data:`LEAF_ROWS`; every leaf of every matrix is factored by one
   batched launch of the small Householder QR kernel (``qr_small``: thin Q and R), the
   leaves' R stacked in groups and factored again, up a tree to one b x b R. The explicit
   thin Q is then carried top-down by batched products (float32-accurate where the device
   multiplies in TF32: :func:`_product`).
2. Householder reconstruction (Ballard, Demmel, Grigori, Jacobsen, Knight & Nguyen,
   "Reconstructing Householder vectors from Tall-Skinny QR", IPDPS 2014 / JPDC 85, 2015,
   "Modified LU"): the LU without pivoting Q - S = L U, S = diag(±1) chosen during the
   elimination so that every pivot has magnitude >= 1, gives the reflectors Y = L (unit
   lower trapezoidal), T = -U S Y₁⁻ᵀ and R = S R_tsqr, with I - Y T Yᵀ = H₁ ⋯ H_b. Only
   the b x b top block Q₁ needs the elimination (one launch of ``tsqr_householder``:
   signs, L₁, U⁻¹, T and R); the rows below are Y₂ = Q₂ U⁻¹, which is
   formed with the last level of Q's top-down products (Q₂'s leaves times C U⁻¹, C the
   leaves' factors from the levels above), so the panel's Q is never formed as such.

The signs are LAPACK's (tau in [1, 2]), so for a full-rank panel the result is geqr2's to
rounding; where geqr2 makes a reflector the identity (tau = 0: a column already zero below
the diagonal, as for a zero column) the reconstruction gives another, equally valid
reflector (tau >= 1; R's row negated where the column was already reduced), except for a
square panel's last reflector, which is made the identity as geqr2's. TSQR is
unconditionally stable and so is the modified LU (Ballard et al.), rank-deficient panels
included.

The products (down the tree, Q₁, C U⁻¹, and V written below its top block) are one launch
each of ``tsqr_product`` (float32 FMAs, never TF32). Launches per panel as the blocked QR
uses it (``tools/bench_qr_panel.py``; r x 32, leaves of 128 rows): 10 at r = 4096 and 8192
(a tree of 4 levels: four ``qr_small``, one ``tsqr_householder``, five ``tsqr_product``),
12 at 16384, 7 at 300, whether or not the device multiplies in TF32; plus one copy of the
root's transposed Q. The ``qr_panel`` path takes 10 (17 at 8192 under TF32), but its one
kernel walks the panel on one multiprocessor.
"""

from collections.abc import Callable
from typing import NamedTuple

import mlx.core as mx
import numpy as np

from mlx_linalg import _kernels, _precision
from mlx_linalg._gpu import blocked_panel, blocked_qr, reference, reference_spectral
from mlx_linalg._gpu.blocked_common import Blocks
from mlx_linalg._gpu.small_spectral import QR_MAX_ROWS, qr_small

# Rows per leaf of the tree (at most the small QR kernel's 128 rows, and M·b + b floats of
# its threadgroup memory). Smaller leaves mean more threadgroups at the leaf level and one
# more tree level.
LEAF_ROWS = 128
# The references' products (B, p, q) @ (B, q, s) are formed as a broadcast product and a
# sum (two launches, float32 arithmetic) where float32 products are split, up to this many
# elements (a (B, p, q, s) temporary: 64 MB at 2²⁴, the leaves of one 16384-row panel of
# 32 columns), instead of the split product's seven launches.
LEAF_PRODUCT_ELEMENTS = 1 << 24
# Threads per threadgroup of ``tsqr_product`` (one thread per entry).
PRODUCT_THREADS = 256
_TG_FLOATS = _kernels.MAX_THREADGROUP_MEMORY // 4


class Ops(NamedTuple):
    """The two building blocks of the TSQR panel (kernels, or their MLX-op references).

    Attributes:
        qr: ``qr(a, height) -> (Qt, R)``: thin Householder QR of the B·L matrices of
            ``height`` (M >= N) rows of a (B, R, N) array, L = ⌈R / height⌉, rows past R
            zeros: Qt (B·L, N, M) (row c is Q's column c), R (B·L, N, N) upper triangular
            (``qr_small``'s contract).
        reconstruct: ``reconstruct(q1, r, square) -> (Rh, V, T, tau, Uinv)``: the
            modified LU of the top block (``tsqr_householder``'s contract).
        product: ``product(a, bm, top, *, trans, batch, rows) -> C``: batched products
            laid end to end (``tsqr_product``'s contract, :func:`product_reference`).
    """

    qr: Callable[[mx.array, int], tuple[mx.array, mx.array]]
    reconstruct: Callable[..., tuple[mx.array, ...]]
    product: Callable[..., mx.array]


def _threads(b: int) -> int:
    return 32 * -(-b // 32)


def reconstruct_kernel(q1: mx.array, r: mx.array, square: bool) -> tuple[mx.array, ...]:
    """``tsqr_householder``'s contract in one launch (float32; other dtypes: the reference)."""
    if q1.dtype != mx.float32:
        return reconstruct_reference(q1, r, square)
    batch, b, _ = q1.shape
    threads = _threads(b)
    return tuple(
        _kernels.launch(
            "tsqr_householder",
            [q1, r],
            template={"NB": b, "SQUARE": bool(square)},
            grid=(batch * threads, 1, 1),
            threadgroup=(threads, 1, 1),
            output_shapes=[(batch, b, b), (batch, b, b), (batch, b, b), (batch, b), (batch, b, b)],
        )
    )


def reconstruct_reference(q1: mx.array, r: mx.array, square: bool) -> tuple[mx.array, ...]:
    """``tsqr_householder``'s contract (metal/tsqr_householder.metal) in MLX ops: the
    elimination as a column loop, U⁻¹ and T by the reference triangular solve.

    Args:
        q1: (B, b, b) the top block of the panel's explicit thin Q.
        r: (B, b, b) the panel's TSQR R.
        square: the panel is b x b (its last reflector is made the identity).

    Returns:
        ``(Rh, V, T, tau, Uinv)`` (B, b, b), (B, b, b), (B, b, b), (B, b), (B, b, b):
        geqr2's R, the reflectors' top block, T, tau and U⁻¹.
    """
    batch, b, _ = q1.shape
    work = mx.array(q1)  # a copy: assigned into below
    signs = []
    for k in range(b):
        d = work[:, k, k]
        positive = d >= 0
        s = mx.where(positive != (square and k == b - 1), -1.0, 1.0).astype(q1.dtype)
        signs.append(s)
        if k + 1 < b:
            multipliers = work[:, k + 1 :, k] / (d - s)[:, None]
            work[:, k + 1 :, k] = multipliers
            work[:, k + 1 :, k + 1 :] = (
                work[:, k + 1 :, k + 1 :] - multipliers[:, :, None] * work[:, k : k + 1, k + 1 :]
            )
    s = mx.stack(signs, axis=1)
    eye = mx.eye(b, dtype=q1.dtype)
    upper = mx.triu(work) - s[:, :, None] * eye
    lower = mx.tril(work, -1)
    v = lower + eye
    rh = mx.triu(s[:, :, None] * r)
    uinv, _ = reference.trsm_small(
        upper, mx.broadcast_to(eye, (batch, b, b)), lower=False, trans=False, unit=False
    )
    # T Lᵀ = -U S, i.e. L Tᵀ = -(U S)ᵀ: a unit-lower solve.
    t_t, _ = reference.trsm_small(
        v, -mx.swapaxes(upper * s[:, None, :], -1, -2), lower=True, trans=False, unit=True
    )
    t = mx.triu(mx.swapaxes(t_t, -1, -2))
    if square:
        t = mx.where(mx.arange(b) == b - 1, 0.0, t).astype(q1.dtype)
    tau = mx.diagonal(t, axis1=-2, axis2=-1)
    return rh, v, t, tau, uinv


def _strictly_lower(b: int) -> mx.array:
    return mx.array(np.tri(b, k=-1, dtype=bool))


def _product(a: mx.array, b: mx.array) -> mx.array:
    """``a @ b`` for (B, p, q) and (B, q, s), float32-accurate: ``blocked_qr._product``,
    or the broadcast product and sum up to :data:`LEAF_PRODUCT_ELEMENTS`."""
    batch, p, q = a.shape
    if (
        a.dtype == mx.float32
        and _precision.needs_split()
        and batch * p * q * b.shape[-1] <= LEAF_PRODUCT_ELEMENTS
    ):
        return blocked_qr._elementwise_product(a, b)
    return blocked_qr._product(a, b)


def product_reference(
    a: mx.array, bm: mx.array, top: mx.array | None, *, trans: bool, batch: int, rows: int
) -> mx.array:
    """``tsqr_product``'s contract (metal/tsqr_product.metal) in MLX ops.

    Args:
        a: (G, MA, K), or (G, K, MA) when ``trans`` (op(A) = Aᵀ).
        bm: (G, K, N).
        top: (batch, TOP, N) or None.
        trans: whether op(A) = Aᵀ.
        batch: BT, a divisor of G.
        rows: ROWS <= (G / batch)·MA.

    Returns:
        C (batch, rows, N): matrix bt's products op(A_g) Bm_g, g = bt·G/batch, ...,
        stacked row after row, their first ``rows`` rows, the first TOP rows replaced by
        ``top``; float32-accurate products (:func:`_product`).
    """
    op_a = mx.swapaxes(a, -1, -2) if trans else a
    c = _product(op_a, bm)
    c = c.reshape(batch, -1, c.shape[-1])[:, :rows]
    return c if top is None else mx.concatenate([top, c[:, top.shape[1] :]], axis=1)


def product_kernel(
    a: mx.array, bm: mx.array, top: mx.array | None, *, trans: bool, batch: int, rows: int
) -> mx.array:
    """:func:`product_reference`'s contract in one launch of ``tsqr_product`` (float32
    arithmetic, one thread per entry of C; other dtypes: the reference)."""
    if a.dtype != mx.float32:
        return product_reference(a, bm, top, trans=trans, batch=batch, rows=rows)
    n = bm.shape[-1]
    entries = batch * rows * n
    (c,) = _kernels.launch(
        "tsqr_product",
        [a, bm, bm if top is None else top, _kernels.extents(batch, rows)],
        template={"TRANS": bool(trans), "TOP": 0 if top is None else top.shape[1]},
        grid=(-(-entries // PRODUCT_THREADS) * PRODUCT_THREADS, 1, 1),
        threadgroup=(PRODUCT_THREADS, 1, 1),
        output_shapes=[(batch, rows, n)],
    )
    return c


def _kernel_qr(a: mx.array, height: int) -> tuple[mx.array, mx.array]:
    if a.dtype != mx.float32:
        return _reference_qr(a, height)
    return qr_small(a, complete=False, height=height)


def _reference_qr(a: mx.array, height: int) -> tuple[mx.array, mx.array]:
    """``Ops.qr`` in MLX ops: ``a`` zero-padded to whole matrices, then factored."""
    batch, rows, n = a.shape
    leaves = -(-rows // height)
    if leaves * height > rows:
        a = mx.pad(a, [(0, 0), (0, leaves * height - rows), (0, 0)])
    return reference_spectral.qr_small(a.reshape(batch * leaves, height, n), complete=False)


KERNEL_OPS = Ops(_kernel_qr, reconstruct_kernel, product_kernel)
REFERENCE_OPS = Ops(_reference_qr, reconstruct_reference, product_reference)


def ops_for(blocks: Blocks) -> Ops:
    """The TSQR building blocks that go with ``blocks``: the kernels where the blocks'
    panel is the ``qr_panel`` kernel (``blocked_common.KERNELS``), else the references."""
    return KERNEL_OPS if blocks.qr is blocked_panel.qr_panel_kernel else REFERENCE_OPS


def max_rows(b: int) -> int:
    """The most rows of a (rows, b) matrix that the small QR kernel factors."""
    return min(QR_MAX_ROWS, (_TG_FLOATS - b) // b)


def applies(b: int) -> bool:
    """Whether panels of width ``b`` take the TSQR path: a tree node must stack at least
    two b x b R factors (b <= 63)."""
    return b >= 1 and max_rows(b) >= 2 * b


def leaf_shape(r: int, b: int, leaf_rows: int = LEAF_ROWS) -> tuple[int, int] | None:
    """(leaves, rows per leaf) for an r-row panel of width b, or None if none fits.

    The panel is read as zero-padded at the bottom to leaves x rows. Zero rows below at
    least b rows of a leaf are never touched by its reflectors (and its thin Q is zero
    there), so the last leaf needs b real rows unless there is no padding: the largest leaf
    height up to ``leaf_rows`` (and the kernel's limit) for which that holds.
    """
    top = min(leaf_rows, max_rows(b))
    if r <= top:
        return 1, r
    for h in range(top, b, -1):
        leaves = -(-r // h)
        last = r - (leaves - 1) * h
        if last == h or last >= b:
            return leaves, h
    return None


def panel(
    blocks: Blocks,
    a: mx.array,
    *,
    ops: Ops | None = None,
    leaf_rows: int | None = None,
    leaf: int | None = None,
) -> blocked_qr.Panel:
    """Householder QR (geqr2's result) of a tall (B, r, b) panel by TSQR and Householder
    reconstruction, with V and T.

    Args:
        blocks: the blocked QR's building blocks (they pick :data:`KERNEL_OPS` or
            :data:`REFERENCE_OPS`, :func:`ops_for`; and factor panels that TSQR does not
            take: b > 63, or no leaf height fits).
        a: (B, r, b), r >= b.
        ops: the TSQR building blocks (default: :func:`ops_for` ``blocks``).
        leaf_rows: rows per leaf at most (None: :data:`LEAF_ROWS`, read at the call).
        leaf: ``blocked_qr.panel``'s leaf width for the panels TSQR does not take.

    Returns:
        ``blocked_qr.Panel``: packed (B, r, b) (R on and above the diagonal, the
        reflectors' tails below), V (B, r, b), T (B, b, b), tau (B, b); the reflectors
        of ``blocks.qr(a)`` to rounding (module notes: identity reflectors differ).

    Notes:
        TSQR with a flat batched tree (Demmel et al. 2012) and the modified-LU
        reconstruction (Ballard et al. 2015), module docstring. About 4rb² flops in the
        leaves (factor and explicit Q), 2rb² in the product that forms Y, about rb² in
        the tree above them and O(b³) in the reconstruction.
    """
    batch, r, b = a.shape
    leaf_rows = LEAF_ROWS if leaf_rows is None else leaf_rows
    shape = leaf_shape(r, b, leaf_rows) if applies(b) and r >= b else None
    if shape is None:
        return blocked_qr.panel(blocks, a, leaf=leaf)
    ops = ops_for(blocks) if ops is None else ops
    group = max_rows(b) // b  # R factors per tree node at most
    leaves, h = shape

    # Up the tree: qts[level] (B·nodes, b, rows) and each level's (nodes, node size). The
    # leaves are the panel's row blocks of h (the last one zero-padded by ``ops.qr``), a
    # parent the R factors of ``size`` children stacked (zero ones past the last child:
    # untouched rows).
    qts, levels = [], []
    stack, height, nodes = a, h, leaves
    while True:
        qt, r_tsqr = ops.qr(stack, height)
        qts.append(qt)
        if nodes == 1:
            break
        size = -(-nodes // -(-nodes // group))  # children per parent, as even as can be
        parents = -(-nodes // size)
        levels.append((nodes, parents, size))
        stack, height, nodes = r_tsqr.reshape(batch, nodes * b, b), size * b, parents

    # Down the tree: each node's factor C (B·nodes, b, b), its rows of the parent's Q.
    factor = None
    for level in range(len(qts) - 1, 0, -1):
        qt = qts[level]
        if factor is None:  # the root: its Q itself
            q = mx.swapaxes(qt, -1, -2)
        else:
            nodes, _, rows = qt.shape
            q = ops.product(qt, factor, None, trans=True, batch=1, rows=nodes * rows)
        children, parents, size = levels[level - 1]
        factor = q.reshape(batch, parents * size, b, b)[:, :children].reshape(-1, b, b)

    if factor is None:  # one leaf
        q1 = mx.swapaxes(qts[0], -1, -2)[:, :b]
    else:  # the first b rows of the first leaf's Q times its factor
        q1 = ops.product(qts[0], factor, None, trans=True, batch=batch, rows=b)
    rh, v, t, tau, uinv = ops.reconstruct(q1, r_tsqr, r == b)
    packed = mx.where(_strictly_lower(b), v, rh)  # lazy: geqrf reads rh
    if r > b:
        # Y₂ = Q₂ U⁻¹ = (leaf Q)(C U⁻¹), leaf by leaf, written below V's top block.
        if factor is None:
            scaled = uinv
        else:
            scaled = ops.product(
                factor.reshape(batch, leaves * b, b),
                uinv,
                None,
                trans=False,
                batch=1,
                rows=batch * leaves * b,
            ).reshape(batch * leaves, b, b)
        v = ops.product(qts[0], scaled, v, trans=True, batch=batch, rows=r)
        packed = mx.concatenate([packed, v[:, b:]], axis=1)
    return blocked_qr.Panel(packed, [tau], v, t, tau, rh)
