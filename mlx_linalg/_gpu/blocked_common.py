"""Shared pieces of the blocked factorizations for large matrices: block sizes, the
pluggable diagonal-block building blocks, and the dispatch predicates.

The blocked algorithms (``blocked_cholesky``, ``blocked_lu``, ``blocked_qr``,
``blocked_triangular``) are lazy MLX graphs: a Python loop over block columns that emits,
per step, one small factorization or substitution of a diagonal block (a building block)
and plain MLX ops for everything else (trailing updates C - A B through
:func:`subtract_product`, float32-accurate whatever ``MLX_ENABLE_TF32`` says; row
interchanges as gathers; concatenations). Nothing in them synchronizes with the host.

The building blocks come in two sets with one contract (:class:`Blocks`):

* :data:`KERNELS`, for the GPU: the small-block kernels of ``mlx_linalg._gpu.small_factor``
  (``cholesky_panel``, a Cholesky leaf of at most 64 columns and the rows below it;
  ``trsm_small``, n <= 64) and the tall-panel kernels ``lu_panel`` and ``qr_panel``;
* :data:`REFERENCE`, for any device (the CPU in CI): their MLX-op references from
  ``mlx_linalg._gpu.reference``, the same contracts and the same arithmetic.

So the graph that runs on the GPU is the graph that the CPU tests check, with each kernel
swapped for its reference. The tall LU panel (getf2) is one launch of the ``lu_panel``
kernel in KERNELS (``blocked_panel.lu_panel_kernel``) and the MLX-op column loop
``blocked_panel.lu_panel`` in REFERENCE; the tall QR panel (geqr2) likewise
(``qr_panel`` kernel / ``blocked_panel.qr_panel``).
"""

from collections.abc import Callable
from typing import NamedTuple

import mlx.core as mx

from mlx_linalg import _kernels, _precision
from mlx_linalg._gpu import blocked_panel, reference, small_factor

# Block columns per step of the blocked loops. A diagonal block larger than the kernels'
# largest order (64) is itself factored or solved by the blocked algorithm with blocks of
# 64, so every leaf is one kernel launch. Larger outer blocks mean fewer and larger trailing
# products (less memory traffic: the trailing matrix is read and written once per step);
# 128 is a guess to be tuned on the GPU (tools/bench_blocked.py --blocks 64,128,256).
BLOCK = 128
# Whether a split operand's hi part and stacked pair come from the one-pass ``split_pair``
# kernel (metal/split_pair.metal: one launch) instead of three MLX ops (bit mask,
# subtraction, select) where the default device is a GPU. Bit for bit the same operands
# (tests/test_split_pair_kernel.py, tests/gpu/test_split_pair_gpu.py); on an H100 at
# n = 4096 (2026-11-26) solve 135 -> 129 ms, inv 155 -> 150, Cholesky and QR unchanged
# within noise (docs/kernels-blocked.md).
FUSED_SPLIT = True
# Threads per threadgroup of the split_pair kernel (one thread per entry).
SPLIT_THREADS = 256
# Inner dimensions up to this make C - A B one launch of the ``rank_update`` kernel
# (metal/rank_update.metal: float32 FMAs, C read once) where float32 products are split on a
# GPU, instead of two splits and two products that read and write C twice: the LU panel's
# recursive halves (K of 16 and 32) and its 64-column trailing updates, the QR's 32-column
# panels, the Cholesky leaves' updates within a block. Measured on an H100 (2026-11-27,
# float32, ms, alternating processes; docs/kernels-blocked.md, "The rank_update kernel"):
# 0 (no kernel) -> 32: solve 4096 73-80 -> 62-66, qr and 8192 unchanged; 32 -> 64: solve
# 8192 336-352 -> 234-236, cholesky 8192 30.5 -> 25.8-26.4, 4096 within noise; 64 -> 128:
# cholesky 8192 25-26 -> 38 (worse), qr 8192 369 -> 341-355, solve 8192 224 -> 230-236.
RANK_UPDATE_MAX_K = 64
# Reflectors (M) up to this make the QR's Vᵀ C chunk products one launch of the kernel's
# product form (:func:`transposed_product_kernel`) under the same conditions; 0 turns it
# off (for an A/B: tools/ab_settings.py). Measured on an H100 (2026-11-27, 64 against 0):
# qr 4096 94-101 against 124-126 ms, qr 8192 363-370 against 429-453.
TRANSPOSED_PRODUCT_MAX_M = 64
RANK_UPDATE_TILE = 64  # D's tile per threadgroup (the kernel's TILE)
RANK_UPDATE_THREADS = 256  # per threadgroup (the kernel's THREADS)
# The smallest order that takes the blocked path on the GPU: at and below it the whole
# matrix fits one small-matrix kernel (mlx_linalg._gpu.small_factor).
MIN_N = small_factor.MAX_N + 1


