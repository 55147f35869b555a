"""GPU tests of the blocked large-matrix algorithms (mlx_linalg._gpu.blocked_*) with the real
small-matrix kernels as building blocks (``blocked_common.KERNELS``).

The same checks as tests/test_blocked.py (which runs them on the CPU with the MLX-op
references), on the GPU: DESIGN.md's metrics up to n = 2048 (where a TF32 product would
show: its error is about 3e-4, far above the float32 guards here), agreement with the
reference building blocks (the same graph with each kernel swapped for its reference),
LAPACK's pivots, the failure policy, and laziness under ``mx.compile``. Run by
tools/gpu-check.sh.
"""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from matrices import (
    CHOLESKY_RATIO,
    INV_RATIO,
    LU_RATIO,
    QR_RATIO,
    SOLVE_RATIO,
    as64,
    norm,
    random_moves,
    ratio,
    replay_pivots,
)

import mlx_linalg as la
from mlx_linalg import _dispatch, _kernels, _precision
from mlx_linalg._gpu import (
    blocked_cholesky,
    blocked_common,
    blocked_lu,
    blocked_panel,
    blocked_qr,
    blocked_rules,
    blocked_triangular,
    small_factor,
)
from mlx_linalg._gpu.blocked_common import KERNELS, REFERENCE

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
SIZES = [65, 127, 200, 513, 2048]
# Normwise forward error against float64 SciPy, in units of sqrt(n)·κ·u (DESIGN.md).
FORWARD = 10
# QR guards, in units of √m·u (backward error ‖A − QR‖/‖A‖) and n·u (‖I − QᵀQ‖_F): on
# the CPU (exact float32 products) 0.9 and 1.0; the split product of a TF32 GPU is up to
# about 4 times less accurate than float32, plain TF32 about 100 times.
QR_BACKWARD = 30
ORTHOGONALITY = 10
# Kernel vs reference building blocks: same algorithm, different rounding (FMA, reciprocals).
AGREE = 50


def _f32(x: np.ndarray) -> mx.array:
    return mx.array(x.astype(np.float32))


def _spd(rng, shape) -> np.ndarray:
    n = shape[-1]
    g = rng.standard_normal(shape)
    return g @ np.swapaxes(g, -1, -2) / n + np.eye(n)


def _well_conditioned(rng, shape) -> np.ndarray:
    n = shape[-1]
    return rng.standard_normal(shape) / np.sqrt(n) + 2 * np.eye(n)


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)


@pytest.mark.parametrize("block", [64, 128, 256])
def test_block_sizes(rng, block):
    n = 700
    am = _f32(_spd(rng, (1, n, n)))
    (factor,), _ = blocked_cholesky.cholesky(am, upper=False, block=block)
    f, a = as64(factor), as64(am)
    assert ratio(f @ np.swapaxes(f, -1, -2) - a, n * norm(a), U32) <= CHOLESKY_RATIO
    g = _f32(_well_conditioned(rng, (1, n, n)))
    (x,), _ = blocked_lu.solve(g, g, block=block)
    xs, gs = as64(x), as64(g)
    assert ratio(gs - gs @ xs, norm(gs) * norm(xs), U32) <= SOLVE_RATIO


def test_subtract_product_is_float32_accurate(rng):
    """Whether or not the GPU multiplies float32 in TF32, the update is float32-accurate."""
    a, b, c = (rng.standard_normal(s) for s in ((1, 2048, 64), (1, 64, 2048), (1, 2048, 2048)))
    got = as64(blocked_common.subtract_product(_f32(c), _f32(a), _f32(b)))
    expected = as64(_f32(c)) - as64(_f32(a)) @ as64(_f32(b))
    scale = np.abs(as64(_f32(c))) + np.abs(as64(_f32(a))) @ np.abs(as64(_f32(b)))
    # Float32 accumulation over K = 64 terms: at most about 64u, typically 8u; TF32: 8192u.
    assert np.all(np.abs(got - expected) <= 128 * U32 * scale)


