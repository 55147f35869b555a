"""Tall-panel factorizations (LU with partial pivoting, Householder QR) as kernels and in
MLX ops, and LAPACK pivots <-> permutations.

Pivots to a permutation is a tree of compositions (log2 n gathers); a permutation to
pivots replays the interchanges (n steps of a few ops, only for ``lu_factor``'s output).

Two implementations of each contract (the QR panel likewise: :func:`qr_panel_kernel`,
the ``qr_panel`` kernel, and :func:`qr_panel`, a column loop of MLX ops):

* :func:`lu_panel_kernel`, for the GPU: the ``lu_panel`` kernel (``metal/lu_panel.metal``),
  the whole panel factored by one threadgroup in device memory, one launch per panel;
* :func:`lu_panel`, for any device (the CPU in CI, and the reference the kernel is tested
  against): a column loop of vectorized MLX ops, written for few ops per column (each op
  is one launch on a GPU): rows never move during the loop (the pivot row is gathered, the
  candidates are masked), and the panel is permuted once at the end. Per column: a masked
  argmax, one gather, the multipliers, one masked rank-1 update and one column store,
  about 20 ops (against about 65 for the row-swapping reference ``reference.lu_small``).

The blocked LU's row interchanges of whole trailing matrices are one gather of rows:
:func:`gather_rows_kernel` on the GPU (the ``gather_rows`` kernel), :func:`gather_rows`
(``take_along_axis``) elsewhere.
"""

import mlx.core as mx

from mlx_linalg import _kernels

# The widest panel the kernel takes (its threadgroup copy of the pivot row); wider panels,
# other dtypes and empty stacks take the MLX-op loop.
PANEL_MAX_NB = 256
# The most entries of one panel the lu_panel kernel takes (it indexes within a panel by
# 32-bit offsets).
PANEL_MAX_ENTRIES = 2**31 - 1


def panel_threads(m: int) -> int:
    """Threads per threadgroup of the ``qr_panel`` kernel for a panel of ``m`` rows: 256
    for short panels, 1024 (the most a threadgroup holds) from 1024 rows on (the LU's
    panel: :func:`lu_panel_threads`)."""
    return 1024 if m >= 1024 else 256


def lu_panel_threads(m: int) -> int:
    """Threads per threadgroup of the ``lu_panel`` kernel for a panel of ``m`` rows: 256
    below 768 rows, 512 below 3072, 768 below 6144, 1024 from there (the results do not
    depend on it: every entry sees the same operations, the pivot search the same order).

    Each elimination step costs time that grows with the threadgroup (two barriers, the
    pivot's reduction over its SIMD-groups) and time per row that more threads share, so
    the best threadgroup grows with the panel. Kernel time of one 16-column panel (µs,
    CUPTI, median of 10 launches, one H200, 2026-11-29; docs/kernels-blocked.md, "Threads
    of the LU panel")::

        rows        512    768   1024   1536   2048   3072   4096   6144   8192
        256 thr.   35.4   46.7   57.1   80.5  108.0  165.6  249.6  454.4  633.1
        512 thr.   33.4   43.6   48.2   64.2   79.0  114.0  153.2  266.4  357.6
        768 thr.   42.7   48.8   58.4   70.7   83.9  112.5  145.3  224.1  294.1
        1024 thr.  56.3   62.5   67.8   84.5   94.4  123.5  150.7  220.0  274.7
    """
    return 1024 if m >= 6144 else 768 if m >= 3072 else 512 if m >= 768 else 256


# The recursive LU's leaves held in registers (the ``lu_leaf_registers`` kernel): panels of
# at most LEAF_MAX_NB columns and LEAF_MAX_ROWS rows, in threadgroups of at most
# LEAF_THREADS threads holding up to 8 rows each (8 x 8 floats a thread: ptxas must fit a
# thread's registers in 65 536 / LEAF_THREADS, and MLX's custom kernels take no launch
# bounds).
LEAF_MAX_NB = 16
LEAF_THREADS = 512
LEAF_MAX_ROWS = 8 * LEAF_THREADS