class Blocks(NamedTuple):
    """The diagonal-block operations a blocked algorithm calls.

    Every callable takes and returns (B, ...) stacks of one dtype (float32 for the
    kernels; the references also take float64).

    Attributes:
        max_n: the largest diagonal block the operations take.
        cholesky_panel: ``cholesky_panel(a, width) -> (L, failed)``: the first ``width``
            (<= max_n) columns of a (B, m, k) stack, m, k >= width, whose top width x width
            block is factored (lower triangle read) and the rows below solved against it:
            L (B, m, width) holds L11 (A11 = L11 L11ᵀ, zeros above the diagonal) on top and
            L21 = A21 L11⁻ᵀ below; ``failed`` (B,) bool marks top blocks that are not
            positive definite, whose L is all NaN (the blocked Cholesky relies on both: it
            writes the factors unmasked and takes ``failed`` from the last leaf, which a
            failure's NaN reaches).
        trsm: ``trsm(t, x, lower=, trans=, unit=, rows=False) -> X``: solves op(T) X = x
            for (B, b, b) triangular ``t`` (only the triangle named by ``lower`` is read;
            op(T) = Tᵀ when ``trans``; unit diagonal assumed when ``unit``) and (B, b, K)
            ``x`` of any width K (the kernel spreads a wide one over threadgroups); with
            ``rows``, ``x`` is (B, K, b) and X op(T)ᵀ = x (each row solved as a column). A
            zero diagonal gives NaN in that matrix's X.
        lu: ``lu(a) -> (packed, perm)``: partial-pivoting LU (getf2) of a (B, m, b)
            panel, m >= b: packed L\\U of P·a and the row permutation perm (B, m) int32
            (row i of P·a is row perm[i] of a); zero pivots are kept.
        qr: ``qr(a) -> (packed, tau)``: Householder QR (geqr2) of a (B, m, b) panel,
            m >= b: R on and above the diagonal, the reflectors' tails below (unit leading
            entries implied), tau (B, b). Defaults to the MLX-op loop.
        lu_pivots: None, or ``lu_pivots(a, columns) -> (packed, perm, piv)``: ``lu`` of
            the panel ``a[:, :, :columns]`` (a leaf of the recursive LU panel, the left
            columns of a wider array, which a kernel can read in place) plus its getf2
            pivots (B, b) int32 (None for a stack it could not give them for), when its
            row order is getf2's exactly; the blocked getrf then forms LAPACK's pivots as
            panel start + piv instead of replaying the permutation.
        lu_join: None, or ``lu_join(p1, u12, p2, perm1, perm2) -> (packed, perm)``: the
            join step of the recursive LU panel (``blocked_lu.join``'s contract) in one
            launch; it may return None for input it does not take (then the MLX ops join).
        gather_rows: ``gather_rows(x, rows, first) -> y``: y[b, i] = x[b, rows[b, i],
            first:] for (B, m, n) ``x`` and (B, r) int32 ``rows`` (the LU's row
            interchanges of whole matrices, ``blocked_panel.gather_rows``'s contract).
        lu_assemble: None, or ``lu_assemble(stored, moves, block) -> (packed, perm)``: the
            blocked LU's last step (``blocked_lu.assemble``'s contract) in one launch; it
            may return None for input it does not take (then the MLX ops assemble).
    """

    max_n: int
    cholesky_panel: Callable[[mx.array, int], tuple[mx.array, mx.array]]
    trsm: Callable[..., mx.array]
    lu: Callable[[mx.array], tuple[mx.array, mx.array]]
    qr: Callable[[mx.array], tuple[mx.array, mx.array]] = blocked_panel.qr_panel
    lu_pivots: Callable[[mx.array, int], tuple] | None = None
    lu_join: Callable[..., tuple | None] | None = None
    gather_rows: Callable[..., mx.array] = blocked_panel.gather_rows
    lu_assemble: Callable[..., tuple | None] | None = None


