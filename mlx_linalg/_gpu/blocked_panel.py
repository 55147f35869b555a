"""Tall-panel LU with partial pivoting in MLX ops, and LAPACK pivots <-> permutations.

Pivots to a permutation is a tree of compositions (log2 n gathers); a permutation to
pivots replays the interchanges (n steps of a few ops, only for ``lu_factor``'s output).

No kernel takes a tall (m x b, m > 64) panel yet, so the blocked LU factors its panels
with :func:`lu_panel`, a column loop of vectorized MLX ops, on every device. It is written
for few ops per column (each op is one launch on a GPU): rows never move during the loop
(the pivot row is gathered, the candidates are masked), and the panel is permuted once at
the end. Per column: a masked argmax, one gather, the multipliers, one masked rank-1
update and one column store, about 20 ops (against about 65 for the row-swapping
reference ``reference.lu_small``). This is the piece of the blocked LU that most wants a
kernel.
"""

import mlx.core as mx


def lu_panel(a: mx.array) -> tuple[mx.array, mx.array]:
    """Partial-pivoting LU (getf2) of a (B, r, b) panel, r >= b: ``(packed, perm)``.

    Returns:
        packed (B, r, b): row i is row perm[i] of the eliminated panel; U in its top b
        rows (on and above the diagonal), the multipliers of unit-lower L below; perm
        (B, r) int32: the pivot rows in the order they were chosen, then the other rows
        in their original order (the permutation LAPACK's interchanges produce). A zero
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
