"""Tournament pivoting for tall LU panels (CALU), as kernels and in MLX ops.

The one-threadgroup ``lu_panel`` kernel runs a panel's getf2 on one SM, and on tall panels
that SM's memory traffic sets its time (docs/kernels-blocked.md, "Threads of the LU
panel"). Tournament pivoting (Grigori, Demmel & Xiang, "CALU: a communication optimal LU
factorization algorithm", SIAM J. Matrix Anal. Appl. 32(4), 2011) spreads the panel over
the GPU in two launches, a tree of one level:

1. the panel's rows, cut into P blocks of R rows (the last zero-padded), are factored by
   getf2 as one (B·P, R, NB) stack (the ``lu_panel`` kernel), and each block's first NB
   rows of its permutation are its candidates;
2. ``metal/lu_tournament.metal``: every threadgroup factors the P·NB candidate rows (as
   they are in the panel) by getf2 in threadgroup memory, whose NB pivot rows win, and
   writes its share of the panel: the winners first (their U and L₁₁), then every other
   row in its original order with its multipliers L₂₁ = A₂₁ U⁻¹.

The result is a valid partial LU of the panel, P A = L U, with the building block's
contract (``Blocks.lu_pivots``, pivots None): its pivots are not LAPACK's (|L₂₁| may exceed
1, growth bounded as CALU's), so it may serve ``solve``, ``inv``, ``det`` and ``slogdet``,
not ``lu_factor``. Not dispatched yet: :data:`blocked_common.TOURNAMENT` holds it for
measurement (docs/kernels-blocked.md, "Not done").

:func:`tournament_lu_kernel` is the GPU path, :func:`tournament_lu` the same contract in
MLX ops (any device; the reference the kernel is tested against).
"""

import mlx.core as mx

from mlx_linalg import _kernels
from mlx_linalg._gpu import blocked_panel

# Panels of fewer rows keep the one-threadgroup getf2, which is as fast there (a 1024 x 16
# panel took 48 µs on an H200; the two launches here are estimated at about 50).
MIN_ROWS = 1024
# Rows per block of the first launch (one lu_panel threadgroup each).
BLOCK_ROWS = 256
# Threads per threadgroup of ``lu_tournament`` (one panel row each).
THREADS = 256
# The widest panel taken (the finish keeps a row of the panel in registers).
MAX_NB = 16


def max_candidates(nb: int) -> int:
    """The most candidate rows of width ``nb`` that ``lu_tournament`` holds (its ``CMAX``)."""
    return 7680 // (nb + 1)