def _kernel_trsm(
    t: mx.array, x: mx.array, *, lower: bool, trans: bool, unit: bool, rows: bool = False
) -> mx.array:
    solution, _ = small_factor.trsm(t, x, lower=lower, trans=trans, unit=unit, rows=rows)
    return solution


def _reference_trsm(
    t: mx.array, x: mx.array, *, lower: bool, trans: bool, unit: bool, rows: bool = False
) -> mx.array:
    if rows:
        return mx.swapaxes(
            _reference_trsm(t, mx.swapaxes(x, -1, -2), lower=lower, trans=trans, unit=unit), -1, -2
        )
    solution, _ = reference.trsm_small(t, x, lower=lower, trans=trans, unit=unit)
    return solution


def _reference_cholesky_panel(a: mx.array, width: int) -> tuple[mx.array, mx.array]:
    """``cholesky_panel``'s contract in MLX ops: the top block's potf2, then the rows below
    solved as rows against it (the kernel's arithmetic)."""
    l11, failed = reference.cholesky_small(a[:, :width, :width], upper=False)
    if a.shape[1] == width:
        return l11, failed
    below = a[:, width:, :width]
    l21 = _reference_trsm(l11, below, lower=True, trans=False, unit=False, rows=True)
    return mx.concatenate([l11, l21], axis=1), failed


KERNELS = Blocks(
    small_factor.MAX_N,
    small_factor.cholesky_panel,
    _kernel_trsm,
    blocked_panel.lu_panel_kernel,
    blocked_panel.qr_panel_kernel,
    blocked_panel.lu_panel_kernel_pivots,
    blocked_panel.lu_join_kernel,
    blocked_panel.gather_rows_kernel,
    blocked_panel.lu_assemble_kernel,
)
REFERENCE = Blocks(
    small_factor.MAX_N,
    _reference_cholesky_panel,
    _reference_trsm,
    blocked_panel.lu_panel,
    blocked_panel.qr_panel,
)


# (..., M, N) as (B, M, N): one definition, in the module below this one.
flat = small_factor.flat


def subtract_product(
    c: mx.array, a: mx.array, b: mx.array, *, at: tuple[int, int] = (0, 0)
) -> mx.array:
    """``c - a @ b``, float32-accurate whatever ``MLX_ENABLE_TF32`` says; with ``at`` = (i, j),
    the block ``c[:, i:i+M, j:j+N]`` less it (a trailing matrix right of a panel).

    One launch of the ``rank_update`` kernel for a small inner dimension where float32
    products are split on a GPU (:func:`rank_update_applies`; C read in place); else one
    fused ``mx.addmm`` (C read and written once), or, where float32 products lose precision
    (TF32), two, with the split product's operands (the leading hi·hi term, then both
    corrections in one product of inner size 2K, as ``_precision.split_operands``), unless
    a ``_precision.reduced_products`` context asks for plain device products.
    :func:`subtract` with operands split once serves arrays that several products read.
    """
    if rank_update_applies(c, a, b):
        return rank_update_kernel(c, a, b, at=at)
    return subtract(c, left(a), right(b), at=at)


class Operand(NamedTuple):
    """An operand of ``c - a @ b`` (:func:`subtract`) with its split formed once.

    Attributes:
        value: the operand.
        hi: its hi part where float32 products are split (``_precision.needs_split``),
            else None.
        pair: the operand of the split's correction product: [a_hi, a_lo] (..., M, 2K)
            for a left operand, [b_lo; b_hi] (..., 2K, N) for a right one; None with hi.
        rows: for a right operand that is the transpose of a row-contiguous (..., N, K)
            array (:func:`gram`'s Xᵀ), that array, which the ``rank_update`` kernel reads
            in place; else None.
        window: for a left operand that is a block of a larger array, where it lies
            (:class:`Window`), so that the ``rank_update`` kernel reads it in place; else
            None.
    """

    value: mx.array
    hi: mx.array | None = None
    pair: mx.array | None = None
    rows: mx.array | None = None
    window: "Window | None" = None


