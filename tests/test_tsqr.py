"""The TSQR panel with Householder reconstruction (``mlx_linalg._gpu.tsqr``, issue #7), on the
CPU with the MLX-op references of its kernels (``tsqr.REFERENCE_OPS``; the kernel bodies
themselves run under tools/metal_check/emulate.py where g++ can build the emulation).

The panel gives geqr2's reflectors (the existing panel's packed, tau, V and T) to rounding;
rank-deficient and zero panels give valid reflectors; the blocked QR with
``panel="tsqr"`` matches SciPy (float64: LAPACK's Q and R; float32: DESIGN.md's QR metric
and at most 10 times float32 LAPACK's) for square, tall, wide, batched, graded (κ up to
1e7) and rank-deficient matrices, keeps NaN/Inf in their own matrix, and stays
float32-accurate when the products are TF32 (emulated).
"""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from kernel_emulation import emulate, needs_emulation
from matrices import (
    QR_RATIO,
    as64,
    as_mlx,
    emulate_tf32,
    graded_stack,
    norm,
    qr_ratio,
    tf32_matmul,
    unit_roundoff,
)

from mlx_linalg._gpu import blocked_qr, small_spectral, tsqr
from mlx_linalg._gpu.blocked_common import REFERENCE

# Our float32 ratio may exceed float32 LAPACK's on the same input by this factor at most
# (ratios below FLOOR count as FLOOR), as tests/test_blocked.py.
VS_LAPACK = 10
FLOOR = 0.1
# Panel agreement with geqr2 (blocked_qr.panel), relative to the largest entry compared.
AGREE = {mx.float64: 1e-12, mx.float32: 1e-5}


def _lapack_ratio(a32: np.ndarray) -> float:
    u = unit_roundoff(np.float32)
    worst = 0.0
    for one in a32.reshape(-1, *a32.shape[-2:]):
        lq, lr = scipy.linalg.qr(one, mode="economic")
        worst = max(worst, qr_ratio(one.astype(np.float64), lq, lr, u))
    return worst


def _close(ours: np.ndarray, expected: np.ndarray, rel: float) -> None:
    scale = max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=rel * scale)


# --- the leaf layout -----------------------------------------------------------------------


@pytest.mark.parametrize("b", [1, 8, 32, 63])
def test_leaf_shape_keeps_padding_below_real_rows(b):
    for r in [*range(b, 2 * tsqr.LEAF_ROWS + 3), 4095, 4096, 8100, 16257, 16383]:
        leaves, h = tsqr.leaf_shape(r, b)
        assert b <= h <= tsqr.max_rows(b) and h <= tsqr.LEAF_ROWS
        assert (leaves - 1) * h < r <= leaves * h
        last = r - (leaves - 1) * h
        assert last == h or last >= b  # padding only under b real rows of the last leaf


def test_applies_to_widths_whose_r_factors_stack():
    assert tsqr.applies(32) and tsqr.applies(63)
    assert not tsqr.applies(64)  # two 64 x 64 R factors exceed the kernel's 32 KB
    assert tsqr.max_rows(32) == small_spectral.QR_MAX_ROWS


# --- the panel against geqr2 ---------------------------------------------------------------

PANELS = [
    (32, 32, 1),  # square: one leaf, the last reflector the identity
    (100, 32, 2),  # one leaf
    (129, 32, 1),  # two leaves of 65, one padded row
    (700, 32, 2),  # six leaves: a tree of 6 -> 2 -> 1 (the last group padded)
    (1000, 20, 1),  # eight leaves: 8 -> 2 -> 1 (six R factors per node)
    (300, 63, 1),  # the widest panel TSQR takes
    (40, 7, 3),
    (5000, 8, 1),  # three levels above the leaves
]