def tournament_shape(m: int, nb: int, block_rows: int = BLOCK_ROWS) -> tuple[int, int] | None:
    """(P, R): the blocks and rows per block for an m x nb panel, or None when the
    tournament does not apply (fewer than two blocks, or a last block with fewer than nb
    real rows: its padding rows could then win a block's getf2)."""
    if not 1 <= nb <= MAX_NB:
        return None
    blocks = min(-(-m // block_rows), max_candidates(nb) // nb)
    if blocks < 2:
        return None
    rows = -(-m // blocks)
    if m - (blocks - 1) * rows < nb:
        return None
    return blocks, rows


def _row_blocks(a: mx.array, min_rows: int, block_rows: int) -> tuple[mx.array, int, int] | None:
    """``(padded, P, R)`` for the tournament on the (B, m, nb) panel ``a``: ``a`` as a
    row-contiguous (B, P·R, nb), zero rows below; None for an empty panel, one of fewer
    than ``min_rows`` rows, or where :func:`tournament_shape` gives None."""
    m, nb = a.shape[1:]
    shape = tournament_shape(m, nb, block_rows) if m >= min_rows and a.size else None
    if shape is None:
        return None
    blocks, rows = shape
    if blocks * rows > m:
        return mx.pad(a, [(0, 0), (0, blocks * rows - m), (0, 0)]), blocks, rows
    return mx.contiguous(a), blocks, rows


def tournament_lu_kernel(a: mx.array) -> tuple[mx.array, mx.array, mx.array | None]:
    """The building block's ``lu_pivots`` contract through the tournament's two launches:
    ``(packed, perm, None)`` for a (B, m, nb) float32 panel of at least :data:`MIN_ROWS`
    rows; other panels go to ``blocked_panel.lu_panel_kernel_pivots`` (getf2, its pivots).

    Returns:
        packed (B, m, nb): row i is row perm[i] of the eliminated panel (U in the top nb
        rows, L's multipliers below); perm (B, m) int32: the winners in the order chosen,
        then the other rows in their original order; None for the pivots.
    """
    batch, m, nb = a.shape
    split = _row_blocks(a, MIN_ROWS, BLOCK_ROWS) if a.dtype == mx.float32 else None
    if split is None:
        return blocked_panel.lu_panel_kernel_pivots(a)
    padded, blocks, rows = split
    _, block_perm, _ = blocked_panel.lu_panel_kernel_pivots(
        padded.reshape(batch * blocks, rows, nb)
    )
    packed, perm = _kernels.launch(
        "lu_tournament",
        [padded, block_perm, _kernels.extents(m, blocks, rows)],
        **tournament_launch(batch, m, nb),
    )
    return packed, perm, None


def tournament_launch(batch: int, m: int, nb: int) -> dict:
    """The ``lu_tournament`` kernel's launch arguments for a (B, m, nb) panel (shared with
    the CPU emulation in tests)."""
    groups = -(-m // THREADS)
    return {
        "template": {"NB": nb},
        "grid": (batch * groups * THREADS, 1, 1),
        "threadgroup": (THREADS, 1, 1),
        "output_shapes": [(batch, m, nb), (batch, m)],
    }


def tournament_lu(
    a: mx.array, *, min_rows: int = MIN_ROWS, block_rows: int = BLOCK_ROWS
) -> tuple[mx.array, mx.array, None]:
    """:func:`tournament_lu_kernel`'s contract in MLX ops (any device, any float dtype):
    the blocks' getf2 by ``blocked_panel.lu_panel``, then :func:`finish`; panels of fewer
    than ``min_rows`` rows (or where :func:`tournament_shape` gives None) by
    ``blocked_panel.lu_panel`` alone."""
    batch, m, nb = a.shape
    split = _row_blocks(a, min_rows, block_rows)
    if split is None:
        return (*blocked_panel.lu_panel(a), None)
    padded, blocks, rows = split
    _, block_perm = blocked_panel.lu_panel(padded.reshape(batch * blocks, rows, nb))
    return (*finish(padded, block_perm, m, blocks, rows), None)


def finish(
    padded: mx.array, block_perm: mx.array, m: int, blocks: int, rows: int
) -> tuple[mx.array, mx.array]:
    """``metal/lu_tournament.metal``'s contract in MLX ops: ``(packed, perm)``.

    Args:
        padded: (B, blocks·rows, nb), the panel's m rows and zero rows below.
        block_perm: (B·blocks, rows) int32, each block's getf2 permutation.
        m, blocks, rows: the panel's real rows, its blocks and their rows.

    Returns:
        packed (B, m, nb), perm (B, m) int32, as the kernel's. Between candidates of exactly
        equal magnitude ``blocked_panel.lu_panel`` lets the first in block order win, as
        the kernel, except after interchanges (getf2: the first current position).
    """
    batch, _, nb = padded.shape
    starts = (mx.arange(blocks, dtype=mx.int32) * rows)[None, :, None]
    firsts = block_perm.reshape(batch, blocks, rows)[:, :, :nb]
    candidates = (firsts + starts).reshape(batch, blocks * nb)
    rows_of = mx.take_along_axis(padded, candidates[:, :, None], axis=1)
    factored, order = blocked_panel.lu_panel(rows_of)
    winners = mx.take_along_axis(candidates, order[:, :nb], axis=1)
    # Sort keys: the winners 0 .. nb-1 in their order, every other row nb + its index.
    keys = mx.broadcast_to(mx.arange(m, dtype=mx.int32) + nb, (batch, m))
    ranks = mx.broadcast_to(mx.arange(nb, dtype=mx.int32), (batch, nb))
    perm = mx.argsort(mx.put_along_axis(keys, winners, ranks, axis=1), axis=1).astype(mx.int32)
    rest = mx.take_along_axis(padded[:, :m], perm[:, nb:, None], axis=1)
    upper = factored[:, :nb]
    columns = mx.arange(nb)
    for j in range(nb):  # getf2's operations on a row below the pivots
        pivot = upper[:, j, j][:, None]
        nonzero = pivot != 0  # a zero pivot leaves its multipliers unscaled (dgetf2)
        multiplier = mx.where(nonzero, rest[:, :, j] / mx.where(nonzero, pivot, 1), rest[:, :, j])
        update = mx.where(columns > j, upper[:, j, :], 0)[:, None, :]
        rest = rest - multiplier[:, :, None] * update
        rest[:, :, j] = multiplier
    return mx.concatenate([upper, rest], axis=1), perm
