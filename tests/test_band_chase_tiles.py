"""Stage 2 on many SMs (mlx_linalg/_gpu/band_chase_tiles.py, metal/band_chase_tiles.metal):
its schedule, and its launches under CPU emulation against the one-threadgroup kernel.

The tiled chase runs the same ticks with the same arithmetic as ``band_to_tridiagonal``,
reordering only ticks that share no column, so its band, tridiagonal matrix and reflectors
must be that kernel's bit for bit.
"""

import mlx.core as mx
import numpy as np
import pytest
import tool_scripts
from kernel_emulation import emulate, needs_emulation
from matrices import symmetric_band

from mlx_linalg._gpu import band_chase, band_chase_tiles


def _accesses(n, band):
    """(column, global tick, sweep, tick) of every column every tick of the chase touches
    (band_chase.h's la_chase_tick: column s, and columns st .. ed)."""
    s, k = band_chase_tiles._sweep_ticks(n, band)
    rows = [np.stack([s, 3 * s + k, s, k], axis=1)]  # column s: the sweep's reflector
    first = s + 1 + k * band
    for offset in range(band):
        inside = first + offset < n
        column = (first + offset)[inside]
        rows.append(np.stack([column, (3 * s + k)[inside], s[inside], k[inside]], axis=1))
    return np.concatenate(rows)


def _launch_and_tile(schedule, s, t):
    """The launch and flat tile slot that run sweep s at global tick t, from the table."""
    tiles = np.array(schedule.tiles)
    inside = (
        (tiles[None, :, :, 0] <= s[:, None, None])
        & (s[:, None, None] < tiles[None, :, :, 1])
        & (tiles[None, :, :, 2] <= t[:, None, None])
        & (t[:, None, None] < tiles[None, :, :, 3])
    )
    assert np.all(inside.reshape(len(s), -1).sum(axis=1) == 1)  # exactly one tile each
    launch, slot = np.nonzero(inside)[1:]
    return launch, launch * tiles.shape[1] + slot


@pytest.mark.parametrize("n", [3, 4, 17, 40, 97])
@pytest.mark.parametrize("band", [1, 3, 8, 32])
@pytest.mark.parametrize(("sweeps", "ticks"), [(1, 1), (2, 3), (5, 7), (12, 24)])
def test_ticks_sharing_a_column_keep_their_order_and_never_run_together(n, band, sweeps, ticks):
    schedule = band_chase_tiles.tile_schedule(n, band, sweeps, ticks)
    column, t, s, _ = _accesses(n, band).T
    launch, tile = _launch_and_tile(schedule, s, t)
    order = np.lexsort((t, column))
    column, t, launch, tile = column[order], t[order], launch[order], tile[order]
    same_column = column[1:] == column[:-1]
    assert np.all(t[1:][same_column] > t[:-1][same_column])
    # consecutive accesses to a column: one tile (ordered by its ticks) or later launches
    later = (tile[1:] == tile[:-1]) | (launch[1:] > launch[:-1])
    assert np.all(later[same_column])


@pytest.mark.parametrize(("n", "band", "sweeps", "ticks"), [(40, 8, 2, 3), (97, 3, 5, 7)])
def test_every_touched_column_is_owned_by_its_tile(n, band, sweeps, ticks):
    schedule = band_chase_tiles.tile_schedule(n, band, sweeps, ticks)
    column, t, s, _ = _accesses(n, band).T
    launch, tile = _launch_and_tile(schedule, s, t)
    ranges = np.array(schedule.tiles).reshape(-1, 8)[tile, 4:]
    owned = ((ranges[:, 0] <= column) & (column < ranges[:, 1])) | (
        (ranges[:, 2] <= column) & (column < ranges[:, 3])
    )
    assert np.all(owned)


def test_a_schedule_whose_tiles_share_columns_is_refused():
    table = np.zeros((1, 2, 8), np.int32)
    table[0, 0, 4:6] = (0, 10)
    table[0, 1, 4:6] = (9, 20)
    with pytest.raises(RuntimeError, match="share columns"):
        band_chase_tiles._check_disjoint(table)
    table[0, 1, 4:6] = (10, 20)
    band_chase_tiles._check_disjoint(table)


def test_too_many_tiles_a_launch_are_refused():
    with pytest.raises(ValueError, match="more than 32"):
        band_chase_tiles.tile_schedule(600, 1, 1, 1)


def test_narrow_bands_of_large_orders_stay_on_one_threadgroup():
    """The dispatch (band_chase._chase) asks ``fits``: a band of 4 at n = 8192 has about
    680 sweeps in flight, 58 tiles a launch; the route's band of 32 fits."""
    assert band_chase_tiles.fits(4096, 32)
    assert band_chase_tiles.fits(8192, 8)
    assert not band_chase_tiles.fits(8192, 4)