@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
@pytest.mark.parametrize(("r", "b", "batch"), PANELS)
def test_panel_equals_geqr2(rng, dtype, r, b, batch):
    a = as_mlx(rng.standard_normal((batch, r, b)), dtype)
    ours = tsqr.panel(REFERENCE, a)
    expected = blocked_qr.panel(REFERENCE, a, leaf=None)
    rel = AGREE[dtype]
    packed, ref_packed = as64(ours.packed), as64(expected.packed)
    upper = np.triu(np.ones((r, b), dtype=bool))
    _close(np.where(upper, packed, 0), np.where(upper, ref_packed, 0), rel * np.sqrt(r))
    _close(np.where(upper, 0, packed), np.where(upper, 0, ref_packed), rel)
    _close(as64(ours.tau), as64(expected.tau), rel)
    _close(as64(ours.v), as64(expected.v), rel)
    _close(as64(ours.t), as64(expected.t), rel)
    assert [t.shape for t in ours.taus] == [(batch, b)]
    # V unit lower trapezoidal with the packed tails; T upper triangular.
    v, t = as64(ours.v), as64(ours.t)
    np.testing.assert_array_equal(np.triu(v[:, :b]), np.broadcast_to(np.eye(b), (batch, b, b)))
    np.testing.assert_array_equal(np.tril(v, -1), np.tril(packed, -1))
    np.testing.assert_array_equal(np.tril(t, -1), 0.0)


def test_wide_panels_take_the_existing_panel(rng):
    a = as_mlx(rng.standard_normal((1, 150, 64)), mx.float32)
    ours = tsqr.panel(REFERENCE, a)
    expected = blocked_qr.panel(REFERENCE, a, leaf=None)
    np.testing.assert_array_equal(np.asarray(ours.packed), np.asarray(expected.packed))
    np.testing.assert_array_equal(np.asarray(ours.t), np.asarray(expected.t))


def _check_reflectors(a: np.ndarray, factored, u: float) -> None:
    """I - V T Vᵀ is orthogonal and its first b columns times R give A, for each matrix."""
    packed, v, t = as64(factored.packed), as64(factored.v), as64(factored.t)
    tau = as64(factored.tau)
    r, b = a.shape[-2:]
    assert np.all(np.isfinite(packed)) and np.all(np.isfinite(t))
    assert np.all((tau == 0) | ((tau >= 1 - 10 * u) & (tau <= 2 + 10 * u)))
    for one in range(a.shape[0]):
        h = np.eye(r) - v[one] @ t[one] @ v[one].T
        assert norm(np.eye(r) - h.T @ h) <= 30 * r * u
        rh = np.triu(packed[one, :b])
        scale = max(norm(a[one]), 1e-300)
        assert norm(a[one] - h[:, :b] @ rh) <= 30 * r * u * scale + 1e-300


@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
def test_rank_deficient_panels_give_valid_reflectors(rng, dtype):
    r, b = 300, 32
    full = rng.standard_normal((1, r, b))
    zero_columns = full.copy()
    zero_columns[:, :, [0, 5, 6, 31]] = 0.0
    repeated = full.copy()
    repeated[:, :, 10:20] = repeated[:, :, :10]
    low_rank = rng.standard_normal((1, r, 3)) @ rng.standard_normal((1, 3, b))
    zero = np.zeros((1, r, b))
    a = np.concatenate([zero_columns, repeated, low_rank, zero])
    am = as_mlx(a, dtype)
    factored = tsqr.panel(REFERENCE, am)
    _check_reflectors(as64(am), factored, unit_roundoff(dtype))
    packed = as64(factored.packed)
    np.testing.assert_array_equal(packed[3, :b], np.tril(packed[3, :b], -1))  # R = 0
    # Past a zero or dependent column the QR is not unique (that column's reflector is
    # any unit vector), so only the valid factorization is checked, not geqr2's.


