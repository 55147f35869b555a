"""The tall-panel kernels (metal/lu_panel.metal, metal/qr_panel.metal) and the LU's row
gather (metal/gather_rows.metal) run on the CPU under
tools/metal_check/emulate.py (a host thread per GPU thread, real barriers) against their
MLX-op references: ``blocked_panel.lu_panel`` (the building block they replace) and
``reference.lu_small`` (getf2 with row swaps: LAPACK's pivots, ties included).

Each case runs one stack of four panels: Gaussian, graded columns (10^0..10^6), an exactly
zero column (singular), and NaN entries (one whole NaN column and a scattered NaN)."""

import mlx.core as mx
import numpy as np
import pytest
from kernel_emulation import emulate, needs_emulation

from mlx_linalg._gpu import blocked_common, blocked_panel
from mlx_linalg._gpu import reference as ref


def _panels(m: int, nb: int, seed: int) -> np.ndarray:
    """Four (m, nb) panels: Gaussian, graded, a zero column, NaN entries."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, m, nb))
    a[1] *= np.logspace(0, 6, nb)[None, :]
    a[2, :, nb // 2] = 0.0
    a[3, :, (nb - 1) // 2] = np.nan
    a[3, m // 2, nb - 1] = np.nan
    return a.astype(np.float32)


def _assert_close(x: np.ndarray, y: np.ndarray) -> None:
    """Agreement to rounding, column by column: |x - y| <= 1e-5 max|y[:, c]| + 1e-6 (the
    graded panels cancel, so entrywise relative agreement is not expected); NaN where the
    other has NaN."""
    np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
    scale = np.nanmax(np.abs(y), axis=-2, keepdims=True, initial=0.0)
    diff = np.abs(np.where(np.isnan(x), 0.0, x - y))
    assert (diff <= 1e-5 * scale + 1e-6).all(), float((diff / (scale + 1e-30)).max())


def _run(a: np.ndarray, threads: int, columns: int | None = None, kernel: str = "lu_panel"):
    """The emulated ``lu_panel`` (or ``lu_leaf_registers``) kernel on the panels
    ``a[:, :, :columns]``, read in place: (packed, piv, perm)."""
    columns = a.shape[-1] if columns is None else columns
    shape = (*a.shape[:2], columns)
    if kernel == "lu_leaf_registers":
        launch = blocked_panel.leaf_launch(shape, threads)
    else:
        launch = blocked_panel.panel_launch(kernel, shape, threads)
    inputs = [np.asarray(x) for x in blocked_panel.lu_panel_inputs(mx.array(a), columns)]
    packed, piv, perm = emulate.run(kernel, inputs, **launch)[:3]
    return packed, piv, perm


@needs_emulation
@pytest.mark.parametrize(
    "m, nb, threads",
    [(1, 1, 32), (7, 5, 64), (100, 1, 256), (100, 32, 256), (300, 5, 96), (300, 32, 256)],
)
def test_emulated_lu_panel_matches_references(m, nb, threads):
    a = _panels(m, nb, m * 1000 + nb)
    packed, piv, perm = _run(a, threads)

    # getf2 with row swaps: LAPACK's pivots exactly, on every panel (ties, zero and NaN
    # columns included), and the same packed factors to rounding.
    exp_packed, exp_piv, exp_perm = ref.lu_small(mx.array(a))
    np.testing.assert_array_equal(piv, np.asarray(exp_piv))
    np.testing.assert_array_equal(perm, np.asarray(exp_perm))
    _assert_close(packed, np.asarray(exp_packed))

    # The MLX-op building block it replaces: the same pivot rows where no pivot search ties
    # (the Gaussian and graded panels), and the same factor row for every row of A, to
    # rounding. (The rows never chosen as pivots follow in getf2's order in the kernel, in
    # their original order in the MLX-op loop.)
    k = min(m, nb)
    blk_packed, blk_perm = (np.asarray(x) for x in blocked_panel.lu_panel(mx.array(a[:2])))
    np.testing.assert_array_equal(perm[:2, :k], blk_perm[:, :k])
    for b in range(2):
        np.testing.assert_array_equal(np.sort(perm[b]), np.arange(m))
        mine, theirs = np.empty_like(packed[b]), np.empty_like(packed[b])
        mine[perm[b]], theirs[blk_perm[b]] = packed[b], blk_packed[b]
        _assert_close(mine, theirs)

    # The pivots are the permutation's interchanges, and P A = L U holds.
    np.testing.assert_array_equal(
        piv, np.asarray(blocked_panel.pivots(mx.array(perm), k)).reshape(piv.shape)
    )
    for b in range(2):
        lower = np.tril(packed[b].astype(np.float64), -1)[:, :k] + np.eye(m, k)
        upper = np.triu(packed[b].astype(np.float64))[:k]
        pa = a[b][perm[b]].astype(np.float64)
        error = np.linalg.norm(pa - lower @ upper) / np.linalg.norm(a[b].astype(np.float64))
        assert error <= 30 * m * 2.0**-24

    # Failure semantics: the zero column is kept (no NaN from it), the NaN stays in its panel.
    assert np.isfinite(packed[2]).all()
    assert packed[2, nb // 2, nb // 2] == 0.0
    assert np.isnan(packed[3]).any()


@needs_emulation
def test_emulated_lu_panel_short_wide_and_ties():
    """M < NB (k = M steps) and exact ties, where the first current position wins (dgetf2)."""
    a = np.array([[[1, 2, 3, 4, 5], [-1, 0, 2, 1, 1], [1, 1, 1, 1, 2]]], dtype=np.float32).repeat(
        2, axis=0
    )
    a[1] *= -1
    packed, piv, perm = _run(a, 32)
    exp_packed, exp_piv, exp_perm = ref.lu_small(mx.array(a))
    np.testing.assert_array_equal(piv, np.asarray(exp_piv))
    np.testing.assert_array_equal(perm, np.asarray(exp_perm))
    _assert_close(packed, np.asarray(exp_packed))
    assert piv[0, 0] == 0  # |1| = |-1| = |1|: row 0 is first


@needs_emulation
def test_emulated_lu_panel_reads_left_columns_in_place():
    """The panels as the first columns of a wider array (a recursive LU leaf): the same
    outputs bit for bit as the kernel on those columns copied out."""
    a = np.random.default_rng(5).standard_normal((2, 70, 40)).astype(np.float32)
    in_place = _run(a, 64, columns=16)
    copied = _run(np.ascontiguousarray(a[:, :, :16]), 64)
    for x, y in zip(in_place, copied, strict=True):
        np.testing.assert_array_equal(x, y)


def test_kernels_set_uses_the_panel_kernel():
    assert blocked_common.KERNELS.lu is blocked_panel.lu_panel_kernel
    assert blocked_common.REFERENCE.lu is blocked_panel.lu_panel


def test_panel_kernel_falls_back_where_it_does_not_apply():
    # float64, wider than PANEL_MAX_NB, empty: the MLX-op loop (no GPU needed).
    rng = np.random.default_rng(1)
    a = mx.array(rng.standard_normal((1, 20, 6)), dtype=mx.float64)
    packed, perm = blocked_panel.lu_panel_kernel(a)
    exp_packed, exp_perm = blocked_panel.lu_panel(a)
    np.testing.assert_array_equal(np.asarray(perm), np.asarray(exp_perm))
    np.testing.assert_array_equal(np.asarray(packed), np.asarray(exp_packed))
    for shape in [(0, 5, 3), (2, 4, 0)]:
        packed, perm = blocked_panel.lu_panel_kernel(mx.zeros(shape, dtype=mx.float32))
        assert packed.shape == shape
        np.testing.assert_array_equal(np.asarray(perm), np.tile(np.arange(shape[1]), (shape[0], 1)))


@needs_emulation
@pytest.mark.parametrize(
    "batch, m, n, r, first", [(1, 7, 5, 7, 0), (2, 40, 33, 25, 3), (3, 9, 64, 4, 64)]
)
def test_emulated_gather_rows_is_the_take_along_axis(batch, m, n, r, first):
    """The ``gather_rows`` kernel (emulated) gives MLX's gather bit for bit, rows repeated,
    in any order, from any first column (to the empty tail); NaN rows for indices outside
    [0, m)."""
    rng = np.random.default_rng(m + n)
    x = rng.standard_normal((batch, m, n)).astype(np.float32)
    rows = rng.integers(0, m, size=(batch, r)).astype(np.int32)
    width = n - first
    threads = 32

    def run(rows):
        (y,) = emulate.run(
            "gather_rows",
            [x, rows, np.zeros((first, 0), np.int32)],
            template={},
            grid=(batch * r * threads, 1, 1),
            threadgroup=(threads, 1, 1),
            output_shapes=[(batch, r, width)],
        )
        return y

    expected = np.asarray(blocked_panel.gather_rows(mx.array(x), mx.array(rows), first))
    np.testing.assert_array_equal(run(rows), expected)
    np.testing.assert_array_equal(expected, np.take_along_axis(x, rows[..., None], 1)[:, :, first:])
    if width:
        outside = rows.copy()
        outside[0, 0], outside[-1, -1] = -1, m
        y = run(outside)
        changed = outside != rows
        assert np.isnan(y[changed]).all()
        np.testing.assert_array_equal(y[~changed], expected[~changed])


def test_gather_rows_kernel_falls_back_where_it_does_not_apply():
    """float64 and an empty result: MLX's gather (no GPU needed)."""
    x = mx.array(np.arange(24.0).reshape(1, 6, 4), dtype=mx.float64)
    rows = mx.array([[5, 0, 0]], dtype=mx.int32)
    np.testing.assert_array_equal(
        np.asarray(blocked_panel.gather_rows_kernel(x, rows, 1)), np.asarray(x)[:, [5, 0, 0], 1:]
    )
    assert blocked_panel.gather_rows_kernel(x.astype(mx.float32), rows, 4).shape == (1, 3, 0)
    assert blocked_common.KERNELS.gather_rows is blocked_panel.gather_rows_kernel
    assert blocked_common.REFERENCE.gather_rows is blocked_panel.gather_rows