def test_packed_band_is_the_kernels_layout(rng):
    n, band = 9, 3
    a = rng.standard_normal((2, n, n)).astype(np.float32)
    work = np.array(band_chase_tiles.packed_band(mx.array(a), band))
    assert work.shape == (2, n, 3 * band + 1)
    for c in range(n):
        for k in range(3 * band + 1):
            expected = a[:, c + k, c] if k <= band and c + k < n else 0
            np.testing.assert_array_equal(work[:, c, k], expected)


@pytest.fixture(autouse=True)
def _few_copiers(monkeypatch):
    """Three copier threadgroups a launch: the emulation runs threadgroups one at a time."""
    monkeypatch.setattr(band_chase_tiles, "COPIERS", 3)


def _tiled(a, band, sweeps, ticks, want_q):
    """The tiled chase's final work buffer and reflectors (S, K layout), emulated."""
    batch, n, _ = a.shape
    schedule = band_chase_tiles.tile_schedule(n, band, sweeps, ticks)
    work = np.array(band_chase_tiles.packed_band(mx.array(a), band))
    arguments = band_chase_tiles.launch_arguments(
        batch, n, band, schedule.tiles.shape[1], want_q, sweeps, ticks
    )
    kept = []
    for row in np.array(schedule.tiles):
        work, reflectors = emulate.run("band_chase_tiles", [work, row], **arguments)
        kept.append(mx.array(reflectors))
    if not want_q:
        return work, None
    assert schedule.kept_index.shape == band_chase.reflector_slots(n, band)
    return work, np.array(band_chase_tiles.kept_in_slots(kept, schedule))


@needs_emulation
@pytest.mark.parametrize(
    ("n", "band", "sweeps", "ticks", "batch", "want_q"),
    [
        (40, 8, 2, 3, 2, True),
        (45, 4, 3, 7, 1, False),
        (70, 16, 2, 5, 1, True),
        (33, 32, 1, 1, 1, True),
        (3, 2, 1, 1, 1, True),
        (61, 3, 4, 6, 1, True),
    ],
)
def test_tiled_chase_is_the_one_threadgroup_kernel_bit_for_bit(
    rng, n, band, sweeps, ticks, batch, want_q
):
    a = symmetric_band(rng, batch, n, band)
    a[0, n // 2, n // 2 - 1] = a[0, n // 2 - 1, n // 2] = 0.0  # a zero subdiagonal entry
    launch = band_chase.band_to_tridiagonal_launch(a.shape, band, 2, want_q=want_q)
    _, _, work, kept = emulate.run("band_to_tridiagonal", [a], **launch)
    tiled_work, tiled_kept = _tiled(a, band, sweeps, ticks, want_q)
    np.testing.assert_array_equal(tiled_work, work)
    if want_q:
        np.testing.assert_array_equal(tiled_kept, kept)


@needs_emulation
def test_nan_stays_in_its_matrix(rng):
    a = symmetric_band(rng, 2, 30, 4)
    a[1, 10, 9] = np.nan
    work, _ = _tiled(a, 4, 2, 3, False)
    assert np.all(np.isfinite(work[0])) and np.isnan(work[1, :, :2]).any()


def test_bench_tool_loads_and_makes_band_matrices(rng):
    """tools/bench_band_chase_tiles.py (GPU-only: its smoke run is in tests/gpu) loads, and
    its matrices are symmetric with half-bandwidth 32."""
    bench = tool_scripts.load("tools/bench_band_chase_tiles.py")
    a = np.array(bench._band_matrix(rng, 80))[0]
    rows, cols = np.indices(a.shape)
    np.testing.assert_array_equal(a, a.T)
    assert np.all(a[np.abs(rows - cols) > bench.BAND] == 0)
    assert np.all(a[np.abs(rows - cols) <= bench.BAND] != 0)


@pytest.mark.parametrize(
    ("n", "band", "tiled"),
    [(3071, 32, False), (3072, 32, True), (8192, 8, True), (8192, 4, False)],
)
def test_the_chase_is_tiled_from_tiled_from_where_its_tiles_fit(monkeypatch, n, band, tiled):
    """band_chase's dispatch between the kernels (launches recorded, nothing run)."""
    chosen = []

    def one_threadgroup(name, inputs, **launch):
        chosen.append(name)
        return [mx.zeros(shape) for shape in launch["output_shapes"]]

    def tiles(work, band, want_q):
        chosen.append("band_chase_tiles")
        return work, None

    monkeypatch.setattr(band_chase._kernels, "launch", one_threadgroup)
    monkeypatch.setattr(band_chase_tiles, "chase", tiles)
    band_chase.band_to_tridiagonal(mx.zeros((1, n, n), mx.float32), band)
    assert chosen == ["band_chase_tiles" if tiled else "band_to_tridiagonal"]
