"""Stage 2's bulge chase on many SMs: the sweeps and ticks of ``band_to_tridiagonal`` cut
into tiles, run by sequenced launches of the ``band_chase_tiles`` kernel.

The one-threadgroup kernel (``metal/band_to_tridiagonal.metal``) runs global tick t = 3s + k
of every sweep s at once, so one SM does all of stage 2: about 0.3 µs a sweep and tick on
an H100, with n / (3 band) sweeps in flight (604 ms at n = 8192). Here tile (i, j) is sweeps
iG … iG + G − 1 over global ticks jT … jT + T − 1 (G = :data:`TILE_SWEEPS`, T =
:data:`TILE_TICKS`), and launch L runs every tile with i + j = L, one threadgroup each: tile
(i, j) needs only (i − 1, j) (the sweeps before it, at the same ticks) and (i, j − 1) (its
own sweeps, earlier) before it, and tiles of one launch touch disjoint columns of the band
(sweep s' > s at a tick t' < t ends δ(3b − 1) + b(t − t' − 2) + 1 > 0 columns below where
sweep s starts at t, δ = s' − s). :func:`tile_schedule` lays the launches out and checks
that every tile's columns are its own; the kernel's docstring says what a launch copies.
No grid-wide synchronization: launches are sequenced by the graph.

The results are the one-threadgroup kernel's bit for bit (same ticks, same arithmetic, only
the order of ticks that share no column changes): tests/test_band_chase_tiles.py checks it
under CPU emulation.
"""

import functools
from typing import NamedTuple

import mlx.core as mx
import numpy as np

from mlx_linalg import _kernels
from mlx_linalg._gpu import band_chase  # its reflector layout (it imports this module)
from mlx_linalg._tracing import start_every

# Sweeps and global ticks per tile (a tile's sweeps run on one simdgroup each), and copier
# threadgroups per launch. tools/bench_band_chase_tiles.py on an H100 (2026-11-28): 8 x 12
# was the fastest of 8 x 12, 8 x 24, 12 x 12, 12 x 24 and 4 x 12 at n = 2048 to 8192
# (docs/kernels-spectral-blocks.md, "Stage 2 on many SMs"); 16 sweeps do not launch (128
# registers a thread). 64 copiers spread the copy of the band's other columns over as many
# SMs; not tuned further.
TILE_SWEEPS = 8
TILE_TICKS = 12
COPIERS = 64
# The kernel keeps the launch's column ranges (two per tile) in threadgroup memory.
MAX_TILES = 32
# Launches built between two starts of the evaluation: MLX spends about 14 µs of host
# time on each launch of a custom kernel (25 µs with this layer's checks; the H100
# machine's host), 38 ms of the chase's 140 at n = 4096 while the GPU waited for the whole
# graph; started every 128 launches, the chase took 112 ms.
START_EVERY = 128


class TileSchedule(NamedTuple):
    """The launches of a tiled chase of an n x n band matrix, as arrays made once per shape
    (the kernel's inputs; :func:`tile_schedule` is cached).

    Attributes:
        tiles: (launches, P, 8) int32: launch L's tile slots, the kernel's ``tiles`` rows
            (s0, s1, t0, t1, then two owned column ranges [lo, hi)); P = the most tiles of
            any launch, empty slots have s0 = s1 and no columns.
        kept_index: (S, K) int32: for the reflector of sweep s at tick k (the layout of
            ``band_chase.reflector_slots``), its row in the launches' ``kept`` outputs
            concatenated, (launches P G T, band + 1); ticks a sweep does not have point
            one past them, at a row of zeros appended there.
    """

    tiles: mx.array
    kept_index: mx.array


def _sweep_ticks(n: int, band: int) -> tuple[np.ndarray, np.ndarray]:
    """(s, k) of every tick of every sweep of the chase, sweep by sweep."""
    sweeps = np.arange(max(n - 2, 0))
    ticks = 1 + (n - 3 - sweeps) // band
    s = np.repeat(sweeps, ticks)
    first = np.repeat(np.cumsum(ticks) - ticks, ticks)
    return s, np.arange(s.size) - first


