"""The recursive tall panel of the blocked QR (``blocked_qr.panel``, issue #7), on the CPU.

With the MLX-op building blocks (``REFERENCE``; the emulated ``qr_panel`` kernel as the
leaves where g++ can build the emulation): the recursive panel gives the same reflectors
as the building block's ``qr`` on the whole panel, its V and T represent their product,
and the blocked QR built on it matches SciPy (float64: LAPACK's R and Q; float32:
DESIGN.md's QR metric, and at most 10 times float32 LAPACK's) for tall, square and wide
matrices, widths that are not multiples of the leaf, graded, rank-deficient and zero
columns, both modes, batches, NaN/Inf inputs and inside ``mx.compile``; also with the
products the device would split (reduced-precision float32 products pretended).
"""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from kernel_emulation import emulate, needs_emulation
from matrices import QR_RATIO, as64, as_mlx, graded_stack, norm, qr_ratio, unit_roundoff

from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_panel, blocked_qr
from mlx_linalg._gpu.blocked_common import REFERENCE

# Our float32 ratio may exceed float32 LAPACK's on the same input by this factor at most
# (ratios below FLOOR count as FLOOR), as tests/test_blocked.py.
VS_LAPACK = 10
FLOOR = 0.1


@pytest.fixture(autouse=True)
def kernel_panel(monkeypatch):
    """The recursion belongs to the ``qr_panel`` kernel's panel (``panel="kernel"``); the
    default TSQR panel (tests/test_tsqr.py) does not recurse."""
    monkeypatch.setattr(blocked_qr, "PANEL", "kernel")