@pytest.mark.parametrize("n", SIZES)
def test_cholesky(rng, n):
    am = _f32(_spd(rng, (2, n, n)))
    (factor,), failed = blocked_cholesky.cholesky(am, upper=False)
    assert not np.any(np.asarray(failed))
    f, a = as64(factor), as64(am)
    assert ratio(f @ np.swapaxes(f, -1, -2) - a, n * norm(a), U32) <= CHOLESKY_RATIO
    expected = np.linalg.cholesky(a)
    assert np.max(norm(f - expected) / norm(expected)) <= FORWARD * 5 * np.sqrt(n) * U32
    (upper,), _ = blocked_cholesky.cholesky(am, upper=True)
    np.testing.assert_allclose(as64(upper), np.swapaxes(f, -1, -2), rtol=0, atol=AGREE * n * U32)


@pytest.mark.parametrize("m", [64, 139, 4096 + 64])
@pytest.mark.parametrize("width", [64, 20, 1])
def test_cholesky_panel_is_the_small_kernels_bit_for_bit(rng, m, width):
    """The ``cholesky_panel`` kernel (one launch per leaf, its columns read in place from a
    wider matrix) equals ``cholesky_small`` then ``trsm_small`` with ``rows`` bit for bit;
    a top block that is not positive definite gives an all-NaN panel and ``failed``."""
    a = _spd(rng, (3, m + 3, m + 3))[:, :m].astype(np.float32)  # k = m + 3 columns
    a[1, 0, 0] = -1.0
    factor, failed = small_factor.cholesky_panel(mx.array(a), width)
    (l11,), want_failed = small_factor.cholesky(mx.array(a[:, :width, :width]), upper=False)
    want = l11
    if m > width:
        l21, _ = small_factor.trsm(
            l11, mx.array(a[:, width:, :width]), lower=True, trans=False, unit=False, rows=True
        )
        want = mx.concatenate([l11, l21], axis=1)
    got, want = np.asarray(factor), np.asarray(want)
    assert np.asarray(failed).tolist() == np.asarray(want_failed).tolist() == [0, 1, 0]
    assert np.array_equal(got[[0, 2]].view(np.uint32), want[[0, 2]].view(np.uint32))
    assert np.all(np.isnan(got[1]))


@pytest.mark.parametrize("n", [65, 200])
def test_kernels_agree_with_references(rng, n):
    a = _spd(rng, (3, n, n))
    (k,), _ = blocked_cholesky.cholesky(_f32(a), upper=False)
    (r,), _ = blocked_cholesky.cholesky(_f32(a), upper=False, blocks=REFERENCE)
    np.testing.assert_allclose(as64(k), as64(r), rtol=0, atol=AGREE * n * U32 * np.sqrt(n))
    g = _well_conditioned(rng, (3, n, n))
    (pk, vk), _ = blocked_lu.lu_factor(_f32(g))
    (pr, vr), _ = blocked_lu.lu_factor(_f32(g), blocks=REFERENCE)
    np.testing.assert_array_equal(np.asarray(vk), np.asarray(vr))
    np.testing.assert_allclose(as64(pk), as64(pr), rtol=0, atol=AGREE * n * U32)
    b = rng.standard_normal((3, n, 70))
    for lower in (True, False):
        for trans in (0, 1):
            args = (_f32(np.tril(g) if lower else np.triu(g)), _f32(b))
            kw = {"lower": lower, "unit_diagonal": False, "trans": trans}
            (xk,), _ = blocked_triangular.solve_triangular(*args, **kw)
            (xr,), _ = blocked_triangular.solve_triangular(*args, **kw, blocks=REFERENCE)
            scale = np.max(np.abs(as64(xr)))
            np.testing.assert_allclose(as64(xk), as64(xr), rtol=0, atol=AGREE * n * U32 * scale)


