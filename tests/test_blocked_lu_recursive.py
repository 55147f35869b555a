"""The recursive panel factorization of the blocked LU (``blocked_lu.panel_lu``, Toledo 1997 /
LAPACK dgetrf2) on the CPU.

Leaves run on three building blocks: ``REFERENCE`` (the MLX-op getf2 loop, whose non-pivot
rows keep their original order, so the pivots are replayed from the permutation),
``GETF2`` (``REFERENCE`` with the row-swapping ``reference.lu_small`` as ``lu_pivots``: the
``lu_panel`` kernel's contract, getf2's row order and own pivots, so LAPACK's pivots are
formed from the leaves' as dgetrf2 does) and, where g++ can emulate it, the ``lu_panel``
kernel body itself. Float64 pivots must equal SciPy's ``lu_factor`` exactly on Gaussian
matrices, float32 results meet DESIGN.md's ratios; panels tall and square, widths that are
not multiples of the leaf, zero and NaN columns, batches, the failure policy and
``mx.compile`` (no host synchronization).
"""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from kernel_emulation import emulate, needs_emulation
from matrices import (
    INV_RATIO,
    LU_RATIO,
    SOLVE_RATIO,
    as64,
    as_mlx,
    norm,
    random_moves,
    ratio,
    unit_roundoff,
)

from mlx_linalg._gpu import blocked_lu, blocked_panel
from mlx_linalg._gpu import reference as ref
from mlx_linalg._gpu.blocked_common import REFERENCE


def _getf2_pivots(a: mx.array, columns: int):
    packed, piv, perm = ref.lu_small(a[:, :, :columns])
    return packed, perm, piv


GETF2 = REFERENCE._replace(lu_pivots=_getf2_pivots)
SETS = {"reference": REFERENCE, "getf2": GETF2}
# Our float32 ratio may exceed float32 LAPACK's on the same input by this factor at most
# (ratios below FLOOR count as FLOOR), as in tests/test_blocked.py.
VS_LAPACK = 10
FLOOR = 0.1


def _scipy_lu(a: np.ndarray):
    """SciPy's (packed, pivots) of each matrix of a (B, m, n) float64 stack."""
    out = [scipy.linalg.lu_factor(x) for x in a]
    return np.stack([f for f, _ in out]), np.stack([p for _, p in out])


def _factors(packed: np.ndarray, w: int):
    """Unit-lower L (m, w) and upper U (w, w) of a packed tall panel."""
    lower = np.tril(packed, -1) + np.eye(*packed.shape[-2:])
    return lower, np.triu(packed[..., :w, :])


@pytest.mark.parametrize("blocks", ["reference", "getf2"])
@pytest.mark.parametrize("m, w, leaf", [(100, 40, 16), (64, 64, 16), (300, 37, 8), (50, 50, 7)])
def test_panel_matches_lapack(rng, blocks, m, w, leaf):
    """A tall or square panel, its width not a multiple of the leaf: LAPACK's pivots (replayed
    from the permutation for REFERENCE, formed from the leaves' for GETF2) and factors."""
    a = rng.standard_normal((2, m, w))
    packed, perm, piv = blocked_lu.panel_lu(SETS[blocks], as_mlx(a, mx.float64), leaf=leaf)
    assert packed.shape == (2, m, w) and perm.shape == (2, m) and perm.dtype == mx.int32
    lapack_lu, lapack_piv = _scipy_lu(a)
    packed, perm = as64(packed), np.asarray(perm)
    lower, upper = _factors(packed, w)
    for i in range(2):
        np.testing.assert_array_equal(np.sort(perm[i]), np.arange(m))
        np.testing.assert_allclose(lower[i] @ upper[i], a[i][perm[i]], atol=1e-12)
    assert np.all(np.abs(lower) <= 1)
    replayed = np.asarray(blocked_panel.pivots(mx.array(perm), w))
    np.testing.assert_array_equal(replayed, lapack_piv)
    if blocks == "getf2":  # getf2's row order: the packed panel is LAPACK's, pivots formed
        np.testing.assert_array_equal(np.asarray(piv), lapack_piv)
        np.testing.assert_allclose(packed, lapack_lu, rtol=1e-10, atol=1e-12)
    else:
        assert piv is None
        np.testing.assert_allclose(packed[:, :w], lapack_lu[:, :w], rtol=1e-10, atol=1e-12)