def test_panel_threads():
    assert blocked_panel.panel_threads(100) == 256
    assert blocked_panel.panel_threads(16384) == 1024
    assert [blocked_panel._width_class(w) for w in (1, 64, 65, 128, 200)] == [64, 64, 128, 128, 256]


def test_lu_panel_threads():
    """256 threads below 768 rows, 512 below 3072, 768 below 6144, then 1024 (H200)."""
    heights = (1, 767, 768, 3071, 3072, 6143, 6144, 16384)
    threads = [blocked_panel.lu_panel_threads(m) for m in heights]
    assert threads == [256, 256, 512, 512, 768, 768, 1024, 1024]


# --- the QR panel (metal/qr_panel.metal) -------------------------------------------------


def _qr_panels(m: int, nb: int, seed: int) -> np.ndarray:
    """Five (m, nb) panels: Gaussian, graded, a zero column, rows scaled by 2^±30 (squares
    of the small entries underflow unless the norm is scaled), NaN entries."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((5, m, nb))
    a[1] *= np.logspace(0, 6, nb)[None, :]
    a[2, :, nb // 2] = 0.0
    a[3] *= 2.0 ** rng.integers(-30, 30, (m, 1))
    a[4, m // 2, (nb - 1) // 2] = np.nan
    return a.astype(np.float32)


def _run_qr(a: np.ndarray, threads: int):
    return emulate.run("qr_panel", [a], **blocked_panel.panel_launch("qr_panel", a.shape, threads))


def _q_from_reflectors(packed: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Q (m, m) = H_0 H_1 ⋯ from a packed panel and tau, in float64."""
    m, nb = packed.shape
    q = np.eye(m)
    for j in reversed(range(min(m, nb))):
        v = np.zeros(m)
        v[j] = 1.0
        v[j + 1 :] = packed[j + 1 :, j]
        q -= tau[j] * np.outer(v, v @ q)
    return q