@functools.lru_cache(maxsize=16)
def tile_schedule(n: int, band: int, sweeps: int, ticks: int) -> TileSchedule:
    """The tiled chase's launches for an n x n matrix of half-bandwidth ``band`` (n >= 3),
    tiles of ``sweeps`` sweeps by ``ticks`` global ticks.

    Each tile owns two column ranges: its sweeps' own columns (where a sweep keeps its
    reflector) and the hull of the columns its ticks reach (merged when they meet). These
    are checked here to be disjoint between the tiles of every launch (a RuntimeError
    otherwise: a schedule that would race).

    Raises:
        ValueError: a launch would need more than :data:`MAX_TILES` tiles.
    """
    s, k = _sweep_ticks(n, band)
    t = 3 * s + k
    tile_i, tile_j = s // sweeps, t // ticks
    # Tiles numbered in (i, j) order, the empty ones left out (a cumulative count over all
    # (i, j): np.unique's numbering without its sort of every tick).
    key = tile_i * (tile_j.max() + 1) + tile_j
    present = np.zeros(key.max() + 1, np.int64)
    present[key] = 1
    number = np.cumsum(present) - 1
    tile_of, count = number[key], int(number[-1]) + 1
    i = np.zeros(count, np.int64)
    j = np.zeros(count, np.int64)
    i[tile_of], j[tile_of] = tile_i, tile_j
    ranges = _owned_ranges(n, band, s, k, tile_of, count)
    launch = i + j
    order = np.lexsort((i, launch))
    per_launch = np.bincount(launch, minlength=launch.max() + 1)
    slots = int(per_launch.max())
    if slots > MAX_TILES:
        raise ValueError(
            f"[band_chase_tiles] n = {n}, band = {band}: tiles of {sweeps} sweeps by {ticks} "
            f"ticks need {slots} a launch, more than {MAX_TILES}"
        )
    slot = np.empty(count, np.int64)
    starts = np.cumsum(per_launch) - per_launch
    slot[order] = np.arange(count) - np.repeat(starts, per_launch)
    table = np.zeros((per_launch.size, slots, 8), np.int32)
    span = [i * sweeps, np.minimum((i + 1) * sweeps, n - 2), j * ticks, (j + 1) * ticks]
    table[launch, slot] = np.concatenate([np.stack(span, axis=1), ranges], axis=1)
    _check_disjoint(table)
    total = per_launch.size * slots * sweeps * ticks
    if total >= 2**31:  # kept_index is int32
        raise ValueError(f"[band_chase_tiles] n = {n}: {total} reflector slots, too many")
    kept_index = np.full(band_chase.reflector_slots(n, band), total, np.int32)
    kept_index[s, k] = (
        ((launch[tile_of] * slots + slot[tile_of]) * sweeps + s - i[tile_of] * sweeps) * ticks
        + t
        - j[tile_of] * ticks
    )
    return TileSchedule(mx.array(table), mx.array(kept_index))


@functools.lru_cache(maxsize=64)
def _fits(n: int, band: int, sweeps: int, ticks: int) -> bool:
    try:
        tile_schedule(n, band, sweeps, ticks)
    except ValueError:
        return False
    return True


def fits(n: int, band: int) -> bool:
    """Whether the tiled chase takes an n x n band matrix of half-width ``band`` (n >= 3): its
    launches need at most :data:`MAX_TILES` tiles (a narrow band has more sweeps in flight,
    n / (3 band), so more tiles a launch)."""
    return _fits(n, band, TILE_SWEEPS, TILE_TICKS)


def _owned_ranges(
    n: int, band: int, s: np.ndarray, k: np.ndarray, tile_of: np.ndarray, count: int
) -> np.ndarray:
    """(count, 4): each tile's two owned column ranges [lo, hi), its sweeps' own columns
    and the hull of the columns its ticks (s, k) reach, one range where they meet."""
    first = s + 1 + k * band  # the tick's first column; k = 0 also touches column s
    low = np.where(k == 0, s, first)
    high = np.minimum(first + band, n)
    s_low = np.full(count, n, np.int64)
    s_high = np.zeros(count, np.int64)
    c_low = np.full(count, n, np.int64)
    c_high = np.zeros(count, np.int64)
    np.minimum.at(s_low, tile_of, s)
    np.maximum.at(s_high, tile_of, s + 1)
    np.minimum.at(c_low, tile_of, low)
    np.maximum.at(c_high, tile_of, high)
    meet = c_low <= s_high
    return np.stack(
        [
            s_low,
            np.where(meet, np.maximum(s_high, c_high), s_high),
            np.where(meet, 0, c_low),
            np.where(meet, 0, c_high),
        ],
        axis=1,
    )