class Window(NamedTuple):
    """Where a left operand of the ``rank_update`` kernel lies in a larger array, which the
    kernel then reads in place (no copy of a strided block): op(A) (M, K) is the block of
    ``array`` from row ``row``, column ``column`` (``array[:, row:row+M, column:column+K]``),
    or, ``transposed``, the transpose of its (K, M) block there."""

    array: mx.array
    row: int
    column: int
    transposed: bool = False


def split_parts(x: mx.array) -> tuple[mx.array, mx.array] | None:
    """(hi, lo) of float32 ``x`` where float32 products are split, else None: the split
    ``subtract_product`` forms for each operand, formed once for an array that several
    products read (a triangular matrix's couplings, a Cholesky panel)."""
    if x.dtype == mx.float32 and _precision.needs_split():
        return _precision.split_float32(x)  # the split of subtract_product's split_operands
    return None


def transposed_parts(parts: tuple | None) -> tuple | None:
    """The split parts of ``x`` as those of its transpose (``mx.swapaxes(x, -1, -2)``)."""
    return None if parts is None else tuple(mx.swapaxes(p, -1, -2) for p in parts)


def left(a: mx.array, parts: tuple | None = None, window: Window | None = None) -> Operand:
    """``a`` as the left operand, with ``parts`` (its :func:`split_parts`) if given, and
    ``window``, where ``a`` lies in a larger array (:class:`Window`), if given."""
    return _operand(a, parts, right=False)._replace(window=window)


def right(b: mx.array, parts: tuple | None = None) -> Operand:
    """``b`` as the right operand, with ``parts`` (its :func:`split_parts`) if given."""
    return _operand(b, parts, right=True)


def _operand(x: mx.array, parts: tuple | None, *, right: bool) -> Operand:
    """:func:`left` / :func:`right`: the pair is [hi, lo] along the last axis for a left
    operand, [lo; hi] along the second-to-last for a right one."""
    if parts is None and _fused_split(x):
        return Operand(x, *split_pair_kernel(x, right=right))
    parts = split_parts(x) if parts is None else parts
    if parts is None:
        return Operand(x)
    hi, lo = parts
    return Operand(x, hi, _precision.pair(lo, hi, -2) if right else _precision.pair(hi, lo, -1))


def _fused_split(x: mx.array) -> bool:
    """Whether :func:`left` / :func:`right` (:func:`gram`) split ``x`` with the
    ``split_pair`` (``split_gram``) kernel."""
    return (
        FUSED_SPLIT
        and x.dtype == mx.float32
        and x.ndim >= 2
        and 0 < x.size <= _kernels.MAX_GRID
        and _precision._gpu_default()
        and _precision.needs_split()
    )


def split_pair_kernel(x: mx.array, *, right: bool) -> tuple[mx.array, mx.array]:
    """``(hi, pair)`` of float32 ``x`` (..., R, C) in one launch of ``split_pair``: hi as
    ``_precision.split_float32``'s, pair = [hi, lo] along the last axis for a left operand,
    [lo; hi] along the second-to-last for a right one, bit for bit what :func:`left` and
    :func:`right` form with ``_precision.pair``."""
    rows, cols = x.shape[-2:]
    stack = x.reshape(-1, rows, cols)
    pair_shape = (stack.shape[0], 2 * rows, cols) if right else (stack.shape[0], rows, 2 * cols)
    hi, pair = _kernels.launch(
        "split_pair",
        [stack],
        template={"RIGHT": right},
        grid=(x.size, 1, 1),
        threadgroup=(SPLIT_THREADS, 1, 1),
        output_shapes=[stack.shape, pair_shape],
    )
    batch = x.shape[:-2]
    return hi.reshape(x.shape), pair.reshape(*batch, *pair_shape[1:])