def _reflector_product(packed: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """H₁ ⋯ H_b (r, r) from one packed panel and its tau, in float64."""
    r, b = packed.shape
    q = np.eye(r)
    for j in reversed(range(b)):
        v = np.zeros(r)
        v[j] = 1.0
        v[j + 1 :] = packed[j + 1 :, j]
        q -= tau[j] * np.outer(v, v @ q)
    return q


def _spy(blocks):
    """``blocks`` whose ``qr`` records the widths it is called with."""
    widths = []

    def qr(a):
        widths.append(a.shape[-1])
        return blocks.qr(a)

    return blocks._replace(qr=qr), widths


@pytest.mark.parametrize(
    ("rows", "width", "leaf"),
    [(1, 1, 1), (40, 7, 1), (40, 37, 4), (100, 64, 16), (70, 50, 16), (64, 64, 5)],
)
def test_panel_equals_the_unrecursed_panel(rng, rows, width, leaf):
    a = as_mlx(rng.standard_normal((2, rows, width)), mx.float64)
    blocks, widths = _spy(REFERENCE)
    factored = blocked_qr.panel(blocks, a, leaf=leaf)
    packed, tau = (np.asarray(x) for x in REFERENCE.qr(a))

    # Every leaf but the last is exactly ``leaf`` wide; together they cover the panel.
    leaves = -(-width // leaf)
    assert widths == [leaf] * (leaves - 1) + [width - leaf * (leaves - 1)]

    # The same reflectors (LAPACK's signs) as the building block on the whole panel.
    scale = 1e-12 * np.sqrt(rows) * np.abs(packed).max()
    np.testing.assert_allclose(np.asarray(factored.packed), packed, rtol=0, atol=scale)
    taus = np.concatenate([np.asarray(t) for t in factored.taus], axis=1)
    np.testing.assert_allclose(taus, tau, rtol=0, atol=1e-12)

    # V is unit lower trapezoidal with the packed tails, and I - V T Vᵀ = H₁ ⋯ H_b.
    v, t = np.asarray(factored.v), np.asarray(factored.t)
    np.testing.assert_array_equal(np.triu(v[:, :width]), np.broadcast_to(np.eye(width), t.shape))
    np.testing.assert_array_equal(np.tril(v, -1), np.tril(np.asarray(factored.packed), -1))
    np.testing.assert_array_equal(np.tril(t, -1), 0.0)
    for one in range(2):
        expected = _reflector_product(packed[one], tau[one])
        ours = np.eye(rows) - v[one] @ t[one] @ v[one].T
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-13 * rows)

    # A right half needs neither V nor T.
    bare = blocked_qr.panel(REFERENCE, a, leaf=leaf, with_t=False)
    assert bare.v is None and bare.t is None
    np.testing.assert_array_equal(np.asarray(bare.packed), np.asarray(factored.packed))


SHAPES = [
    ((150, 150), 64, 16),  # square; the last panel (22 columns) is one partial leaf
    ((200, 70), 64, 16),  # tall
    ((70, 200), 64, 16),  # wide: panels only over the first 70 columns
    ((131, 97), 48, 5),  # widths not multiples of the leaf (48 = 5·9 + 3, 97 - 96 = 1)
    ((90, 90), 256, 7),  # one panel wider than the matrix: 90 = 7·12 + 6
    ((65, 65), 16, 64),  # leaf >= block: the non-recursive panel
]


@pytest.mark.parametrize(
    ("shape", "block", "leaf", "mode"),
    [(*case, "reduced") for case in SHAPES]
    + [(*case, "complete") for case in (SHAPES[1], SHAPES[2], SHAPES[5])]
    # rows > CHUNK: Vᵀ C summed over 200-row chunks (600 = 3 x 200)
    + [((600, 70), 32, None, "reduced"), ((600, 70), 32, None, "complete")],
)
def test_float64_equals_lapack(rng, shape, block, leaf, mode):
    m, n = shape
    a = rng.standard_normal((2, m, n))
    (q, r), failed = blocked_qr.qr(
        as_mlx(a, mx.float64), mode=mode, blocks=REFERENCE, block=block, leaf=leaf
    )
    k = min(m, n) if mode == "reduced" else m
    assert q.shape == (2, m, k) and r.shape == (2, k, n) and q.dtype == mx.float64
    assert not np.any(np.asarray(failed))
    qs, rs = as64(q), as64(r)
    # LAPACK's reflectors (dlarfg's signs): SciPy's R and Q themselves, not up to signs.
    for one in range(2):
        lq, lr = scipy.linalg.qr(a[one], mode="economic" if mode == "reduced" else "full")
        np.testing.assert_allclose(rs[one], lr, rtol=0, atol=1e-12 * np.sqrt(m) * norm(a[one]))
        np.testing.assert_allclose(qs[one], lq, rtol=0, atol=1e-12 * np.sqrt(m))
    assert qr_ratio(a, qs, rs, unit_roundoff(np.float64)) <= QR_RATIO


@pytest.mark.parametrize("mode", ["reduced", "complete"])
def test_q_formed_from_merged_blocks(rng, mode):
    """Q's formation merges ``q_block // block`` blocks' reflectors per step (the last
    group partial here, and one of them only two columns wide): LAPACK's Q whatever the
    grouping, and R does not depend on it at all."""
    m, n, block = 150, 130, 16  # nine blocks: eight of 16 columns, one of 2
    a = rng.standard_normal((2, m, n))
    lapack = [scipy.linalg.qr(one, mode="economic" if mode == "reduced" else "full") for one in a]
    lq, lr = np.stack([q for q, _ in lapack]), np.stack([r for _, r in lapack])
    results = {}
    for q_block in (block, 48, 64, 1000):
        (q, r), _ = blocked_qr.qr(
            as_mlx(a, mx.float64), mode=mode, blocks=REFERENCE, block=block, q_block=q_block
        )
        results[q_block] = as64(q), as64(r)
        np.testing.assert_allclose(results[q_block][0], lq, rtol=0, atol=1e-12)
    for q_block in (48, 64, 1000):
        np.testing.assert_array_equal(results[q_block][1], results[block][1])
        np.testing.assert_allclose(results[q_block][0], results[block][0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(results[block][1], lr, rtol=0, atol=1e-11)


def test_merged_block_is_the_blocks_product(rng):
    """``_merge``: one (V, T) whose I - V T Vᵀ is the product of the blocks' own."""
    m, n = 90, 60
    a = as_mlx(rng.standard_normal((2, m, n)), mx.float64)
    _, reflectors = blocked_qr.geqrf(REFERENCE, a, block=16)  # 16, 16, 16, 12 columns
    v, t = (np.asarray(x) for x in blocked_qr._merge(REFERENCE, reflectors, a))
    assert v.shape == (2, m, n) and t.shape == (2, n, n)
    np.testing.assert_array_equal(np.triu(v[:, :n], 1), 0.0)
    np.testing.assert_array_equal(np.tril(t, -1), 0.0)
    for one in range(2):
        expected = np.eye(m)
        for block in reflectors:
            bv, bt = np.asarray(block.v)[one], np.asarray(block.t)[one]
            h = np.eye(m)
            h[m - bv.shape[0] :, m - bv.shape[0] :] -= bv @ bt @ bv.T
            expected = expected @ h
        merged = np.eye(m) - v[one] @ t[one] @ v[one].T
        np.testing.assert_allclose(merged, expected, rtol=0, atol=1e-13 * m)


def _lapack_ratio(a32: np.ndarray) -> float:
    u = unit_roundoff(np.float32)
    worst = 0.0
    for one in a32:
        lq, lr = scipy.linalg.qr(one, mode="economic")
        worst = max(worst, qr_ratio(one.astype(np.float64), lq, lr, u))
    return worst


@pytest.mark.parametrize(("shape", "block", "leaf"), SHAPES[:5])
def test_float32_metric(rng, shape, block, leaf):
    m, n = shape
    am = as_mlx(rng.standard_normal((2, m, n)), mx.float32)
    (q, r), _ = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE, block=block, leaf=leaf)
    a32 = np.asarray(am)
    ours = qr_ratio(as64(am), as64(q), as64(r), unit_roundoff(np.float32))
    assert np.all(np.tril(as64(r), -1) == 0)
    assert ours <= QR_RATIO
    assert ours <= VS_LAPACK * max(_lapack_ratio(a32), FLOOR)


@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
def test_graded_rank_deficient_and_zero_columns(rng, dtype):
    m, n = 120, 100
    graded = graded_stack(rng, 1, m, n, 1e7)
    deficient = rng.standard_normal((1, m, 30)) @ rng.standard_normal((1, 30, n))
    deficient[:, :, [5, 16, 17, 40]] = 0.0  # zero columns: reflectors that are the identity
    zero = np.zeros((1, m, n))  # every reflector the identity: Q = I, R = 0
    a = np.concatenate([graded, deficient, zero])
    am = as_mlx(a, dtype)
    (q, r), failed = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE, block=64, leaf=8)
    assert not np.any(np.asarray(failed))
    qs, rs = as64(q), as64(r)
    assert qr_ratio(as64(am), qs, rs, unit_roundoff(dtype)) <= QR_RATIO
    np.testing.assert_array_equal(qs[2], np.eye(m, n))
    np.testing.assert_array_equal(rs[2], 0.0)
    # A zero column gives a zero column of R from its diagonal down (H = I there).
    assert np.all(rs[1, 5, 5:6] == 0.0)


def test_nan_and_inf_stay_in_their_matrix(rng):
    a = rng.standard_normal((3, 100, 80))
    a[1, 50, 70] = np.nan  # in the second panel's last leaf
    a[2, 0, 0] = np.inf  # in the first leaf: reaches every later column
    (q, r), failed = blocked_qr.qr(
        as_mlx(a, mx.float32), mode="complete", blocks=REFERENCE, block=64, leaf=16
    )
    np.testing.assert_array_equal(np.asarray(failed), [False, True, True])
    qs, rs = as64(q), as64(r)
    assert np.all(np.isnan(qs[1:])) and np.all(np.isnan(rs[1:]))
    assert np.all(np.isfinite(qs[0])) and np.all(np.isfinite(rs[0]))
    assert qr_ratio(a[:1], qs[:1], rs[:1], unit_roundoff(np.float32)) <= QR_RATIO


def test_batch_axes_inside_compile(rng):
    a = as_mlx(rng.standard_normal((2, 3, 40, 30)), mx.float32)

    def factor(a):
        return blocked_qr.qr(a, mode="reduced", blocks=REFERENCE, block=16, leaf=3)[0]

    q, r = mx.compile(factor)(a)
    assert q.shape == (2, 3, 40, 30) and r.shape == (2, 3, 30, 30)
    (q1, r1), _ = blocked_qr.qr(a[1, 2], mode="reduced", blocks=REFERENCE, block=16, leaf=3)
    np.testing.assert_allclose(as64(q[1, 2]), as64(q1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(as64(r[1, 2]), as64(r1), rtol=0, atol=1e-5)
    assert qr_ratio(as64(a), as64(q), as64(r), unit_roundoff(np.float32)) <= QR_RATIO


def test_with_split_products(rng, monkeypatch):
    """As on a device that multiplies float32 in TF32: the split product for large
    products, float32 broadcast products and sums for small ones (the CPU multiplies
    float32 exactly, so both run here as they would there)."""
    am = as_mlx(rng.standard_normal((1, 130, 100)), mx.float32)
    (q0, r0), _ = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE, block=64, leaf=8)
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    assert _precision.needs_split()
    (q, r), _ = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE, block=64, leaf=8)
    assert qr_ratio(as64(am), as64(q), as64(r), unit_roundoff(np.float32)) <= QR_RATIO
    np.testing.assert_allclose(as64(q), as64(q0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(as64(r), as64(r0), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("rows", "chunks"), [(600, 3), (1024, 4), (257, 1), (256, 1)])
def test_long_inner_products_are_summed_in_chunks(rng, monkeypatch, rows, chunks):
    """Vᵀ C over r rows: products of at most CHUNK rows each, summed (600 = 3 x 200;
    257 has no divisor in [128, 256] and 256 needs none: one product), equal to Vᵀ C."""
    shapes = []
    product = blocked_qr._product

    def recording(a, b):
        shapes.append(tuple(a.shape))
        return product(a, b)

    monkeypatch.setattr(blocked_qr, "_product", recording)
    v = rng.standard_normal((2, rows, 5))
    c = rng.standard_normal((2, rows, 7))
    got = as64(blocked_qr._transposed_product(as_mlx(v, mx.float64), as_mlx(c, mx.float64)))
    np.testing.assert_allclose(got, np.swapaxes(v, -1, -2) @ c, rtol=0, atol=1e-12 * rows)
    assert shapes == [(2 * chunks, 5, rows // chunks)]


def test_small_products_are_float32_accurate(rng, monkeypatch):
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    a = rng.standard_normal((2, 5, 300)).astype(np.float32)
    b = rng.standard_normal((2, 300, 7)).astype(np.float32)
    # Small: float32 products summed in float32; large: the split product.
    for limit in (blocked_qr.ELEMENTWISE_PRODUCT_ELEMENTS, 0):
        monkeypatch.setattr(blocked_qr, "ELEMENTWISE_PRODUCT_ELEMENTS", limit)
        ours = np.asarray(blocked_qr._product(mx.array(a), mx.array(b)), np.float64)
        expected = a.astype(np.float64) @ b.astype(np.float64)
        bound = 300 * unit_roundoff(np.float32) * (np.abs(a) @ np.abs(b))
        assert np.all(np.abs(ours - expected) <= bound)


@pytest.mark.parametrize("leaf", [None, 32, 100])
def test_no_recursion_is_one_call_per_panel(rng, leaf):
    a = as_mlx(rng.standard_normal((1, 100, 100)), mx.float32)
    blocks, widths = _spy(REFERENCE)
    blocked_qr.qr(a, mode="reduced", blocks=blocks, block=32, leaf=leaf)
    assert widths == [32, 32, 32, 4]


@pytest.mark.parametrize("keywords", [{"leaf": 0}, {"block": 0}])
def test_invalid_sizes(keywords):
    with pytest.raises(ValueError, match=r"^\[mlx_linalg\.qr\]"):
        blocked_qr.qr(mx.zeros((1, 70, 70)), mode="reduced", blocks=REFERENCE, **keywords)


@needs_emulation
def test_with_the_emulated_panel_kernel_as_leaves():
    """The recursive panel with the emulated ``qr_panel`` kernel as its leaves: the same Q
    and R as with the MLX-op leaves, to rounding, and DESIGN.md's metric."""

    def emulated_qr(a):
        launch = blocked_panel.panel_launch("qr_panel", a.shape, 64)
        packed, tau = emulate.run("qr_panel", [np.asarray(a)], **launch)
        return mx.array(packed), mx.array(tau)

    m, n = 80, 26  # one panel of two leaves (16 + 10 columns): two emulator builds
    a = np.random.default_rng(7).standard_normal((1, m, n)).astype(np.float32)
    blocks = REFERENCE._replace(qr=emulated_qr)
    (q, r), _ = blocked_qr.qr(mx.array(a), mode="reduced", blocks=blocks, block=32, leaf=16)
    (q_ref, r_ref), _ = blocked_qr.qr(
        mx.array(a), mode="reduced", blocks=REFERENCE, block=32, leaf=16
    )
    np.testing.assert_allclose(np.asarray(q), np.asarray(q_ref), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(r), np.asarray(r_ref), rtol=0, atol=1e-5 * np.sqrt(m))
    assert qr_ratio(as64(a), as64(q), as64(r), unit_roundoff(np.float32)) <= QR_RATIO