def test_leaves_are_full_width_but_the_last(rng):
    """Every building-block call gets at most ``leaf`` columns, all but the last exactly
    ``leaf`` of them (w1 = half the leaves), and no call for a panel within the leaf."""
    widths = []

    def counting(a, columns):
        widths.append(columns)
        return _getf2_pivots(a, columns)

    blocks = REFERENCE._replace(lu_pivots=counting)
    a = as_mlx(rng.standard_normal((1, 120, 100)), mx.float64)
    blocked_lu.panel_lu(blocks, a, leaf=16)
    assert widths == [16] * 6 + [4]
    widths.clear()
    blocked_lu.panel_lu(blocks, a, leaf=None)
    blocked_lu.panel_lu(blocks, a, leaf=100)
    assert widths == [100, 100]


@pytest.mark.parametrize("blocks", ["reference", "getf2"])
@pytest.mark.parametrize(
    "shape, block, leaf",
    [((200, 200), 64, 16), ((200, 200), 128, 32), ((150, 70), 100, 7), ((70, 150), 256, 16)],
)
def test_lu_factor_pivots_equal_scipy(rng, blocks, shape, block, leaf):
    a = rng.standard_normal((2, *shape))
    (packed, piv), _ = blocked_lu.lu_factor(
        as_mlx(a, mx.float64), blocks=SETS[blocks], block=block, leaf=leaf
    )
    lapack_lu, lapack_piv = _scipy_lu(a)
    np.testing.assert_array_equal(np.asarray(piv), lapack_piv)
    np.testing.assert_allclose(as64(packed), lapack_lu, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("leaf", [None, 8, 16])
@pytest.mark.parametrize("shape", [(200, 200), (150, 70), (70, 150)])
def test_float32_ratios(rng, shape, leaf):
    """DESIGN.md's LU ratio, and at most VS_LAPACK times float32 LAPACK's on the input."""
    m, n = shape
    a = as_mlx(rng.standard_normal((2, m, n)), mx.float32)
    (p, lower, upper), _ = blocked_lu.lu(a, blocks=GETF2, block=96, leaf=leaf)
    a_in, u = as64(a), unit_roundoff(mx.float32)
    lu_ratio = ratio(as64(p) @ as64(lower) @ as64(upper) - a_in, max(m, n) * norm(a_in), u)
    assert lu_ratio <= LU_RATIO
    assert np.all(np.abs(as64(lower)) <= 1)
    lapack = 0.0
    for one in np.asarray(a):
        pl, ll, ul = scipy.linalg.lu(one)
        residual = pl.astype(np.float64) @ ll.astype(np.float64) @ ul.astype(np.float64) - one
        lapack = max(lapack, ratio(residual, max(m, n) * norm(one), u))
    assert lu_ratio <= VS_LAPACK * max(lapack, FLOOR)


@pytest.mark.parametrize("blocks", ["reference", "getf2"])
def test_solve_inv_det_float32(rng, blocks):
    n = 150
    q1, _ = np.linalg.qr(rng.standard_normal((2, n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((2, n, n)))
    a = (q1 * np.logspace(0, -5, n)) @ q2  # κ = 1e5
    b = rng.standard_normal((2, n, 3))
    am, bm = as_mlx(a, mx.float32), as_mlx(b, mx.float32)
    kw = {"blocks": SETS[blocks], "block": 64, "leaf": 16}
    (x,), failed = blocked_lu.solve(am, bm, **kw)
    assert not np.any(np.asarray(failed))
    a_in, xs, u = as64(am), as64(x), unit_roundoff(mx.float32)
    assert ratio(as64(bm) - a_in @ xs, norm(a_in) * norm(xs), u) <= SOLVE_RATIO
    (ai,), failed = blocked_lu.inv(am, **kw)
    assert not np.any(np.asarray(failed))
    residual = np.eye(n) - as64(ai) @ a_in
    assert ratio(residual, n * norm(a_in) * norm(as64(ai)), u) <= INV_RATIO
    c = rng.standard_normal((2, n, n)) / (2 * np.sqrt(n)) + np.eye(n)  # |det| ~ 1
    c[1, :, [0, 1]] = c[1, :, [1, 0]]
    cm = as_mlx(c, mx.float32)
    sign, logabs = np.linalg.slogdet(as64(cm))
    (s, la), _ = blocked_lu.slogdet(cm, **kw)
    np.testing.assert_array_equal(np.asarray(s), sign)
    np.testing.assert_allclose(as64(la), logabs, rtol=0, atol=10 * n * u * 5)
    (d,), _ = blocked_lu.det(cm, **kw)
    np.testing.assert_allclose(as64(d), sign * np.exp(logabs), rtol=10 * n * u * 5)


@pytest.mark.parametrize("blocks", ["reference", "getf2"])
def test_zero_and_nan_columns_stay_in_their_matrix(rng, blocks):
    """A zero column inside a leaf, a zero column at a leaf's first column, NaN entries: the
    zero pivot is kept by lu_factor and fails solve; NaN stays in its own matrix."""
    n = 100
    a = rng.standard_normal((5, n, n)) / np.sqrt(n)
    a[1, :, 21] = 0.0  # inside the second leaf of the first panel
    a[2, :, 48] = 0.0  # the first column of a leaf (leaf 16: 48 = 3·16)
    a[3, 5, 7] = np.nan
    a[3, :, 70] = np.nan
    b = rng.standard_normal((5, n, 2))
    am, bm = as_mlx(a, mx.float32), as_mlx(b, mx.float32)
    kw = {"blocks": SETS[blocks], "block": 64, "leaf": 16}
    (x,), failed = blocked_lu.solve(am, bm, **kw)
    np.testing.assert_array_equal(np.asarray(failed), [False, True, True, False, False])
    xs = as64(x)
    assert np.all(np.isnan(xs[[1, 2, 3]])) and np.all(np.isfinite(xs[[0, 4]]))
    good = as64(am)[[0, 4]]
    u = unit_roundoff(mx.float32)
    assert ratio(as64(bm)[[0, 4]] - good @ xs[[0, 4]], norm(good) * norm(xs[[0, 4]]), u) <= 30
    (packed, piv), _ = blocked_lu.lu_factor(am, **kw)
    packed, piv = as64(packed), np.asarray(piv)
    for i in (1, 2):  # getrf completes and keeps the zero pivot
        assert np.all(np.isfinite(packed[i])) and np.any(np.diagonal(packed[i]) == 0)
    assert np.all(np.isfinite(packed[[0, 4]])) and np.all((piv >= 0) & (piv < n))
    for i in range(5):
        assert len(set(blocked_panel.permutation(mx.array(piv[i : i + 1]), n).tolist()[0])) == n
    (d,), _ = blocked_lu.det(am, **kw)
    d = as64(d)
    assert d[1] == 0 and d[2] == 0 and np.isnan(d[3]) and np.all(np.isfinite(d[[0, 4]]))


def test_batch_axes(rng):
    n = 45
    a = rng.standard_normal((2, 3, n, n))
    (packed, piv), _ = blocked_lu.lu_factor(as_mlx(a, mx.float64), blocks=GETF2, block=24, leaf=5)
    assert packed.shape == (2, 3, n, n) and piv.shape == (2, 3, n)
    lapack_lu, lapack_piv = _scipy_lu(a.reshape(-1, n, n))
    np.testing.assert_array_equal(np.asarray(piv).reshape(-1, n), lapack_piv)
    np.testing.assert_allclose(as64(packed).reshape(-1, n, n), lapack_lu, rtol=1e-10, atol=1e-12)


def test_traces_in_compile(rng):
    """The recursive graph is lazy: mx.compile traces it (and refuses a host sync)."""
    n = 40
    a = as_mlx(rng.standard_normal((2, n, n)), mx.float32)
    b = as_mlx(rng.standard_normal((2, n, 2)), mx.float32)

    def synchronizing(x):
        return x * float(mx.sum(x).item())

    with pytest.raises(ValueError):
        mx.compile(synchronizing)(a)

    def factor_and_solve(a, b):
        (packed, piv), _ = blocked_lu.lu_factor(a, blocks=GETF2, block=32, leaf=8)
        (x,), failed = blocked_lu.lu_solve(packed, piv, b, trans=0, blocks=REFERENCE)
        return x, failed, piv

    x, failed, piv = mx.compile(factor_and_solve)(a, b)
    assert not np.any(np.asarray(failed))
    np.testing.assert_allclose(as64(x), np.linalg.solve(as64(a), as64(b)), rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(piv), _scipy_lu(as64(a))[1])


def test_same_pivots_with_and_without_recursion(rng):
    """leaf=None is the previous path (one building-block call per panel): same pivots."""
    a = as_mlx(rng.standard_normal((2, 130, 130)), mx.float64)
    results = [blocked_lu.lu_factor(a, blocks=GETF2, block=64, leaf=leaf)[0] for leaf in (None, 16)]
    np.testing.assert_array_equal(np.asarray(results[0][1]), np.asarray(results[1][1]))
    np.testing.assert_allclose(as64(results[0][0]), as64(results[1][0]), atol=1e-11)


def _emulated_lu_pivots(a: mx.array, columns: int):
    """The kernel, emulated, reading the panel in place from ``a`` as on the GPU."""
    launch = blocked_panel.panel_launch("lu_panel", (*a.shape[:2], columns), 64)
    inputs = [np.asarray(x) for x in blocked_panel.lu_panel_inputs(a, columns)]
    packed, piv, perm, _ = emulate.run("lu_panel", inputs, **launch)
    return mx.array(packed), mx.array(perm), mx.array(piv)


@needs_emulation
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_emulated_kernel_leaves():
    """The ``lu_panel`` kernel body (emulated) as the leaves: LAPACK's pivots and factors."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((2, 90, 70)).astype(np.float32)
    a[1, :, 40] = 0.0  # a zero column in the second leaf
    blocks = REFERENCE._replace(lu_pivots=_emulated_lu_pivots)
    (packed, piv), _ = blocked_lu.lu_factor(mx.array(a), blocks=blocks, block=64, leaf=32)
    lapack_lu, lapack_piv = _scipy_lu(a.astype(np.float64))
    np.testing.assert_array_equal(np.asarray(piv), lapack_piv)
    np.testing.assert_allclose(np.asarray(packed), lapack_lu, rtol=1e-4, atol=1e-4)


def _with_join(join):
    """``GETF2`` with an ``lu_join`` building block."""
    return GETF2._replace(lu_join=join)


def test_join_building_block_is_used(rng):
    """``blocks.lu_join`` replaces the MLX-op join at every internal node (leaves - 1 of them);
    one that returns None leaves it to the MLX ops."""
    calls = []

    def counting_join(*args):
        calls.append([x.shape for x in args])
        return blocked_lu.join(*args) if len(calls) % 2 else None

    a = as_mlx(rng.standard_normal((2, 90, 70)), mx.float64)
    (packed, piv), _ = blocked_lu.lu_factor(a, blocks=_with_join(counting_join), block=64, leaf=16)
    assert len(calls) == 3  # the 64-wide panel: 4 leaves; the 6-wide one: 1
    assert calls[0] == [(2, 90, 16), (2, 16, 16), (2, 74, 16), (2, 90), (2, 74)]
    lapack_lu, lapack_piv = _scipy_lu(as64(a))
    np.testing.assert_array_equal(np.asarray(piv), lapack_piv)
    np.testing.assert_allclose(as64(packed), lapack_lu, rtol=1e-10, atol=1e-12)


@needs_emulation
def test_emulated_join_kernel(rng):
    """The ``lu_join`` kernel body (emulated) equals the MLX-op join bit for bit, and as the
    join of the recursive panel gives LAPACK's pivots and factors."""

    def emulated_join(p1, u12, p2, perm1, perm2):
        batch, m, w1 = p1.shape
        w = w1 + u12.shape[-1]
        total = -(-batch * m * w // 64) * 64
        out = emulate.run(
            "lu_join",
            [np.asarray(x) for x in (p1, u12, p2, perm1, perm2)],
            template={},
            grid=(total, 1, 1),
            threadgroup=(64, 1, 1),
            output_shapes=[(batch, m, w), (batch, m)],
        )
        return tuple(mx.array(x) for x in out)

    m, w1, w2 = 37, 16, 12
    args = (
        as_mlx(rng.standard_normal((3, m, w1)), mx.float32),
        as_mlx(rng.standard_normal((3, w1, w2)), mx.float32),
        as_mlx(rng.standard_normal((3, m - w1, w2)), mx.float32),
        mx.array(np.stack([rng.permutation(m) for _ in range(3)]).astype(np.int32)),
        mx.array(np.stack([rng.permutation(m - w1) for _ in range(3)]).astype(np.int32)),
    )
    for x, y in zip(emulated_join(*args), blocked_lu.join(*args), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    a = rng.standard_normal((1, 60, 48))
    (packed, piv), _ = blocked_lu.lu_factor(
        as_mlx(a, mx.float32), blocks=_with_join(emulated_join), block=48, leaf=16
    )
    lapack_lu, lapack_piv = _scipy_lu(a.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(np.asarray(piv), lapack_piv)
    np.testing.assert_allclose(np.asarray(packed), lapack_lu, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("n", "block"), [(300, 128), (520, 64), (1030, 128)])
@pytest.mark.parametrize(("lower", "trans"), [(True, False), (False, False), (False, True)])
def test_getrs_slabs_give_the_whole_split_bits(rng, n, block, lower, trans):
    """getrs splits the packed LU a slab of block columns at a time (``trsm``'s ``slabs``,
    issue #7's memory): with split products (as on a TF32 device) the substitutions give
    the bits of the whole matrix split once, whatever the steps per slab (1, 3, 3 with a
    shorter last slab) and direction."""
    from mlx_linalg import _precision
    from mlx_linalg._gpu import blocked_triangular

    a = as_mlx(rng.standard_normal((1, n, n)) / n**0.5 + 4 * np.eye(n), mx.float32)
    b = as_mlx(rng.standard_normal((1, n, 5)), mx.float32)
    saved = _precision.reduced_precision
    _precision.reduced_precision = lambda *_, **__: True
    try:
        assert blocked_triangular.split_parts(a) is not None
        solves = [
            blocked_triangular.trsm(
                REFERENCE, a, b, lower=lower, trans=trans, unit=lower, block=block, slabs=slabs
            )
            for slabs in (False, True)
        ]
        mx.eval(solves)
    finally:
        _precision.reduced_precision = saved
    assert np.array_equal(np.array(solves[0]), np.array(solves[1]))
    assert np.all(np.isfinite(np.array(solves[1])))


def test_default_block_follows_the_order(rng, monkeypatch):
    """``block=None`` (every caller's default) is BLOCK below LARGE_FROM columns and
    LARGE_BLOCK from it on, in the factorization and in the substitutions: the same bits
    as the explicit block. (LARGE_FROM lowered to 80 so both sides fit a test.)"""
    monkeypatch.setattr(blocked_lu, "LARGE_FROM", 80)
    monkeypatch.setattr(blocked_lu, "BLOCK", 16)
    monkeypatch.setattr(blocked_lu, "LARGE_BLOCK", 48)
    assert [blocked_lu.default_block(n) for n in (79, 80, 200)] == [16, 48, 48]
    for n, block in ((70, 16), (100, 48)):
        a = as_mlx(rng.standard_normal((1, n, n)), mx.float64)
        b = as_mlx(rng.standard_normal((1, n, 3)), mx.float64)
        for explicit in (block, 64):
            default = blocked_lu.solve(a, b, blocks=GETF2)[0][0]
            chosen = blocked_lu.solve(a, b, blocks=GETF2, block=explicit)[0][0]
            same = np.array_equal(np.asarray(default), np.asarray(chosen))
            assert same == (explicit == block)


def _assembled_by_replay(stored: np.ndarray, moves: np.ndarray, block: int):
    """``assemble``'s result the long way: dgetrf's dlaswp on the left columns after every
    step (each step's permutation applied to the rows below its start of every earlier
    block column) and the permutation composed step by step."""
    steps, batch, m = moves.shape
    packed, perm = stored.copy(), np.tile(np.arange(m), (batch, 1))
    for s in range(steps):
        start = s * block
        for b in range(batch):
            order = start + moves[s, b, : m - start]
            perm[b, start:] = perm[b, order]
            # Step s stored its own block column in its order already; the earlier ones
            # move with its rows.
            packed[b, start:, :start] = packed[b, order, :start]
    return packed, perm


@pytest.mark.parametrize("m, n, block", [(50, 50, 16), (70, 40, 16), (40, 70, 16), (16, 16, 16)])
def test_assemble_applies_the_later_interchanges(rng, m, n, block):
    """``assemble`` (the MLX ops) moves each block column's rows as every later step's
    interchange moves them, and composes the whole permutation: against a replay of the
    steps one by one, on random permutations and entries (square, tall, wide, one step)."""
    batch, k = 2, min(m, n)
    stored = rng.standard_normal((batch, m, n)).astype(np.float32)
    moves = random_moves(rng, batch, m, k, block)
    packed, perm = blocked_lu.assemble(mx.array(stored), mx.array(moves), block)
    want_packed, want_perm = _assembled_by_replay(stored, moves, block)
    np.testing.assert_array_equal(np.asarray(perm), want_perm)
    np.testing.assert_array_equal(np.asarray(packed), want_packed)


def _emulated_assemble(stored, moves, block):
    inputs = [np.asarray(x) for x in blocked_panel.lu_assemble_inputs(stored, moves, block)]
    launch = blocked_panel.assemble_launch(stored.shape, threads=64)
    return tuple(mx.array(x) for x in emulate.run("lu_assemble", inputs, **launch))


@needs_emulation
@pytest.mark.parametrize("m, n, block", [(50, 50, 16), (70, 40, 16), (40, 70, 16), (33, 33, 32)])
def test_emulated_assemble_kernel(rng, m, n, block):
    """The ``lu_assemble`` kernel body (emulated) equals the MLX-op ``assemble`` bit for bit
    (square, tall, wide; a last step of one column), and as the blocked LU's last step gives
    LAPACK's pivots and factors; moves that are not a permutation give rows of NaN and a
    perm of -1, not rows of another matrix."""
    batch, k = 3, min(m, n)
    stored = mx.array(rng.standard_normal((batch, m, n)).astype(np.float32))
    moves = mx.array(random_moves(rng, batch, m, k, block))
    for x, y in zip(
        _emulated_assemble(stored, moves, block),
        blocked_lu.assemble(stored, moves, block),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    a = rng.standard_normal((2, m, n))
    blocks = GETF2._replace(lu_assemble=_emulated_assemble)
    (packed, piv), _ = blocked_lu.lu_factor(as_mlx(a, mx.float32), blocks=blocks, block=block)
    lapack_lu, lapack_piv = _scipy_lu(a.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(np.asarray(piv), lapack_piv)
    np.testing.assert_allclose(np.asarray(packed), lapack_lu, rtol=1e-4, atol=1e-4)

    broken = np.array(moves)
    broken[-1, 1, 0] = m  # a row past the end, in the last step of matrix 1
    packed, perm = _emulated_assemble(stored, mx.array(broken), block)
    moved = np.asarray(perm)[1] == -1
    assert moved.sum() == 1 and np.isnan(np.asarray(packed)[1][moved]).all()
    assert np.isfinite(np.asarray(packed)[[0, 2]]).all()