def gram(x: mx.array) -> tuple[Operand, Operand]:
    """``(left(x), right(xᵀ))``, the operands of an update C - X Xᵀ, split once.

    Where products are split: the ``split_gram`` kernel on a GPU (one launch, bit for bit
    the MLX ops' split), else ``_precision.split_float32`` and two stacks; the right
    operand's hi part and stack are transposed views of row-contiguous arrays, which
    matrix products read without a copy.
    """
    xt = mx.swapaxes(x, -1, -2)
    if not (x.dtype == mx.float32 and _precision.needs_split()):
        return Operand(x), Operand(xt, rows=x)
    if _fused_split(x):
        hi, pair, swapped = split_gram_kernel(x)
    else:
        hi, lo = _precision.split_float32(x)
        pair, swapped = _precision.pair(hi, lo, -1), _precision.pair(lo, hi, -1)
    right_operand = Operand(xt, mx.swapaxes(hi, -1, -2), mx.swapaxes(swapped, -1, -2), x)
    return Operand(x, hi, pair), right_operand


def split_gram_kernel(x: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """``(hi, [hi, lo], [lo, hi])`` of float32 ``x`` (..., R, C) in one launch of
    ``split_gram`` (stacks along the last axis), as :func:`gram` forms them."""
    rows, cols = x.shape[-2:]
    stack = x.reshape(-1, rows, cols)
    pair_shape = (stack.shape[0], rows, 2 * cols)
    hi, pair, swapped = _kernels.launch(
        "split_gram",
        [stack],
        template={},
        grid=(x.size, 1, 1),
        threadgroup=(SPLIT_THREADS, 1, 1),
        output_shapes=[stack.shape, pair_shape, pair_shape],
    )
    batch, wide = x.shape[:-2], (rows, 2 * cols)
    return hi.reshape(x.shape), pair.reshape(*batch, *wide), swapped.reshape(*batch, *wide)


def first_columns(operand: Operand, count: int) -> Operand:
    """The right operand's first ``count`` columns (its parts sliced alike; ``rows``, the
    transposed array, by its first ``count`` rows)."""

    def cut(part: mx.array | None) -> mx.array | None:
        return None if part is None else part[..., :count]

    rows = None if operand.rows is None else operand.rows[..., :count, :]
    return Operand(cut(operand.value), cut(operand.hi), cut(operand.pair), rows)


def subtract(c: mx.array, a: Operand, b: Operand, *, at: tuple[int, int] = (0, 0)) -> mx.array:
    """``c - a @ b`` with the operands' splits as given (:func:`left`, :func:`right`): one
    launch of the ``rank_update`` kernel for a small inner dimension
    (:data:`RANK_UPDATE_MAX_K`), else one fused ``mx.addmm``, or, where the operands are
    split, two (the hi·hi term, then both corrections in one product of inner size 2K).
    With ``at`` = (i, j), the block ``c[:, i:i+M, j:j+N]`` less it (the kernel reads it in
    place)."""
    if rank_update_applies(c, a.value, b.value):
        return rank_update_kernel(
            c,
            a.value,
            b.value if b.rows is None else b.rows,
            trans_b=b.rows is not None,
            at=at,
            window=a.window,
        )
    i, j = at
    if i or j:
        c = c[:, i : i + a.value.shape[-2], j : j + b.value.shape[-1]]
    if c.dtype == mx.float32 and a.hi is not None and b.hi is not None:
        looped = _precision.per_matrix(a.value, b.value)
        c = _precision.accumulate(c, a.hi, b.hi, alpha=-1.0, looped=looped)
        return _precision.accumulate(c, a.pair, b.pair, alpha=-1.0, looped=looped)
    return _precision.accumulate(c, a.value, b.value, alpha=-1.0)


def rank_update_applies(c: mx.array, a: mx.array, b: mx.array) -> bool:
    """Whether ``c - a @ b`` (or a block of ``c`` less it: :func:`rank_update_kernel`'s
    ``at``) takes the ``rank_update`` kernel: float32 (B, M, K) @ (B, K, N) stacks of one
    batch size with K <= :data:`RANK_UPDATE_MAX_K`, on a GPU whose float32 products are
    split (elsewhere one device product is both accurate and fast)."""
    if not (c.ndim == a.ndim == b.ndim == 3 and c.shape[0] == a.shape[0] == b.shape[0]):
        return False
    return (
        c.dtype == a.dtype == b.dtype == mx.float32
        and 0 < a.shape[-1] <= RANK_UPDATE_MAX_K
        and _kernel_fits(rank_update_launch(a.shape, b.shape))
    )


def rank_update_kernel(
    c: mx.array,
    a: mx.array,
    b: mx.array,
    *,
    trans_b: bool = False,
    at: tuple[int, int] = (0, 0),
    window: Window | None = None,
) -> mx.array:
    """``c[:, i:i+M, j:j+N] - a @ op(b)`` in one launch of ``rank_update`` (float32 FMAs, one
    pass over C; metal/rank_update.metal), (i, j) = ``at``.

    Args:
        c: (B, MC, NC) float32, read in place from row i, column j.
        a: (B, M, K) float32; with ``window``, a view whose values the kernel reads from
            the window's array instead (the view itself is not evaluated).
        b: (B, K, N), or (B, N, K) when ``trans_b`` (op(b) = bᵀ), float32.
        trans_b: whether ``b`` holds op(b)'s transpose.
        at: the block's first row and column in ``c``.
        window: where ``a`` lies in a larger array (:class:`Window`), or None.

    Returns:
        (B, M, N).
    """
    if window is None:
        window = Window(a, 0, 0)
    return _launch_rank_update(c, window, b, shape=a.shape, trans_b=trans_b, product=False, at=at)


def transposed_product_applies(a: mx.array, b: mx.array) -> bool:
    """Whether ``aᵀ @ b`` takes :func:`transposed_product_kernel`: float32 (B, K, M) and
    (B, K, N) stacks with M <= :data:`TRANSPOSED_PRODUCT_MAX_M` (a panel's reflectors), on
    a GPU whose float32 products are split."""
    if not (a.ndim == b.ndim == 3 and a.shape[0] == b.shape[0]):
        return False
    return (
        a.dtype == b.dtype == mx.float32
        and 0 < a.shape[-1] <= TRANSPOSED_PRODUCT_MAX_M
        and a.shape[1] > 0
        and _kernel_fits(rank_update_launch(a.shape, b.shape, trans_a=True))
    )


def _kernel_fits(launch: dict) -> bool:
    """Whether a ``rank_update`` launch (:func:`rank_update_launch`) has work and fits one
    grid, on a GPU whose float32 products are split (elsewhere one device product is both
    accurate and fast): the conditions both of its forms share."""
    _, m, n = launch["output_shapes"][0]
    return (
        m * n > 0
        and launch["grid"][0] <= _kernels.MAX_GRID
        and _precision._gpu_default()
        and _precision.needs_split()
    )


def transposed_product_kernel(a: mx.array, b: mx.array) -> mx.array:
    """``aᵀ @ b`` for (B, K, M) ``a`` and (B, K, N) ``b`` in one launch of ``rank_update``
    (its product form: float32 FMAs over K, ``b`` read once; e.g. the QR's Vᵀ C chunk by
    chunk, where the split product splits all of C first). Returns (B, M, N)."""
    batch, k, m = a.shape
    window = Window(a, 0, 0, transposed=True)
    return _launch_rank_update(
        a, window, b, shape=(batch, m, k), trans_b=False, product=True, at=(0, 0)
    )


def _launch_rank_update(
    c: mx.array,
    window: Window,
    b: mx.array,
    *,
    shape: tuple,
    trans_b: bool,
    product: bool,
    at: tuple[int, int],
) -> mx.array:
    """One launch of ``rank_update`` for op(A) of ``shape`` (B, M, K) in ``window`` (``c``
    unread when ``product``)."""
    launch, dims = rank_update_arguments(
        shape,
        b.shape,
        transposed=window.transposed,
        trans_b=trans_b,
        product=product,
        at=at,
        origin=(window.row, window.column),
    )
    (d,) = _kernels.launch("rank_update", [c, window.array, b, _kernels.extents(*dims)], **launch)
    return d


def rank_update_arguments(
    shape: tuple,
    b_shape: tuple,
    *,
    transposed: bool,
    trans_b: bool,
    product: bool,
    at: tuple[int, int],
    origin: tuple[int, int],
) -> tuple[dict, tuple]:
    """The ``rank_update`` kernel's launch arguments (:func:`rank_update_launch`) and its
    Dims extents (row0, col0, arow0, acol0, M, K) for op(A) of ``shape`` (B, M, K) whose
    block starts at ``origin`` (row, column) of A's array (its transpose's block when
    ``transposed``: TRANS_A) and D's block at ``at`` of C. Shared with the CPU emulation
    in tests."""
    storage = (shape[0], shape[2], shape[1]) if transposed else shape
    launch = rank_update_launch(
        storage, b_shape, trans_a=transposed, trans_b=trans_b, product=product
    )
    return launch, (*at, *origin, shape[1], shape[2])


def rank_update_launch(
    a_shape: tuple,
    b_shape: tuple,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    product: bool = False,
) -> dict:
    """The ``rank_update`` kernel's launch arguments (template, grid, threadgroup, output
    shapes) for A of shape (B, M, K) ((B, K, M) when ``trans_a``) and B of shape (B, K, N)
    ((B, N, K) when ``trans_b``): one threadgroup per 64 x 64 tile of D (B, M, N). Shared
    with the CPU emulation in tests."""
    batch = a_shape[0]
    m = a_shape[2] if trans_a else a_shape[1]
    n = b_shape[1] if trans_b else b_shape[2]
    tiles = batch * -(-m // RANK_UPDATE_TILE) * -(-n // RANK_UPDATE_TILE)
    return {
        "template": {"TRANS_A": trans_a, "TRANS_B": trans_b, "PRODUCT": product},
        "grid": (tiles * RANK_UPDATE_THREADS, 1, 1),
        "threadgroup": (RANK_UPDATE_THREADS, 1, 1),
        "output_shapes": [(batch, m, n)],
    }


def finite_matrices(a: mx.array) -> mx.array:
    """(B,) whether every entry of each (B, M, N) matrix is finite, reduced by rows, then
    over the rows' results: two reductions, which on MLX's CUDA backend took less time than
    one over the whole matrix (the check's kernels on one H200, 2026-11-29, CUPTI, µs:
    4096² 617 → 172, 8192² 2 545 → 545, 1024² 70 → 45, 8 × 2048² 392 → 289; but
    1000 × 64 × 64 71 → 96, so the small-matrix paths keep one reduction; raw:
    docs/results/blocked-h200/finite-reduction-2026-11-29.txt)."""
    return mx.all(mx.all(mx.isfinite(a), axis=-1), axis=-1)


def zero_diagonal(a: mx.array) -> mx.array:
    """(B,) whether each (B, n, n) matrix has a zero diagonal entry. The diagonal is every
    (n + 1)-th entry of the flattened matrix, a strided view (``mx.diagonal`` is two
    aranges and a gather: three launches)."""
    batch, n = a.shape[0], a.shape[-1]
    return mx.any(a.reshape(batch, n * n)[:, :: n + 1] == 0, axis=-1)


def _large(x: mx.array, *, square: bool = True) -> bool:
    m, n = x.shape[-2:]
    return x.dtype == mx.float32 and x.size > 0 and (m == n or not square) and max(m, n) >= MIN_N


def applies_square(x: mx.array, *_, **__) -> bool:
    """A non-empty float32 stack of square matrices of order n > 64."""
    return _large(x)


def from_order(order: int, applies):
    """``applies`` and a larger matrix dimension of at least ``order``: a dispatch rule's
    predicate from its crossover."""

    def applies_from_order(x, *rest, **keywords) -> bool:
        return max(x.shape[-2:]) >= order and applies(x, *rest, **keywords)

    return applies_from_order


def applies_matrix(x: mx.array, *_, **__) -> bool:
    """A non-empty float32 stack of (M, N) matrices with max(M, N) > 64."""
    return _large(x, square=False)


def applies_rhs(a: mx.array, *rest: mx.array, **__) -> bool:
    """A float32 square stack of order n > 64 and non-empty float32 right-hand sides."""
    b = rest[-1]
    return _large(a) and b.dtype == mx.float32 and b.size > 0