def leaf_launch(shape: tuple[int, int, int], threads: int | None = None) -> dict | None:
    """Launch arguments of the ``lu_leaf_registers`` kernel for a (B, M, NB) stack of panels,
    or None where it does not apply (NB > LEAF_MAX_NB, M < NB, more rows than its
    threadgroup holds). ``threads``: the threadgroup (a multiple of 32); None:
    LEAF_THREADS, or M rounded up to a multiple of 32 where that is fewer. R, the rows a
    thread holds, is the next power of two of M / threads (one kernel per R). Shared with
    the CPU emulation in tests."""
    batch, m, nb = shape
    if threads is None:
        threads = min(LEAF_THREADS, -(-m // 32) * 32)
    rows = 1 << (max(-(-m // threads), 1) - 1).bit_length()
    if nb > LEAF_MAX_NB or m < nb or rows > 8:
        return None
    return {
        "template": {"R": rows},
        "grid": (batch * threads, 1, 1),
        "threadgroup": (threads, 1, 1),
        "output_shapes": [(batch, m, nb), (batch, nb), (batch, m)],
    }


def _width_class(nb: int) -> int:
    return 64 if nb <= 64 else 128 if nb <= 128 else PANEL_MAX_NB


def panel_launch(name: str, shape: tuple[int, int, int], threads: int) -> dict:
    """Launch arguments (template, grid, threadgroup, output shapes) of the ``lu_panel`` or
    ``qr_panel`` kernel for a (B, M, NB) stack of panels, one threadgroup of ``threads``
    each; shared with the CPU emulation in tests and tools/bench_threadgroups.py."""
    batch, m, nb = shape
    outputs = {
        "lu_panel": [(batch, m, nb), (batch, min(m, nb)), (batch, m), (batch, nb, m)],
        "qr_panel": [(batch, m, nb), (batch, nb)],
    }[name]
    return {
        "template": {"NBMAX": _width_class(nb)},
        "grid": (batch * threads, 1, 1),
        "threadgroup": (threads, 1, 1),
        "output_shapes": outputs,
    }


def lu_panel_kernel(a: mx.array) -> tuple[mx.array, mx.array]:
    """:func:`lu_panel`'s contract through the ``lu_panel`` kernel: one launch per panel stack.

    Args:
        a: (B, r, b) float32, r >= b.

    Returns:
        ``(packed, perm)`` as :func:`lu_panel`, except that between candidates of exactly
        equal magnitude the first current position wins, exactly as LAPACK's dgetf2 (the
        MLX-op loop: the lowest original row), and the rows never chosen as pivots follow
        in the order getf2's interchanges leave them (LAPACK's permutation exactly; the
        MLX-op loop keeps them in their original order). Stacks the kernel does not take
        (another dtype, b > :data:`PANEL_MAX_NB`, r·b > :data:`PANEL_MAX_ENTRIES`) go to
        :func:`lu_panel`; an empty stack comes back as it is, with the identity
        permutation.
    """
    packed, perm, _ = lu_panel_kernel_pivots(a)
    return packed, perm


def lu_panel_kernel_pivots(
    a: mx.array, columns: int | None = None
) -> tuple[mx.array, mx.array, mx.array | None]:
    """:func:`lu_panel_kernel` plus the panel's own LAPACK pivots: ``(packed, perm, piv)``.

    The panel is ``a[:, :, :columns]`` (all of ``a`` when None), which the kernel reads in
    place from ``a`` (a leaf of the recursive LU panel is the left columns of a wider
    array: no copy of the column slice first). piv (B, min(r, b)) int32, 0-based: the
    interchanges of getf2 that produce ``perm``, so a blocked getrf gets LAPACK's pivots
    as panel start + piv (dgetrf's rule) without replaying the permutation. None where the
    stack went to :func:`lu_panel` (whose row order after the pivots is not getf2's).
    On MLX's CUDA backend, panels of at most :data:`LEAF_MAX_NB` columns and
    :data:`LEAF_MAX_ROWS` rows (the recursive LU's leaves up to n = 4096) go to the
    ``lu_leaf_registers`` kernel, which holds them in registers (:func:`leaf_launch`), the
    others to ``lu_panel``: the same outputs bit for bit.
    """
    batch, r, width = a.shape
    b = width if columns is None else columns
    if batch * r * b == 0:  # nothing to eliminate
        perm = mx.broadcast_to(mx.arange(r, dtype=mx.int32), (batch, r))
        return a[:, :, :b], perm, mx.zeros((batch, min(r, b)), dtype=mx.int32)
    if a.dtype != mx.float32 or b > PANEL_MAX_NB or r * b > PANEL_MAX_ENTRIES:
        return (*lu_panel(a[:, :, :b]), None)
    # The leaf kernel on CUDA alone, where it was measured: on Metal, whether its pipeline
    # takes 512 threads of 128 registers each is unchecked (no Apple machine).
    leaf = leaf_launch((batch, r, b)) if _kernels.backend() == "cuda" else None
    if leaf is not None:
        packed, piv, perm = _kernels.launch("lu_leaf_registers", lu_panel_inputs(a, b), **leaf)
        return packed, perm, piv
    launch = panel_launch("lu_panel", (batch, r, b), lu_panel_threads(r))
    packed, piv, perm, _ = _kernels.launch("lu_panel", lu_panel_inputs(a, b), **launch)
    return packed, perm, piv


def lu_panel_inputs(a: mx.array, columns: int | None = None) -> list[mx.array]:
    """The ``lu_panel`` kernel's inputs for the panels ``a[:, :, :columns]`` (all of ``a``
    when None), read in place: ``[a, Cols]``. Shared with the CPU emulation in tests."""
    return [a, _kernels.extents(a.shape[-1] if columns is None else columns)]


def lu_panel(a: mx.array) -> tuple[mx.array, mx.array]:
    """Partial-pivoting LU (getf2) of a (B, r, b) panel, r >= b: ``(packed, perm)``.

    Returns:
        packed (B, r, b): row i is row perm[i] of the eliminated panel; U in its top b
        rows (on and above the diagonal), the multipliers of unit-lower L below; perm
        (B, r) int32: the pivot rows in the order they were chosen, then the other rows
        in their original order (LAPACK's interchanges leave those in another order;
        the blocked LU needs only the pivot rows and rows packed as perm says). A zero
        pivot is kept and its column's multipliers are left unscaled (as dgetf2); a NaN
        never wins a pivot search. Pivots equal getf2's except between candidates of
        exactly equal magnitude, where the lowest original row index wins (getf2: the
        lowest current position).

    Notes:
        Golub & Van Loan, Matrix Computations 4th ed., Alg. 3.4.1 with partial pivoting
        (§3.4.7); LAPACK dgetf2. r·b² flops.
    """
    batch, r, b = a.shape
    rows = mx.arange(r, dtype=mx.int32)
    later = mx.arange(b)[None, :] > mx.arange(b)[:, None]  # later[j, c]: column c > j
    # order[i]: the step at which row i was chosen as pivot, or r + i while it is a
    # candidate; sorting by it gives perm.
    order = mx.broadcast_to(rows + r, (batch, r))
    work = a
    for j in range(b):
        column = work[:, :, j]
        magnitude = mx.abs(column)
        # Candidates score |a|, a NaN -1 (never wins), rows already chosen -2.
        score = mx.where(order >= r, mx.where(magnitude >= 0, magnitude, -1.0), -2.0)
        p = mx.argmax(score, axis=1).astype(mx.int32)
        pivot_row = mx.take_along_axis(work, mx.broadcast_to(p[:, None, None], (batch, 1, b)), 1)
        pivot = pivot_row[:, 0, j]
        order = mx.where(rows == p[:, None], j, order)
        below = order >= r
        scale = mx.where(pivot == 0, 1.0, pivot)
        multipliers = mx.where(below, column / scale[:, None], 0.0)
        update = mx.where(later[j], pivot_row, 0.0)
        work = work - multipliers[:, :, None] * update
        work[:, :, j] = mx.where(below, multipliers, column)
    perm = mx.argsort(order, axis=1).astype(mx.int32)
    packed = mx.take_along_axis(work, mx.broadcast_to(perm[:, :, None], (batch, r, b)), 1)
    return packed, perm


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


def qr_panel(panel: mx.array) -> tuple[mx.array, mx.array]:
    """Householder QR (geqr2) of a (B, r, b) panel, r >= b, in MLX ops: ``(packed, tau)``.

    A column loop of about 33 ops per column (each a launch on a GPU); the reference of
    the ``qr_panel`` kernel (:func:`qr_panel_kernel`) and the panel of ``REFERENCE``.

    Returns:
        packed (B, r, b) with R on and above the diagonal and the Householder vectors'
        tails below (unit leading entries implied), and tau (B, b).

    Notes:
        Golub & Van Loan, Matrix Computations 4th ed., Alg. 5.2.1; LAPACK dgeqr2, dlarfg
        (the norm scaled by max|x|). 2rb² - 2b³/3 flops.
    """
    b = panel.shape[-1]
    work = mx.array(panel)  # a copy: the steps below assign into it
    taus = []
    for j in range(b):
        v, tau, beta = _householder(work[:, j:, j])
        taus.append(tau)
        if j + 1 < b:
            w = mx.sum(v[:, :, None] * work[:, j:, j + 1 :], axis=1)  # vᵀ A, (B, b - j - 1)
            work[:, j:, j + 1 :] = (
                work[:, j:, j + 1 :] - v[:, :, None] * (tau[:, None] * w)[:, None, :]
            )
        work[:, j:, j] = mx.concatenate([beta[:, None], v[:, 1:]], axis=1)
    return work, mx.stack(taus, axis=1)


def qr_panel_kernel(a: mx.array) -> tuple[mx.array, mx.array]:
    """:func:`qr_panel`'s contract through the ``qr_panel`` kernel: one launch per panel stack.

    Args:
        a: (B, r, b) float32, r >= b.

    Returns:
        ``(packed, tau)`` as :func:`qr_panel` (the same reflectors; rounding differs: the
        kernel scales the tail by the reciprocal of alpha - beta, as slarfg, and sums in
        another order). Stacks the kernel does not take (another dtype,
        b > :data:`PANEL_MAX_NB`, an empty stack) go to :func:`qr_panel`.
    """
    batch, r, b = a.shape
    if a.dtype != mx.float32 or b > PANEL_MAX_NB or a.size == 0:
        return qr_panel(a)
    launch = panel_launch("qr_panel", a.shape, panel_threads(r))
    packed, tau = _kernels.launch("qr_panel", [a], **launch)
    return packed, tau


def pivots(perm: mx.array, k: int) -> mx.array:
    """LAPACK's 0-based pivots (B, k) whose interchanges produce ``perm`` (B, m).

    Replays the interchanges (row j with the current position of row perm[j]), keeping
    each row's position: a loop of k steps of a few ops (a one-thread-per-matrix kernel
    would do it in one launch).
    """
    batch, m = perm.shape
    position = mx.broadcast_to(mx.arange(m, dtype=mx.int32), (batch, m))  # of each row
    occupant = position  # the row at each position
    found = []
    for j in range(k):
        wanted = perm[:, j : j + 1]
        at = mx.take_along_axis(position, wanted, axis=1)
        found.append(at)
        displaced = occupant[:, j : j + 1]
        position = mx.put_along_axis(position, displaced, at, axis=1)
        occupant = mx.put_along_axis(occupant, at, displaced, axis=1)
    if not found:
        return mx.zeros((batch, 0), dtype=mx.int32)
    return mx.concatenate(found, axis=1)


def inverse_permutation(perm: mx.array) -> mx.array:
    """The inverse of each row of a (B, m) int32 permutation: inverse[b, perm[b, i]] = i.

    One scatter (``put_along_axis``), where ``argsort`` gives the same by sorting (on an
    H100 the LU's 64 argsorts took 2 ms of a 4096 solve's GPU time).
    """
    positions = mx.broadcast_to(mx.arange(perm.shape[-1], dtype=mx.int32), perm.shape)
    return mx.put_along_axis(mx.zeros(perm.shape, dtype=mx.int32), perm, positions, axis=-1)


def permutation(piv: mx.array, m: int) -> mx.array:
    """The row permutation (B, m) of LAPACK's 0-based pivots (B, k), pivots in [0, m).

    Row i of P·A is row perm[i] of A, where P·A interchanges row j with row piv[j] for
    j = 0, 1, ... in turn. The interchanges compose as perm = τ₀ ∘ τ₁ ∘ ⋯ (perm[i] =
    τ₀[τ₁[⋯ τ_{k-1}[i]]]), which a tree of pairwise compositions (one gather per level)
    forms in ceil(log2 k) levels, from the k transpositions written out as a (B, k, m)
    array: k·m integers of memory, against a loop of k dependent steps.
    """
    batch, k = piv.shape
    positions = mx.arange(m, dtype=mx.int32)
    if k == 0:
        return mx.broadcast_to(positions, (batch, m))
    steps = mx.arange(k, dtype=mx.int32)[:, None]
    target = piv.astype(mx.int32)[:, :, None]
    swaps = mx.where(positions == steps, target, mx.where(positions == target, steps, positions))
    while swaps.shape[1] > 1:
        if swaps.shape[1] % 2:
            identity = mx.broadcast_to(positions, (batch, 1, m))
            swaps = mx.concatenate([swaps, identity], axis=1)
        swaps = mx.take_along_axis(swaps[:, 0::2], swaps[:, 1::2], axis=2)
    return swaps[:, 0]


def lu_join_kernel(
    p1: mx.array, u12: mx.array, p2: mx.array, perm1: mx.array, perm2: mx.array
) -> tuple[mx.array, mx.array] | None:
    """``blocked_lu.join``'s contract (shapes there) in one launch of the ``lu_join``
    kernel, one thread per entry of the joined panel; None for input it does not take
    (another dtype, nothing to write, more entries than one grid holds)."""
    batch, m, w1 = p1.shape
    w = w1 + u12.shape[-1]
    threads = 256
    entries = batch * m * w
    if p1.dtype != mx.float32 or entries == 0 or entries + threads > _kernels.MAX_GRID:
        return None
    packed, perm = _kernels.launch(
        "lu_join",
        [p1, u12, p2, perm1, perm2],
        template={},
        grid=(-(-batch * m * w // threads) * threads, 1, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=[(batch, m, w), (batch, m)],
    )
    return packed, perm


def gather_rows(x: mx.array, rows: mx.array, first: int = 0) -> mx.array:
    """Rows ``rows`` of each x[b] from column ``first`` on, in MLX ops (one gather).

    Args:
        x: (B, m, n).
        rows: (B, r) int32, entries in [0, m).
        first: the first column taken, 0 <= first <= n.

    Returns:
        (B, r, n - first): y[b, i] = x[b, rows[b, i], first:].
    """
    part = x[:, :, first:]
    index = mx.broadcast_to(rows[..., None], (*rows.shape, part.shape[-1]))
    return mx.take_along_axis(part, index, axis=1)


# Threads per threadgroup of the gather_rows kernel (one threadgroup per row gathered).
GATHER_THREADS = 256


def gather_rows_kernel(x: mx.array, rows: mx.array, first: int = 0) -> mx.array:
    """:func:`gather_rows` through the ``gather_rows`` kernel: one launch, ``x`` read in
    place from column ``first`` on (a trailing matrix right of its panel, without copying
    the column slice first). Other dtypes, an empty result and more rows than one grid
    holds go to :func:`gather_rows`."""
    batch, _, n = x.shape
    r = rows.shape[1]
    width = n - first
    if (
        x.dtype != mx.float32
        or batch * r * width == 0
        or batch * r * GATHER_THREADS > _kernels.MAX_GRID
    ):
        return gather_rows(x, rows, first)
    (y,) = _kernels.launch(
        "gather_rows",
        [x, rows.astype(mx.int32), _kernels.extents(first)],
        template={},
        grid=(batch * r * GATHER_THREADS, 1, 1),
        threadgroup=(GATHER_THREADS, 1, 1),
        output_shapes=[(batch, r, width)],
    )
    return y


# Threads per threadgroup of the lu_assemble kernel (one threadgroup per row assembled), and
# the most block columns it follows (its threadgroup array of source rows).
ASSEMBLE_THREADS = 256
ASSEMBLE_MAX_STEPS = 1024


def lu_assemble_kernel(
    stored: mx.array, moves: mx.array, block: int
) -> tuple[mx.array, mx.array] | None:
    """``blocked_lu.assemble``'s contract (shapes there) in one launch of the
    ``lu_assemble`` kernel, one threadgroup per row; None for input it does not take
    (another dtype, nothing to write, more block columns or rows than it holds)."""
    steps, batch, m = moves.shape
    rows = batch * m
    if (
        stored.dtype != mx.float32
        or rows * stored.shape[-1] == 0
        or not 1 <= steps <= ASSEMBLE_MAX_STEPS
        or rows * ASSEMBLE_THREADS > _kernels.MAX_GRID
    ):
        return None
    inputs = lu_assemble_inputs(stored, moves, block)
    packed, perm = _kernels.launch("lu_assemble", inputs, **assemble_launch(stored.shape))
    return packed, perm


def lu_assemble_inputs(stored: mx.array, moves: mx.array, block: int) -> list[mx.array]:
    """The ``lu_assemble`` kernel's inputs: ``[stored, moves, block]`` (the block as
    extents). Shared with the CPU emulation in tests."""
    return [stored, moves, _kernels.extents(block)]


def assemble_launch(shape: tuple[int, int, int], threads: int = ASSEMBLE_THREADS) -> dict:
    """Launch arguments (template, grid, threadgroup, output shapes) of the ``lu_assemble``
    kernel for a (B, m, n) factor, one threadgroup of ``threads`` per row. Shared with the
    CPU emulation in tests."""
    batch, m, _ = shape
    return {
        "template": {},
        "grid": (batch * m * threads, 1, 1),
        "threadgroup": (threads, 1, 1),
        "output_shapes": [shape, (batch, m)],
    }