def test_building_blocks_are_one_call_per_tree_level(rng):
    """One batched QR per level of the tree (all leaves of all matrices at once), one
    reconstruction and five products per panel: r = 4000 rows of 32 columns are 32 leaves
    of 128 rows (the last 32 real rows and 96 zero rows, read as such from the unpadded
    panel), a tree of 32, 8, 2 and 1 nodes (each level the R factors below one another);
    down the tree, the products of the 2 and the 8 nodes' Q with their factors, then Q₁,
    C U⁻¹ and V (below its top block)."""
    calls = []

    def qr(a, height):
        calls.append(("qr", a.shape, height))
        return tsqr.REFERENCE_OPS.qr(a, height)

    def reconstruct(q1, r, square):
        calls.append(("reconstruct", q1.shape))
        return tsqr.REFERENCE_OPS.reconstruct(q1, r, square)

    def product(a, bm, top, *, trans, batch, rows):
        out = tsqr.REFERENCE_OPS.product(a, bm, top, trans=trans, batch=batch, rows=rows)
        calls.append(("product", a.shape, top is not None, out.shape))
        return out

    a = as_mlx(rng.standard_normal((2, 4000, 32)), mx.float32)
    factored = tsqr.panel(REFERENCE, a, ops=tsqr.Ops(qr, reconstruct, product))
    assert calls == [
        ("qr", (2, 4000, 32), 128),
        ("qr", (2, 1024, 32), 128),
        ("qr", (2, 256, 32), 128),
        ("qr", (2, 64, 32), 64),
        ("product", (4, 32, 128), False, (1, 512, 32)),
        ("product", (16, 32, 128), False, (1, 2048, 32)),
        ("product", (64, 32, 128), False, (2, 32, 32)),
        ("reconstruct", (2, 32, 32)),
        ("product", (2, 1024, 32), False, (1, 2048, 32)),
        ("product", (64, 32, 128), True, (2, 4000, 32)),
    ]
    assert factored.v.shape == (2, 4000, 32)


def test_product_reference_contract(rng):
    """``tsqr_product``'s contract: products laid end to end per matrix, sliced, topped."""
    a = rng.standard_normal((6, 5, 4))  # G = 6, K = 5, MA = 4 (transposed storage)
    bm = rng.standard_normal((6, 5, 3))
    top = rng.standard_normal((2, 2, 3))
    out = tsqr.product_reference(
        as_mlx(a, mx.float64),
        as_mlx(bm, mx.float64),
        as_mlx(top, mx.float64),
        trans=True,
        batch=2,
        rows=10,
    )
    products = np.swapaxes(a, -1, -2) @ bm  # (6, 4, 3)
    expected = products.reshape(2, 12, 3)[:, :10].copy()
    expected[:, :2] = top
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-12, atol=1e-12)
    plain = tsqr.product_reference(
        as_mlx(np.swapaxes(a, -1, -2), mx.float64),
        as_mlx(bm, mx.float64),
        None,
        trans=False,
        batch=1,
        rows=24,
    )
    np.testing.assert_allclose(np.asarray(plain), products.reshape(1, 24, 3), rtol=1e-12)


# --- the blocked QR with the TSQR panel ----------------------------------------------------

SHAPES = [(65, 65), (200, 70), (70, 200), (300, 300), (600, 130)]


@pytest.mark.parametrize(
    ("shape", "mode"), [(s, "reduced") for s in SHAPES] + [((200, 70), "complete")]
)
def test_float64_equals_lapack(rng, shape, mode):
    m, n = shape
    a = rng.standard_normal((2, m, n))
    (q, r), failed = blocked_qr.qr(as_mlx(a, mx.float64), mode=mode, blocks=REFERENCE, panel="tsqr")
    k = min(m, n) if mode == "reduced" else m
    assert q.shape == (2, m, k) and r.shape == (2, k, n)
    assert not np.any(np.asarray(failed))
    qs, rs = as64(q), as64(r)
    for one in range(2):
        lq, lr = scipy.linalg.qr(a[one], mode="economic" if mode == "reduced" else "full")
        np.testing.assert_allclose(rs[one], lr, rtol=0, atol=1e-12 * np.sqrt(m) * norm(a[one]))
        np.testing.assert_allclose(qs[one], lq, rtol=0, atol=1e-12 * np.sqrt(m))