@pytest.mark.parametrize("m, w, leaf", [(300, 37, 16), (4096, 256, 16), (16384, 128, 32)])
def test_recursive_panel_with_join_kernel_gives_lapack_pivots(rng, m, w, leaf):
    """The recursive LU panel on the GPU building blocks (``lu_panel`` leaves, the
    ``lu_join`` kernel at every internal node) against the panel's LAPACK factorization:
    the same pivots, P A = L U to DESIGN.md's ratio; and the join kernel equals the MLX-op
    join bit for bit."""
    a32 = rng.standard_normal((2, m, w)).astype(np.float32)
    factored = blocked_lu.panel_lu(KERNELS, mx.array(a32), leaf=leaf)
    packed, perm, piv = (np.asarray(x) for x in factored)
    lapack = scipy.linalg.lu_factor(a32[0].astype(np.float64))[1]
    np.testing.assert_array_equal(piv[0], lapack)
    for b in range(2):
        lower = np.tril(packed[b].astype(np.float64), -1) + np.eye(m, w)
        upper = np.triu(packed[b].astype(np.float64))[:w]
        residual = a32[b][perm[b]].astype(np.float64) - lower @ upper
        assert ratio(residual, m * norm(a32[b].astype(np.float64)), U32) <= LU_RATIO
    w1 = w // 2
    args = (
        mx.array(a32[:, :, :w1]),
        mx.array(a32[:, :w1, w1:]),
        mx.array(a32[:, w1:, w1:]),
        mx.array(np.stack([rng.permutation(m) for _ in range(2)]).astype(np.int32)),
        mx.array(np.stack([rng.permutation(m - w1) for _ in range(2)]).astype(np.int32)),
    )
    for x, y in zip(blocked_panel.lu_join_kernel(*args), blocked_lu.join(*args), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(
    "batch, m, n, block", [(1, 4096, 4096, 64), (3, 1000, 700, 64), (2, 200, 500, 128)]
)
def test_assemble_kernel_is_the_mlx_op_assemble(rng, batch, m, n, block):
    """The blocked LU's last step: the ``lu_assemble`` kernel equals the MLX-op
    ``blocked_lu.assemble`` bit for bit (square, tall, wide), on random permutations."""
    stored = _f32(rng.standard_normal((batch, m, n)))
    moves = mx.array(random_moves(rng, batch, m, min(m, n), block))
    for x, y in zip(
        blocked_panel.lu_assemble_kernel(stored, moves, block),
        blocked_lu.assemble(stored, moves, block),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(
    "batch, m, n, first", [(1, 4096, 4096, 64), (3, 1000, 700, 0), (2, 65, 129, 128)]
)
def test_gather_rows_kernel_is_the_take_along_axis(rng, batch, m, n, first):
    """The LU's row interchanges: the ``gather_rows`` kernel equals MLX's gather bit for
    bit, a permutation and repeated rows, from column ``first`` on."""
    x = _f32(rng.standard_normal((batch, m, n)))
    for rows in (
        np.stack([rng.permutation(m) for _ in range(batch)]),
        rng.integers(0, m, size=(batch, m // 2 + 1)),
    ):
        rows = mx.array(rows.astype(np.int32))
        np.testing.assert_array_equal(
            np.asarray(blocked_panel.gather_rows_kernel(x, rows, first)),
            np.asarray(blocked_panel.gather_rows(x, rows, first)),
        )


@pytest.mark.parametrize(
    "m, nb", [(1, 1), (65, 64), (300, 5), (1000, 128), (5000, 64), (4096, 200), (16384, 128)]
)
def test_lu_panel_kernel_matches_reference(rng, m, nb):
    """The ``lu_panel`` kernel (one threadgroup per panel, device memory) against the MLX-op
    loop it replaces, on Gaussian, graded, zero-column and NaN panels: the same pivot rows
    (no ties on these inputs), each row of A's factor row to rounding, P A = L U; the zero
    column kept, the NaN only in its own panel. Also LAPACK's pivots on the Gaussian panel
    (scipy.linalg.lu_factor of the panel)."""
    a = rng.standard_normal((4, m, nb))
    a[1] *= np.logspace(0, 6, nb)[None, :]
    a[2, :, nb // 2] = 0.0
    a[3, :, (nb - 1) // 2] = np.nan
    a32 = a.astype(np.float32)
    packed, perm = (np.asarray(x) for x in blocked_panel.lu_panel_kernel(mx.array(a32)))
    ref_packed, ref_perm = (np.asarray(x) for x in blocked_panel.lu_panel(mx.array(a32)))
    k = min(m, nb)
    np.testing.assert_array_equal(perm[:2, :k], ref_perm[:2, :k])
    for b in range(2):
        mine, theirs = np.empty_like(packed[b]), np.empty_like(packed[b])
        mine[perm[b]], theirs[ref_perm[b]] = packed[b], ref_packed[b]
        scale = np.abs(theirs).max(axis=0, keepdims=True)
        assert np.all(np.abs(mine - theirs) <= AGREE * np.sqrt(m) * U32 * scale)
        lower = np.tril(packed[b].astype(np.float64), -1)[:, :k] + np.eye(m, k)
        upper = np.triu(packed[b].astype(np.float64))[:k]
        residual = a32[b][perm[b]].astype(np.float64) - lower @ upper
        assert ratio(residual, m * norm(a32[b].astype(np.float64)), U32) <= LU_RATIO
    lapack = scipy.linalg.lu_factor(a32[0].astype(np.float64))[1][:k]
    replayed = np.asarray(blocked_panel.pivots(mx.array(perm[:1]), k))[0]
    np.testing.assert_array_equal(replayed, lapack)
    assert np.all(np.isfinite(packed[2])) and packed[2, nb // 2, nb // 2] == 0.0
    assert np.isnan(packed[3]).any() and np.all(np.isfinite(packed[:3]))


@pytest.mark.parametrize("m, nb", [(4096, 16), (3000, 16), (1000, 32), (700, 64)])
def test_lu_panel_kernel_is_the_same_for_any_thread_count(m, nb):
    """``lu_panel_threads`` picks the threads by height: the outputs must not depend on it
    (every entry sees the same operations, the pivot search the same order), ties included."""
    a = np.random.default_rng(m + nb).standard_normal((2, m, nb)).astype(np.float32)
    a[1] = np.round(a[1])  # many exact ties in the pivot search
    outputs = []
    for threads in (256, 512, 768, 1024):
        launch = blocked_panel.panel_launch("lu_panel", a.shape, threads)
        inputs = blocked_panel.lu_panel_inputs(mx.array(a))
        packed, piv, perm, _ = _kernels.launch("lu_panel", inputs, **launch)
        outputs.append([np.asarray(x) for x in (packed, piv, perm)])
    for output in outputs[1:]:
        for x, y in zip(output, outputs[0], strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("m, nb", [(16, 16), (513, 16), (2000, 11), (4096, 16), (4096, 8)])
def test_leaf_kernel_is_lu_panel_bit_for_bit(m, nb):
    """The register-held leaf kernel (``lu_leaf_registers``, which ``lu_panel_kernel_pivots``
    takes up to LEAF_MAX_ROWS rows) launches at each rows-per-thread class and gives the
    ``lu_panel`` kernel's outputs bit for bit, reading the panel in place from a wider
    array: Gaussian, integer (ties in every pivot search) and NaN-column panels."""
    rng = np.random.default_rng(m * nb)
    a = rng.standard_normal((3, m, nb + 5)).astype(np.float32)
    a[1] = np.round(2 * a[1])
    a[2, :, nb // 2] = np.nan
    leaf = blocked_panel.lu_panel_kernel_pivots(mx.array(a), nb)
    launch = blocked_panel.panel_launch("lu_panel", (3, m, nb), blocked_panel.lu_panel_threads(m))
    inputs = blocked_panel.lu_panel_inputs(mx.array(a), nb)
    packed, piv, perm, _ = _kernels.launch("lu_panel", inputs, **launch)
    for x, y in zip(leaf, (packed, perm, piv), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_lu_panel_kernel_reads_left_columns_in_place():
    """A recursive LU leaf: the panel as the first 16 columns of a 4096 x 64 array, read in
    place, gives the outputs of the kernel on those columns copied out, bit for bit."""
    a = np.random.default_rng(9).standard_normal((2, 4096, 64)).astype(np.float32)
    in_place = blocked_panel.lu_panel_kernel_pivots(mx.array(a), 16)
    copied = blocked_panel.lu_panel_kernel_pivots(mx.array(np.ascontiguousarray(a[:, :, :16])))
    for x, y in zip(in_place, copied, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _apply_reflectors(packed: np.ndarray, tau: np.ndarray, x: np.ndarray) -> np.ndarray:
    """H_0 H_1 ⋯ H_{k-1} x (float64) for a packed (m, nb) panel and tau: O(m nb K) flops."""
    m, nb = packed.shape
    y = x.astype(np.float64).copy()
    for j in reversed(range(min(m, nb))):
        v = packed[j:, j].astype(np.float64).copy()
        v[0] = 1.0
        y[j:] -= tau[j] * np.outer(v, v @ y[j:])
    return y


@pytest.mark.parametrize(
    "m, nb", [(1, 1), (65, 64), (300, 5), (1000, 128), (5000, 64), (4096, 200), (16384, 128)]
)
def test_qr_panel_kernel_matches_reference(rng, m, nb):
    """The ``qr_panel`` kernel against the MLX-op loop it replaces (Gaussian, graded and
    zero-column panels entrywise to rounding), Q R = A and orthonormal Q columns to
    DESIGN.md's QR threshold (rows scaled by 2^±30 included), NaN in its own panel."""
    a = rng.standard_normal((5, m, nb))
    a[1] *= np.logspace(0, 6, nb)[None, :]
    a[2, :, nb // 2] = 0.0
    a[3] *= 2.0 ** rng.integers(-30, 30, (m, 1))
    a[4, m // 2, (nb - 1) // 2] = np.nan
    a32 = a.astype(np.float32)
    packed, tau = (np.asarray(x) for x in blocked_panel.qr_panel_kernel(mx.array(a32)))
    ref_packed, ref_tau = (np.asarray(x) for x in blocked_panel.qr_panel(mx.array(a32)))
    for b in range(3):
        scale = np.abs(ref_packed[b]).max(axis=0, keepdims=True)
        assert np.all(np.abs(packed[b] - ref_packed[b]) <= AGREE * np.sqrt(m) * U32 * scale)
        assert np.all(np.abs(tau[b] - ref_tau[b]) <= AGREE * np.sqrt(m) * U32 * 2)
    k = min(m, nb)
    for b in range(4):
        r = np.zeros((m, nb))
        r[:k] = np.triu(packed[b][:k].astype(np.float64))
        a64 = a32[b].astype(np.float64)
        assert ratio(a64 - _apply_reflectors(packed[b], tau[b], r), m * norm(a64), U32) <= QR_RATIO
        q = _apply_reflectors(packed[b], tau[b], np.eye(m, k))
        assert ratio(np.eye(k) - q.T @ q, m, U32) <= QR_RATIO
    assert np.isnan(packed[4]).any() and np.all(np.isfinite(packed[:4]))


@pytest.mark.parametrize("blocks", [blocked_common.KERNELS, REFERENCE], ids=["kernels", "ref"])
def test_lu_factor_tall_matches_lapack(rng, blocks):
    """A tall (m > n) lu_factor: LAPACK's pivots (from the panels' own pivots with the
    kernels, replayed with the references) and SciPy's packed factors, rows below n
    included (P·A = L·U for the P of its own pivots)."""
    m, n = 700, 300
    a = rng.standard_normal((2, m, n)).astype(np.float32)
    (packed, piv), _ = blocked_lu.lu_factor(mx.array(a), blocks=blocks)
    lapack = [scipy.linalg.lu_factor(x.astype(np.float64)) for x in a]
    np.testing.assert_array_equal(np.asarray(piv), np.stack([p for _, p in lapack]))
    expected = np.stack([f for f, _ in lapack])
    assert (
        np.max(np.abs(as64(packed) - expected)) <= AGREE * np.sqrt(m) * U32 * np.abs(expected).max()
    )


@pytest.mark.parametrize("n", SIZES)
def test_lu_solve_inv(rng, n):
    a = _well_conditioned(rng, (2, n, n))
    am = _f32(a)
    a32 = as64(am)
    (packed, piv), _ = blocked_lu.lu_factor(am)
    pk = as64(packed)
    lower = np.tril(pk, -1) + np.eye(n)
    upper = np.triu(pk)
    pv = np.asarray(piv)
    perm = np.stack([replay_pivots(p, n) for p in pv])
    pa = np.take_along_axis(a32, perm[..., None], axis=1)
    assert ratio(pa - lower @ upper, n * norm(a32), U32) <= LU_RATIO
    b = rng.standard_normal((2, n, 3))
    bm = _f32(b)
    (x,), failed = blocked_lu.solve(am, bm)
    assert not np.any(np.asarray(failed))
    xs = as64(x)
    assert ratio(as64(bm) - a32 @ xs, norm(a32) * norm(xs), U32) <= SOLVE_RATIO
    expected = np.linalg.solve(a32, as64(bm))
    kappa = np.max(np.linalg.cond(a32))
    assert np.max(norm(xs - expected) / norm(expected)) <= FORWARD * np.sqrt(n) * kappa * U32
    for trans in (0, 1):
        (x,), _ = blocked_lu.lu_solve(packed, piv, bm, trans=trans)
        op = a32 if trans == 0 else np.swapaxes(a32, -1, -2)
        xs = as64(x)
        assert ratio(as64(bm) - op @ xs, norm(op) * norm(xs), U32) <= SOLVE_RATIO
    if n <= 513:
        (ai,), _ = blocked_lu.inv(am)
        ai = as64(ai)
        assert ratio(np.eye(n) - ai @ a32, n * norm(a32) * norm(ai), U32) <= INV_RATIO
        expected_piv = np.stack([scipy.linalg.lu_factor(m)[1] for m in a32])
        np.testing.assert_array_equal(pv, expected_piv)


@pytest.mark.parametrize("trans", [0, 1])
def test_solve_triangular_many_rhs(rng, trans):
    n = 1000
    t = np.tril(rng.standard_normal((1, n, n)) / np.sqrt(n)) + np.eye(n) * 1.5
    b = rng.standard_normal((1, n, n))
    (x,), failed = blocked_triangular.solve_triangular(
        _f32(t), _f32(b), lower=True, unit_diagonal=False, trans=trans
    )
    assert not np.any(np.asarray(failed))
    op = as64(_f32(t))
    op = np.swapaxes(op, -1, -2) if trans else op
    xs = as64(x)
    assert ratio(as64(_f32(b)) - op @ xs, norm(op) * norm(xs), U32) <= SOLVE_RATIO


@pytest.mark.parametrize(("m", "n"), [(65, 65), (300, 200), (200, 300), (2048, 2048)])
def test_qr(rng, m, n):
    am = _f32(rng.standard_normal((1, m, n)))
    (q, r), failed = blocked_qr.qr(am, mode="reduced")
    assert not np.any(np.asarray(failed))
    qs, rs, a = as64(q), as64(r), as64(am)
    k = min(m, n)
    factor = norm(a - qs @ rs) / norm(a)
    orthogonality = norm(np.eye(k) - np.swapaxes(qs, -1, -2) @ qs)
    assert max(np.max(factor) / (m * U32), np.max(orthogonality) / (m * U32)) <= QR_RATIO
    # Sharper than the ratio, which at n = 2048 would pass TF32-level error (3e-4).
    assert np.max(factor) <= QR_BACKWARD * np.sqrt(m) * U32
    assert np.max(orthogonality) <= ORTHOGONALITY * k * U32


def test_failures_stay_in_their_matrix(rng):
    n = 130
    a = _spd(rng, (4, n, n))
    a[1, 100, 100] = -5.0
    a[2, 3, 3] = np.nan
    (factor,), failed = blocked_cholesky.cholesky(_f32(a), upper=False)
    np.testing.assert_array_equal(np.asarray(failed), [False, True, True, False])
    f = as64(factor)
    assert np.all(np.isnan(f[1:3])) and np.all(np.isfinite(f[[0, 3]]))
    g = _well_conditioned(rng, (3, n, n))
    g[1, :, 90] = 0.0
    (x,), failed = blocked_lu.solve(_f32(g), _f32(np.ones((3, n, 2))))
    np.testing.assert_array_equal(np.asarray(failed), [False, True, False])
    xs = as64(x)
    assert np.all(np.isnan(xs[1])) and np.all(np.isfinite(xs[[0, 2]]))


def test_lazy_under_compile(rng):
    n = 70  # two block columns: small enough to trace quickly
    _precision.reduced_precision()  # the once-per-process probe evaluates: do it first
    a = _f32(_spd(rng, (2, n, n)))
    b = _f32(rng.standard_normal((2, n, 2)))

    def factor_and_solve(a, b):
        (c,), failed = blocked_cholesky.cholesky(a, upper=False)
        (x,), _ = blocked_triangular.cho_solve(c, b, lower=True)
        (y,), _ = blocked_lu.solve(a, b)
        return x, y, failed

    x, y, failed = mx.compile(factor_and_solve)(a, b)
    assert not np.any(np.asarray(failed))
    expected = np.linalg.solve(as64(a), as64(b))
    np.testing.assert_allclose(as64(x), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(as64(y), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", [50, 300])
def test_rules_after_the_small_ones(rng, monkeypatch, n):
    """blocked_rules.RULES in place of the dispatched ones (which start at the measured
    crossovers): n = 50 still takes the small-matrix kernels, n = 300 the blocked graphs;
    the public functions are right."""
    used = set()
    for op, (applies, impl) in blocked_rules.RULES.items():

        def traced(*args, _op=op, _impl=impl, **kwargs):
            used.add(_op)
            return _impl(*args, **kwargs)

        small_rules = _dispatch.GPU_RULES[op][:-1]  # the dispatched blocked rule comes last
        rules = [*small_rules, (applies, traced)]
        monkeypatch.setitem(_dispatch.GPU_RULES, op, rules)
    a = _well_conditioned(rng, (2, n, n))
    spd = _spd(rng, (2, n, n))
    b = rng.standard_normal((2, n, 3))
    am, sm, bm = _f32(a), _f32(spd), _f32(b)
    a32, s32, b32 = as64(am), as64(sm), as64(bm)
    factor = la.cholesky(sm)
    f = as64(factor)
    assert ratio(f @ np.swapaxes(f, -1, -2) - s32, n * norm(s32), U32) <= CHOLESKY_RATIO
    x = as64(la.cho_solve((factor, True), bm))
    assert ratio(b32 - s32 @ x, norm(s32) * norm(x), U32) <= SOLVE_RATIO
    x = as64(la.solve(am, bm))
    assert ratio(b32 - a32 @ x, norm(a32) * norm(x), U32) <= SOLVE_RATIO
    inverse = as64(la.inv(am))
    assert ratio(np.eye(n) - inverse @ a32, n * norm(a32) * norm(inverse), U32) <= INV_RATIO
    half = as64(_f32(a / 2))  # |det| well inside float32's range
    np.testing.assert_allclose(as64(la.det(_f32(a / 2))), np.linalg.det(half), rtol=n * 1e-5)
    sign, logabs = la.slogdet(am)
    np.testing.assert_array_equal(np.asarray(sign), np.linalg.slogdet(a32)[0])
    np.testing.assert_allclose(as64(logabs), np.linalg.slogdet(a32)[1], rtol=0, atol=n * 1e-5)
    packed, piv = la.lu_factor(am)
    x = as64(la.lu_solve((packed, piv), bm, trans=1))
    at = np.swapaxes(a32, -1, -2)
    assert ratio(b32 - at @ x, norm(at) * norm(x), U32) <= SOLVE_RATIO
    p, lower, upper = la.lu(am)
    rebuilt = as64(p) @ as64(lower) @ as64(upper)
    assert ratio(rebuilt - a32, n * norm(a32), U32) <= LU_RATIO
    t = np.triu(a32)
    x = as64(la.solve_triangular(_f32(t), bm))
    assert ratio(b32 - t @ x, norm(t) * norm(x), U32) <= SOLVE_RATIO
    q, r = la.qr(am)
    q, r = as64(q), as64(r)
    assert ratio(a32 - q @ r, n * norm(a32), U32) <= QR_RATIO
    assert used == (set(blocked_rules.RULES) if n > 64 else set())