@needs_emulation
@pytest.mark.parametrize(
    "m, nb, threads",
    [(1, 1, 64), (7, 5, 64), (100, 1, 64), (100, 32, 96), (300, 5, 256), (300, 32, 256)],
)
def test_emulated_qr_panel_matches_reference(m, nb, threads):
    a = _qr_panels(m, nb, m * 1000 + nb + 7)
    packed, tau = _run_qr(a, threads)
    exp_packed, exp_tau = (np.asarray(x) for x in blocked_panel.qr_panel(mx.array(a)))
    # Entrywise against the MLX-op loop, except the row-scaled panel: after the reflectors
    # of its large rows, what is left of the small rows is rounding noise of the large ones
    # in both (the float64 loop differs as much), so only the backward checks below apply.
    same = [0, 1, 2, 4]
    _assert_close(packed[same], exp_packed[same])
    _assert_close(tau[same, None, :], exp_tau[same, None, :])

    # Q R = A and QᵀQ = I to DESIGN.md's QR threshold, the scaled rows included.
    k, u = min(m, nb), 2.0**-24
    for b in range(4):
        q = _q_from_reflectors(packed[b].astype(np.float64), tau[b].astype(np.float64))
        r = np.triu(packed[b].astype(np.float64))
        a64 = a[b].astype(np.float64)
        residual = np.linalg.norm(a64 - q[:, :k] @ r[:k]) / max(np.linalg.norm(a64), 1e-300)
        assert residual / (m * u) <= 30
        assert np.linalg.norm(np.eye(m) - q.T @ q) / (m * u) <= 30

    # A zero column gives an identity reflector; a NaN stays in its own panel.
    if m > nb // 2 + 1:
        assert tau[2, nb // 2] == 0.0
    assert np.isnan(packed[4]).any() and np.isfinite(packed[:4]).all()


def test_kernels_set_uses_the_qr_panel_kernel():
    assert blocked_common.KERNELS.qr is blocked_panel.qr_panel_kernel
    assert blocked_common.REFERENCE.qr is blocked_panel.qr_panel
    rng = np.random.default_rng(2)
    a = mx.array(rng.standard_normal((1, 20, 6)), dtype=mx.float64)  # falls back: no GPU
    for x, y in zip(blocked_panel.qr_panel_kernel(a), blocked_panel.qr_panel(a), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _emulated_lu_pivots(a: mx.array, columns: int):
    packed, piv, perm = _run(np.asarray(a), 64, columns)
    return mx.array(packed), mx.array(perm), mx.array(piv)


@needs_emulation
@pytest.mark.parametrize("m, n", [(100, 100), (130, 100)])
def test_getrf_takes_lapack_pivots_from_the_emulated_panels(m, n):
    """The blocked LU with the emulated kernel as its panel: LAPACK's pivots formed as panel
    start + the panel's pivots (dgetrf's rule) equal SciPy's and the replayed permutation's,
    and the factors equal those of the MLX-op panels to rounding."""
    import scipy.linalg

    from mlx_linalg._gpu import blocked_lu

    a = np.random.default_rng(m + n).standard_normal((2, m, n)).astype(np.float32)
    blocks = blocked_common.REFERENCE._replace(lu_pivots=_emulated_lu_pivots)
    # leaf=None: one kernel call per panel (the recursive panel's leaves are tested with
    # the emulated kernel in tests/test_blocked_lu_recursive.py)
    packed, perm, piv = blocked_lu.getrf_pivots(blocks, mx.array(a), block=64, leaf=None)
    assert piv is not None
    np.testing.assert_array_equal(
        np.asarray(piv), np.asarray(blocked_panel.pivots(perm, min(m, n)))
    )
    lapack = [scipy.linalg.lu_factor(x.astype(np.float64)) for x in a]
    np.testing.assert_array_equal(np.asarray(piv), np.stack([p for _, p in lapack]))
    np.testing.assert_allclose(np.asarray(packed), np.stack([f for f, _ in lapack]), atol=1e-4)
    (ref_packed, ref_piv), _ = blocked_lu.lu_factor(
        mx.array(a), blocks=blocked_common.REFERENCE, block=64, leaf=None
    )
    # The MLX-op panels: the same pivots, and (rows below min(m, n) reordered to LAPACK's
    # order by lu_factor) the same packed factors, to rounding.
    np.testing.assert_array_equal(np.asarray(piv), np.asarray(ref_piv))
    _assert_close(np.asarray(packed), np.asarray(ref_packed))
    np.testing.assert_allclose(np.asarray(ref_packed), np.stack([f for f, _ in lapack]), atol=1e-4)
    assert blocked_common.REFERENCE.lu_pivots is None
    assert blocked_common.KERNELS.lu_pivots is blocked_panel.lu_panel_kernel_pivots


@needs_emulation
def test_blocked_qr_with_the_emulated_panel_kernel():
    """The blocked QR with the emulated ``qr_panel`` kernel as its panel: the same Q and R
    as with the MLX-op panels, to rounding, and DESIGN.md's QR metric."""
    from mlx_linalg._gpu import blocked_qr

    def emulated_qr(a):
        packed, tau = _run_qr(np.asarray(a), 64)
        return mx.array(packed), mx.array(tau)

    m, n = 150, 100
    a = np.random.default_rng(5).standard_normal((1, m, n)).astype(np.float32)
    blocks = blocked_common.REFERENCE._replace(qr=emulated_qr)
    (q, r), _ = blocked_qr.qr(mx.array(a), mode="reduced", blocks=blocks, block=64, leaf=None)
    (q_ref, r_ref), _ = blocked_qr.qr(
        mx.array(a), mode="reduced", blocks=blocked_common.REFERENCE, block=64, leaf=None
    )
    _assert_close(np.asarray(q), np.asarray(q_ref))
    _assert_close(np.asarray(r), np.asarray(r_ref))
    q64, r64, u = np.asarray(q, np.float64)[0], np.asarray(r, np.float64)[0], 2.0**-24
    assert np.linalg.norm(a[0] - q64 @ r64) / (m * np.linalg.norm(a[0]) * u) <= 30
    assert np.linalg.norm(np.eye(n) - q64.T @ q64) / (m * u) <= 30


@needs_emulation
@pytest.mark.parametrize(
    "m, nb, threads",
    [(16, 16, 32), (40, 16, 64), (100, 13, 32), (300, 16, 64), (70, 8, 32), (33, 5, 32)],
)
def test_emulated_leaf_kernel_is_lu_panel_bit_for_bit(m, nb, threads):
    """The register-held leaf kernel gives the ``lu_panel`` kernel's outputs bit for bit
    (both emulated): one half of columns and two, one to eight rows a thread, on Gaussian,
    graded, zero-column and NaN panels, and on integer panels full of ties; read in place
    from a wider array."""
    panels = _panels(m, nb, 7 * m + nb)
    ties = np.random.default_rng(m).integers(-2, 3, size=(2, m, nb)).astype(np.float32)
    for a in (panels, ties):
        wide = np.concatenate([a, np.ones_like(a[:, :, :3])], axis=2)
        leaf = _run(wide, threads, columns=nb, kernel="lu_leaf_registers")
        panel = _run(a, 64)
        for x, y in zip(leaf, panel, strict=True):
            np.testing.assert_array_equal(x, y)


def test_leaf_launch_rule():
    """Rows per thread a power of two up to 8; None past LEAF_MAX_NB columns, for a panel
    shorter than it is wide, or taller than LEAF_MAX_ROWS."""
    rows = {m: blocked_panel.leaf_launch((1, m, 16))["template"]["R"] for m in (16, 512, 513, 4096)}
    assert rows == {16: 1, 512: 1, 513: 2, 4096: 8}
    assert blocked_panel.leaf_launch((1, 16, 16))["threadgroup"] == (32, 1, 1)
    assert blocked_panel.leaf_launch((3, 4096, 16))["grid"] == (3 * 512, 1, 1)
    assert blocked_panel.leaf_launch((1, 100, 13), 32)["template"]["R"] == 4
    assert blocked_panel.leaf_launch((1, 4097, 16)) is None
    assert blocked_panel.leaf_launch((1, 4096, 17)) is None
    assert blocked_panel.leaf_launch((1, 8, 16)) is None


@pytest.mark.parametrize(
    ("backend", "kernel"), [("cuda", "lu_leaf_registers"), ("metal", "lu_panel")]
)
def test_leaf_kernel_on_cuda_alone(monkeypatch, backend, kernel):
    """A 16-column leaf goes to the register-held kernel on CUDA, where it was measured, and
    to ``lu_panel`` on Metal (its 512-thread pipeline unchecked there)."""
    launched = []

    def launch(name, inputs, *, output_shapes, **_):
        launched.append(name)
        return [mx.zeros(shape) for shape in output_shapes]

    monkeypatch.setattr(blocked_panel._kernels, "backend", lambda: backend)
    monkeypatch.setattr(blocked_panel._kernels, "launch", launch)
    blocked_panel.lu_panel_kernel_pivots(mx.zeros((1, 64, 32)), 16)
    assert launched == [kernel]