@pytest.mark.parametrize("shape", [(65, 65), (150, 150), (600, 600), (600, 200), (150, 400)])
def test_float32_metric_and_agreement(rng, shape):
    m, n = shape
    am = as_mlx(rng.standard_normal((2 if m < 600 else 1, m, n)), mx.float32)
    (q, r), _ = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE, panel="tsqr")
    ours = qr_ratio(as64(am), as64(q), as64(r), unit_roundoff(np.float32))
    assert np.all(np.tril(as64(r), -1) == 0)
    assert ours <= QR_RATIO
    assert ours <= VS_LAPACK * max(_lapack_ratio(np.asarray(am)), FLOOR)
    (q0, r0), _ = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE)  # the kernel panel's
    np.testing.assert_allclose(as64(q), as64(q0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(as64(r), as64(r0), rtol=0, atol=1e-5 * norm(as64(am)).max())


@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
def test_graded_rank_deficient_and_zero(rng, dtype):
    m, n = 200, 160
    graded = np.concatenate([graded_stack(rng, 1, m, n, cond) for cond in (1e0, 1e3, 1e7)])
    deficient = rng.standard_normal((1, m, 30)) @ rng.standard_normal((1, 30, n))
    deficient[:, :, [5, 16, 17, 40]] = 0.0
    repeated = rng.standard_normal((1, m, n))
    repeated[:, :, 80:] = repeated[:, :, :80]
    zero = np.zeros((1, m, n))
    a = np.concatenate([graded, deficient, repeated, zero])
    am = as_mlx(a, dtype)
    (q, r), failed = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE, panel="tsqr")
    assert not np.any(np.asarray(failed))
    qs, rs = as64(q), as64(r)
    assert np.all(np.isfinite(qs)) and np.all(np.isfinite(rs))
    assert qr_ratio(as64(am), qs, rs, unit_roundoff(dtype)) <= QR_RATIO
    np.testing.assert_array_equal(rs[-1], 0.0)
    if dtype == mx.float32:
        assert qr_ratio(as64(am), qs, rs, unit_roundoff(dtype)) <= VS_LAPACK * max(
            _lapack_ratio(np.asarray(am)), FLOOR
        )


def test_nan_and_inf_stay_in_their_matrix(rng):
    a = rng.standard_normal((3, 300, 100))
    a[1, 250, 70] = np.nan  # in the third panel's last leaf
    a[2, 0, 0] = np.inf  # in the first leaf: reaches every later column
    (q, r), failed = blocked_qr.qr(
        as_mlx(a, mx.float32), mode="complete", blocks=REFERENCE, panel="tsqr"
    )
    np.testing.assert_array_equal(np.asarray(failed), [False, True, True])
    qs, rs = as64(q), as64(r)
    assert np.all(np.isnan(qs[1:])) and np.all(np.isnan(rs[1:]))
    assert np.all(np.isfinite(qs[0])) and np.all(np.isfinite(rs[0]))
    assert qr_ratio(a[:1], qs[:1], rs[:1], unit_roundoff(np.float32)) <= QR_RATIO


def test_batch_axes_inside_compile(rng):
    a = as_mlx(rng.standard_normal((2, 2, 150, 20)), mx.float32)  # panels of two leaves

    def factor(a):
        return blocked_qr.qr(a, mode="reduced", blocks=REFERENCE, block=16, panel="tsqr")[0]

    q, r = mx.compile(factor)(a)
    assert q.shape == (2, 2, 150, 20) and r.shape == (2, 2, 20, 20)
    (q1, r1), _ = blocked_qr.qr(a[1, 1], mode="reduced", blocks=REFERENCE, block=16, panel="tsqr")
    np.testing.assert_allclose(as64(q[1, 1]), as64(q1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(as64(r[1, 1]), as64(r1), rtol=0, atol=1e-5)
    assert qr_ratio(as64(a), as64(q), as64(r), unit_roundoff(np.float32)) <= QR_RATIO


def test_unknown_panel():
    with pytest.raises(ValueError, match=r"^\[mlx_linalg\.qr\] panel"):
        blocked_qr.qr(mx.zeros((1, 70, 70)), mode="reduced", blocks=REFERENCE, panel="cholqr")


def test_float32_accurate_with_tf32_products(rng, monkeypatch):
    """As on an H100 with MLX's default TF32: every float32 matmul and addmm rounds its
    operands to TF32 (emulated), and the panel's products are split (or elementwise)."""
    am = as_mlx(rng.standard_normal((1, 300, 200)), mx.float32)
    (q0, r0), _ = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE, panel="tsqr")

    x = rng.standard_normal((60, 60)).astype(np.float32)
    plain = tf32_matmul(mx.array(x), mx.array(x))
    assert norm(np.asarray(plain) - x.astype(np.float64) @ x) > 1e-4 * norm(x @ x)
    emulate_tf32(monkeypatch)
    (q, r), _ = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE, panel="tsqr")
    ours = qr_ratio(as64(am), as64(q), as64(r), unit_roundoff(np.float32))
    assert ours <= QR_RATIO
    np.testing.assert_allclose(as64(q), as64(q0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(as64(r), as64(r0), rtol=0, atol=1e-4)


# --- the kernels' bodies, emulated on the CPU ----------------------------------------------


def _emulated_reconstruct(q1, r, square):
    batch, b, _ = q1.shape
    threads = tsqr._threads(b)
    outs = emulate.run(
        "tsqr_householder",
        [np.asarray(q1), np.asarray(r)],
        template={"NB": b, "SQUARE": bool(square)},
        grid=(batch * threads, 1, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=[(batch, b, b)] * 3 + [(batch, b), (batch, b, b)],
    )
    return tuple(mx.array(x) for x in outs)


def _emulated_product(a, bm, top, *, trans, batch, rows):
    n = bm.shape[-1]
    threads = tsqr.PRODUCT_THREADS
    (out,) = emulate.run(
        "tsqr_product",
        [
            np.asarray(a),
            np.asarray(bm),
            np.asarray(bm if top is None else top),
            np.zeros((batch, rows, 0), np.int32),
        ],
        template={"TRANS": bool(trans), "TOP": 0 if top is None else top.shape[1]},
        grid=(-(-batch * rows * n // threads) * threads, 1, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=[(batch, rows, n)],
    )
    return mx.array(out)


@needs_emulation
def test_product_kernel_matches_reference(rng):
    a = rng.standard_normal((6, 8, 20)).astype(np.float32)  # G = 6, K = 8, MA = 20
    bm = rng.standard_normal((6, 8, 8)).astype(np.float32)
    top = rng.standard_normal((3, 8, 8)).astype(np.float32)
    for args, kwargs in (
        ((a, bm, top), {"trans": True, "batch": 3, "rows": 35}),
        ((a, bm, None), {"trans": True, "batch": 1, "rows": 120}),
        ((np.swapaxes(a, -1, -2).copy(), bm, None), {"trans": False, "batch": 2, "rows": 60}),
    ):
        arrays = [None if x is None else mx.array(x) for x in args]
        ours = np.asarray(_emulated_product(*arrays, **kwargs))
        expected = np.asarray(tsqr.product_reference(*arrays, **kwargs))
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


@needs_emulation
@pytest.mark.parametrize(("b", "square"), [(32, False), (32, True), (40, False)])
def test_reconstruction_kernel_matches_reference(rng, b, square):
    batch = 3
    q, r = np.linalg.qr(rng.standard_normal((batch, b if square else 3 * b, b)))
    q1, r = q[:, :b].astype(np.float32), r.astype(np.float32)
    q1[2] = np.nan  # stays in its matrix
    ours = _emulated_reconstruct(q1, r, square)
    expected = tsqr.reconstruct_reference(mx.array(q1), mx.array(r), square)
    for name, x, y in zip(("Rh", "V", "T", "tau", "Uinv"), ours, expected, strict=True):
        x, y = as64(x), as64(y)
        if name == "T":  # (a square panel's last column is set to zero)
            assert np.all(np.isnan(x[2, : b - 1, : b - 1][np.triu_indices(b - 1)]))
        if square and name == "Uinv":
            continue  # U's last pivot is zero: no Q₂ to solve for
        x, y = x[:2], y[:2]
        assert np.all(np.isfinite(x)), name
        np.testing.assert_allclose(x, y, rtol=0, atol=2e-6 * max(np.abs(y).max(), 1), err_msg=name)


@needs_emulation
def test_panel_with_the_emulated_kernels(rng):
    """The whole TSQR panel with its kernels emulated (``qr_small`` leaves and nodes,
    ``tsqr_householder``, ``tsqr_product``): geqr2's reflectors to rounding."""

    def emulated_qr(a, height):
        launch = small_spectral.qr_small_launch(a.shape, complete=False, height=height)
        qt, r = emulate.run("qr_small", [np.asarray(a)], **launch)
        return mx.array(qt), mx.array(r)

    a = as_mlx(rng.standard_normal((1, 300, 16)), mx.float32)  # leaves of 128, 128, 44
    ops = tsqr.Ops(emulated_qr, _emulated_reconstruct, _emulated_product)
    ours = tsqr.panel(REFERENCE, a, ops=ops)
    expected = blocked_qr.panel(REFERENCE, a, leaf=None)
    for x, y in ((ours.packed, expected.packed), (ours.v, expected.v), (ours.t, expected.t)):
        _close(as64(x), as64(y), 1e-5 * np.sqrt(300))