def _check_disjoint(table: np.ndarray) -> None:
    """Every launch's owned column ranges, sorted, each ending before the next starts."""
    ranges = table[:, :, 4:].reshape(table.shape[0], -1, 2)
    low = np.where(ranges[..., 0] < ranges[..., 1], ranges[..., 0], np.iinfo(np.int32).max)
    order = np.argsort(low, axis=1)
    low = np.take_along_axis(low, order, 1)
    high = np.take_along_axis(ranges[..., 1], order, 1)
    real = low[:, 1:] != np.iinfo(np.int32).max
    if np.any(real & (low[:, 1:] < high[:, :-1])):
        raise RuntimeError("[band_chase_tiles] tiles of one launch would share columns")


def launch_arguments(
    batch: int, n: int, band: int, slots: int, want_q: bool, sweeps: int, ticks: int
) -> dict:
    """The ``band_chase_tiles`` kernel's launch arguments for a (batch, n, n) chase whose
    launches have ``slots`` tile slots of ``sweeps`` by ``ticks``; shared with the CPU
    emulation in tests."""
    threads = 32 * sweeps
    kept = (batch, slots, sweeps, ticks, band + 1) if want_q else (batch, 1)
    return {
        "template": {"BAND": band, "WANT_Q": want_q, "SWEEPS": sweeps, "TICKS": ticks},
        "grid": (batch * (slots + COPIERS) * threads, 1, 1),
        "threadgroup": (threads, 1, 1),
        "output_shapes": [(batch, n, 3 * band + 1), kept],
    }


def packed_band(a: mx.array, band: int) -> mx.array:
    """(B, n, 3 band + 1): the kernels' work layout of (B, n, n) band matrices, column c
    holding A[c + k, c] for k <= band (zeros past the matrix), then zeros."""
    batch, n, _ = a.shape
    rows = mx.pad(a, [(0, 0), (0, band), (0, 0)])  # A[c + k, c] = 0 for c + k >= n
    diagonals = mx.as_strided(rows, (batch, n, band + 1), ((n + band) * n, n + 1, n))
    return mx.pad(diagonals, [(0, 0), (0, 0), (0, 2 * band)])


def kept_in_slots(kept: list[mx.array], schedule: TileSchedule) -> mx.array:
    """The launches' ``kept`` outputs (each (B, P, G, T, band + 1)) as the one-threadgroup
    kernel's reflectors (B, S, K, band + 1): one concatenation (a copy per launch) and one
    gather."""
    batch, width = kept[0].shape[0], kept[0].shape[-1]
    rows = [x.reshape(batch, -1, width) for x in kept]
    rows.append(mx.zeros((batch, 1, width), mx.float32))
    index = schedule.kept_index.reshape(-1)
    gathered = mx.take(mx.concatenate(rows, axis=1), index, axis=1)
    return gathered.reshape(batch, *schedule.kept_index.shape, width)


def chase(work: mx.array, band: int, want_q: bool) -> tuple[mx.array, mx.array | None]:
    """The tiled chase of the packed band ``work`` (B, n, 3 band + 1), n >= 3, in tiles of
    :data:`TILE_SWEEPS` by :data:`TILE_TICKS` (read at each call): the work buffer after the
    last launch and, when ``want_q``, the reflectors in ``band_to_tridiagonal``'s layout
    (B, S, K, band + 1)."""
    batch, n, _ = work.shape
    schedule = tile_schedule(n, band, TILE_SWEEPS, TILE_TICKS)
    tiles = schedule.tiles
    slots = tiles.shape[1]
    arguments = launch_arguments(batch, n, band, slots, want_q, TILE_SWEEPS, TILE_TICKS)
    kept = []
    for row in range(tiles.shape[0]):
        table = tiles[row : row + 1].reshape(slots, 8)  # a view (tiles[row] would gather)
        work, reflectors = _kernels.launch("band_chase_tiles", [work, table], **arguments)
        kept.append(reflectors)
        start_every(row + 1, work, every=START_EVERY)
    return work, kept_in_slots(kept, schedule) if want_q else None
