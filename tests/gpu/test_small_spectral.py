"""GPU tests of the batched small-matrix kernels qr_small, jacobi_eigh and jacobi_svd, and
of the register kernels jacobi_eigh_simd and jacobi_svd_simd (sizes <= ss.SIMD_MAX).

Each kernel is compared with its MLX-op reference (``mlx_linalg._gpu.reference_spectral``,
run on the CPU stream) over many shapes, and the public functions running through the
kernels are held to DESIGN.md's accuracy thresholds in float64, on Gaussian, graded,
rank-deficient and clustered inputs; NaN/Inf must stay in their own matrix.
"""

import mlx.core as mx
import numpy as np
import pytest
from matrices import symmetric_from_lower

import mlx_linalg as la
from mlx_linalg import _dispatch, _kernels
from mlx_linalg._gpu import reference_spectral as ref
from mlx_linalg._gpu import scaling
from mlx_linalg._gpu import small_spectral as ss

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
QR_RATIO = 30
EIGH_RATIO = 60
SVD_RATIO = 50
BATCH = 5


def _fro(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(x, dtype=np.float64), axis=(-2, -1))


def _gaussian(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _graded(batch: int, m: int, n: int, cond: float, seed: int) -> np.ndarray:
    """Matrices with singular values logspaced over 1 .. 1/cond and random vectors."""
    rng = np.random.default_rng(seed)
    k = min(m, n)
    out = []
    for _ in range(batch):
        u, _ = np.linalg.qr(rng.standard_normal((m, m)))
        v, _ = np.linalg.qr(rng.standard_normal((n, n)))
        out.append((u[:, :k] * np.logspace(0, -np.log10(cond), k)) @ v[:k, :])
    return np.array(out, dtype=np.float32)


def _on_cpu(fn, *args, **kwargs):
    with mx.stream(mx.cpu):
        out = fn(*args, **kwargs)
        mx.eval(out)
    return out


def _scaled(a: np.ndarray) -> mx.array:
    scaled, _, _ = scaling.prescale(mx.array(a))
    return scaled


def _unscaled(x: mx.array, a: np.ndarray) -> np.ndarray:
    """Kernel results x (B, K) of ``_scaled(a)`` in a's scale."""
    return np.array(scaling.times_power_of_two(x, scaling.prescale(mx.array(a))[1]))


# ---------------------------------------------------------------------------------------
# Metrics (DESIGN.md), in float64.


def _qr_ratio(a, q, r) -> float:
    a, q, r = (np.asarray(x, dtype=np.float64) for x in (a, q, r))
    m = a.shape[-2]
    eye = np.eye(q.shape[-1])
    resid = _fro(a - q @ r) / (m * _fro(a) * U32)
    orth = _fro(eye - np.swapaxes(q, -1, -2) @ q) / (m * U32)
    return float(np.max(np.maximum(np.nan_to_num(resid), orth)))


def _eigh_ratios(a, w, v) -> tuple[float, float]:
    a, w, v = (np.asarray(x, dtype=np.float64) for x in (a, w, v))
    n = a.shape[-1]
    norm_a = np.where(_fro(a) == 0, 1, _fro(a))
    resid = _fro(a @ v - v * w[..., None, :]) / (n * norm_a * U32)
    orth = _fro(np.eye(n) - np.swapaxes(v, -1, -2) @ v) / (n * U32)
    return float(resid.max()), float(orth.max())


def _svd_ratios(a, u, s, vh) -> tuple[float, float, float]:
    a, u, s, vh = (np.asarray(x, dtype=np.float64) for x in (a, u, s, vh))
    m, n = a.shape[-2:]
    k = min(m, n)
    norm_a = np.where(_fro(a) == 0, 1, _fro(a))
    rebuilt = (u[..., :, :k] * s[..., None, :]) @ vh[..., :k, :]
    resid = _fro(a - rebuilt) / (max(m, n) * norm_a * U32)
    orth_u = _fro(np.eye(u.shape[-1]) - np.swapaxes(u, -1, -2) @ u) / (m * U32)
    orth_v = _fro(np.eye(vh.shape[-2]) - vh @ np.swapaxes(vh, -1, -2)) / (n * U32)
    return float(resid.max()), float(orth_u.max()), float(orth_v.max())


def _check_svd(a: np.ndarray, full: bool) -> None:
    u, s, vh = la.svd(mx.array(a), full_matrices=full, stream=mx.gpu)
    u, s, vh = np.array(u), np.array(s), np.array(vh)
    m, n = a.shape[-2:]
    k = min(m, n)
    assert u.shape == a.shape[:-2] + ((m, m) if full else (m, k))
    assert vh.shape == a.shape[:-2] + ((n, n) if full else (k, n))
    assert np.all(s >= 0) and np.all(np.diff(s, axis=-1) <= 0)
    resid, orth_u, orth_v = _svd_ratios(a, u, s, vh)
    assert max(resid, orth_u, orth_v) <= SVD_RATIO, (resid, orth_u, orth_v)
    exact = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    err = np.abs(s - exact).max(axis=-1) / np.maximum(_fro(a), 1e-300)
    assert float(err.max()) <= SVD_RATIO * max(m, n) * U32


def _check_eigh(a: np.ndarray) -> None:
    w, v = la.eigh(mx.array(a), stream=mx.gpu)
    w, v = np.array(w), np.array(v)
    sym = symmetric_from_lower(a)
    assert np.all(np.diff(w, axis=-1) >= 0)
    resid, orth = _eigh_ratios(sym, w, v)
    assert max(resid, orth) <= EIGH_RATIO, (resid, orth)
    exact = np.linalg.eigvalsh(sym.astype(np.float64))
    n = a.shape[-1]
    err = np.abs(w - exact).max(axis=-1) / np.maximum(_fro(sym), 1e-300)
    assert float(err.max()) <= EIGH_RATIO * n * U32
    w_only = np.array(la.eigvalsh(mx.array(a), stream=mx.gpu))
    assert float((np.abs(w_only - exact).max(axis=-1) / np.maximum(_fro(sym), 1e-300)).max()) \
        <= EIGH_RATIO * n * U32


# ---------------------------------------------------------------------------------------
# Kernel vs reference, many shapes.

QR_SHAPES = [(1, 1), (4, 3), (3, 4), (8, 8), (17, 9), (32, 32), (33, 20), (64, 64), (20, 64),
             (128, 16)]


@pytest.mark.parametrize("shape", QR_SHAPES)
@pytest.mark.parametrize("complete", [False, True])
def test_qr_kernel_matches_reference(shape, complete):
    m, n = shape
    a = _gaussian((BATCH, m, n), seed=m * 131 + n)
    scaled = _scaled(a)
    qt, r = ss.qr_small(scaled, complete=complete)
    qt_ref, r_ref = _on_cpu(ref.qr_small, scaled, complete=complete)
    assert qt.shape == qt_ref.shape and r.shape == r_ref.shape
    np.testing.assert_allclose(np.array(qt), np.array(qt_ref), atol=2e-3)
    np.testing.assert_allclose(np.array(r), np.array(r_ref), atol=2e-3 * max(m, n))
    q, rr = la.qr(mx.array(a), mode="complete" if complete else "reduced", stream=mx.gpu)
    rr = np.array(rr)
    assert np.all(np.tril(rr, -1) == 0)
    assert _qr_ratio(a, q, rr) <= QR_RATIO


@pytest.mark.parametrize("batch, m, n", [(10000, 32, 32), (2000, 64, 64), (4000, 128, 32)])
def test_qr_kernel_large_stacks_match_one_simdgroup_per_column(batch, m, n):
    """Large stacks take fewer simdgroups per matrix (``ss.qr_groups``): Q and R must be the
    same bit for bit as with one simdgroup per column (16)."""
    k = min(m, n)
    assert ss.qr_groups(batch, n, k) < 16
    scaled = _scaled(_gaussian((batch, m, n), seed=batch + m))
    qt, r = ss.qr_small(scaled, complete=False)
    one_per_column = ss.qr_small_launch(scaled.shape, complete=False, groups=16)
    expected = _kernels.launch("qr_small", [scaled], **one_per_column)
    np.testing.assert_array_equal(np.asarray(qt), np.asarray(expected[0]))
    np.testing.assert_array_equal(np.asarray(r), np.asarray(expected[1]))


@pytest.mark.parametrize(
    "batch, rows, height, n", [(1, 4000, 128, 32), (3, 1000, 96, 32), (2, 44, 16, 8)]
)
def test_qr_kernel_reads_rows_past_the_end_as_zeros(batch, rows, height, n):
    """A (B, R, N) array factored as B·⌈R / height⌉ matrices of ``height`` rows (TSQR's
    leaves without a padded copy): Q and R the same bit for bit as of the zero-padded stack."""
    a = _scaled(_gaussian((batch, rows, n), seed=rows + n))
    leaves = -(-rows // height)
    padded = mx.pad(a, [(0, 0), (0, leaves * height - rows), (0, 0)])
    stack = padded.reshape(batch * leaves, height, n)
    qt, r = ss.qr_small(a, complete=False, height=height)
    expected = ss.qr_small(stack, complete=False)
    np.testing.assert_array_equal(np.asarray(qt), np.asarray(expected[0]))
    np.testing.assert_array_equal(np.asarray(r), np.asarray(expected[1]))


EIGH_SIZES = [1, 2, 3, 7, 16, 32, 33, 64]


@pytest.mark.parametrize("n", EIGH_SIZES)
def test_eigh_kernel_matches_reference(n):
    a = _gaussian((BATCH, n, n), seed=7 * n)
    a_upper_garbage = a + np.triu(np.full((n, n), 1e3, dtype=np.float32), 1)
    scaled = _scaled(np.tril(a))
    w, vt, info = ss.jacobi_eigh(scaled, want_v=True)
    w_ref, _, info_ref = _on_cpu(ref.jacobi_eigh, scaled, want_v=True,
                                 max_sweeps=ss.MAX_SWEEPS)
    info = np.array(info)
    assert np.all(info > 0) and np.all(np.abs(info - np.array(info_ref)) <= 2)
    scale = float(np.abs(np.array(w_ref)).max()) + 1
    np.testing.assert_allclose(np.array(w), np.array(w_ref), atol=EIGH_RATIO * n * U32 * scale)
    _check_eigh(a_upper_garbage)


SIMD_SIZES = [1, 2, 3, 5, 8, 16, 17, 31, 32]


@pytest.mark.parametrize("n", SIMD_SIZES)
def test_eigh_simd_kernel_matches_reference(n):
    """The register kernel on raw input (in-kernel scaling, garbage above the diagonal, a
    NaN in the lower triangle of one matrix) against its MLX-op reference and LAPACK."""
    a = _gaussian((BATCH, n, n), seed=11 * n) * np.float32(1e-3)
    a = a + np.triu(np.full((n, n), np.inf, dtype=np.float32), 1)
    a[2, n - 1, 0] = np.nan
    x = mx.array(a)
    w, v, info = ss.jacobi_eigh_simd(x, want_v=True)
    w_ref, v_ref, info_ref = _on_cpu(ref.jacobi_eigh_simd, x, want_v=True,
                                     max_sweeps=ss.MAX_SWEEPS)
    w, v, info = np.array(w), np.array(v), np.array(info)
    assert np.all(np.isnan(w[2])) and np.all(np.isnan(v[2])) and info[2] == 0
    good = [0, 1, 3, 4]
    assert np.all(info[good] > 0) and np.all(np.abs(info - np.array(info_ref)) <= 2)
    sym = symmetric_from_lower(np.where(np.isfinite(a), a, 0))[good]
    scale = float(np.abs(np.array(w_ref)[good]).max()) + 1e-30
    np.testing.assert_allclose(w[good], np.array(w_ref)[good], rtol=0,
                               atol=EIGH_RATIO * n * U32 * scale)
    resid, orth = _eigh_ratios(sym, w[good], v[good])
    assert max(resid, orth) <= EIGH_RATIO, (resid, orth)
    w_only, _, _ = ss.jacobi_eigh_simd(x, want_v=False)
    np.testing.assert_allclose(np.array(w_only)[good], w[good], rtol=0,
                               atol=EIGH_RATIO * n * U32 * scale)
    # The public functions go through this kernel for n <= SIMD_MAX (bitwise the same).
    w_pub, v_pub = la.eigh(x, stream=mx.gpu)
    np.testing.assert_array_equal(np.array(w_pub), w)
    np.testing.assert_array_equal(np.array(v_pub), v)


def test_eigh_above_simd_max_uses_the_threadgroup_kernel():
    n = ss.SIMD_MAX + 1
    a = symmetric_from_lower(_gaussian((3, n, n), seed=4))
    w, _ = la.eigh(mx.array(a), stream=mx.gpu)
    w_old, _, _ = ss.jacobi_eigh(_scaled(np.tril(a)), want_v=False)
    np.testing.assert_allclose(np.array(w), _unscaled(w_old, np.tril(a)), rtol=0,
                               atol=EIGH_RATIO * n * U32 * float(np.abs(np.array(w)).max()))


SVD_SHAPES = [(1, 1), (5, 3), (3, 5), (8, 8), (32, 32), (40, 17), (17, 40), (64, 64),
              (128, 32), (2, 64)]


@pytest.mark.parametrize("shape", SVD_SHAPES)
@pytest.mark.parametrize("full", [False, True])
def test_svd_kernel_matches_reference(shape, full):
    m, n = shape
    a = _gaussian((BATCH, m, n), seed=m * 17 + n)
    tall = a if m >= n else np.swapaxes(a, -1, -2).copy()
    scaled = _scaled(tall)
    _, s, _, info = ss.jacobi_svd(scaled, full=full, want_uv=True)
    _, s_ref, _, info_ref = _on_cpu(ref.jacobi_svd, scaled, full=full, want_uv=True,
                                    max_sweeps=ss.MAX_SWEEPS)
    info = np.array(info)
    assert np.all(info > 0) and np.all(np.abs(info - np.array(info_ref)) <= 2)
    np.testing.assert_allclose(np.array(s), np.array(s_ref),
                               atol=SVD_RATIO * max(m, n) * U32 * float(np.array(s_ref).max()))
    _check_svd(a, full)
    s_only = np.array(la.svdvals(mx.array(a), stream=mx.gpu))
    np.testing.assert_allclose(s_only, np.array(la.svd(mx.array(a), stream=mx.gpu)[1]),
                               atol=SVD_RATIO * max(m, n) * U32 * float(s_only.max()))


SIMD_SVD_SHAPES = [(1, 1), (5, 3), (3, 5), (8, 8), (17, 17), (32, 32), (32, 9), (9, 32),
                   (31, 2)]


@pytest.mark.parametrize("shape", SIMD_SVD_SHAPES)
@pytest.mark.parametrize("full", [False, True])
def test_svd_simd_kernel_matches_reference(shape, full):
    """The register SVD kernel on raw input (in-kernel scaling and transposition of wide
    input, a NaN in one matrix) against its MLX-op reference and LAPACK."""
    m, n = shape
    a = _gaussian((BATCH, m, n), seed=m * 19 + n) * np.float32(1e4)
    a[1, m - 1, n - 1] = np.nan
    x = mx.array(a)
    u, s, vh, info = ss.jacobi_svd_simd(x, full=full, want_uv=True)
    _, s_ref, _, info_ref = _on_cpu(ref.jacobi_svd_simd, x, full=full, want_uv=True,
                                    max_sweeps=ss.MAX_SWEEPS)
    u, s, vh, info = np.array(u), np.array(s), np.array(vh), np.array(info)
    for out in (u, s, vh):
        assert np.all(np.isnan(out[1]))
    assert info[1] == 0
    good = [0, 2, 3, 4]
    assert np.all(info[good] > 0) and np.all(np.abs(info - np.array(info_ref)) <= 2)
    np.testing.assert_allclose(s[good], np.array(s_ref)[good], rtol=0,
                               atol=SVD_RATIO * max(m, n) * U32 * float(s[good].max()))
    _check_svd(a[good], full)
    u_pub, s_pub, vh_pub = la.svd(x, full_matrices=full, stream=mx.gpu)
    np.testing.assert_array_equal(np.array(u_pub), u)
    np.testing.assert_array_equal(np.array(s_pub), s)
    np.testing.assert_array_equal(np.array(vh_pub), vh)
    s_only = np.array(la.svdvals(x, stream=mx.gpu))
    np.testing.assert_allclose(s_only[good], s[good], rtol=0,
                               atol=SVD_RATIO * max(m, n) * U32 * float(s[good].max()))


def test_svd_above_simd_max_uses_the_threadgroup_kernel():
    m, n = ss.SIMD_MAX + 1, 8
    a = _gaussian((3, m, n), seed=6)
    s = np.array(la.svdvals(mx.array(a), stream=mx.gpu))
    _, s_old, _, _ = ss.jacobi_svd(_scaled(a), full=False, want_uv=False)
    np.testing.assert_allclose(s, _unscaled(s_old, a), rtol=0,
                               atol=SVD_RATIO * m * U32 * float(s.max()))


# ---------------------------------------------------------------------------------------
# Hard inputs.


@pytest.mark.parametrize("n", [32, 64])
@pytest.mark.parametrize("cond", [1e0, 1e3, 1e7])
def test_graded_condition(n, cond):
    a = _graded(4, n, n, cond, seed=int(n + cond) % 1000)
    _check_svd(a, full=False)
    q, r = la.qr(mx.array(a), stream=mx.gpu)
    assert _qr_ratio(a, q, r) <= QR_RATIO
    sym = a @ np.swapaxes(a, -1, -2) - 0.5 * np.eye(n, dtype=np.float32)
    _check_eigh(sym.astype(np.float32))


@pytest.mark.parametrize("shape", [(32, 32), (64, 64), (48, 20), (20, 48)])
def test_rank_deficient(shape):
    m, n = shape
    rng = np.random.default_rng(m + n)
    low_rank = (rng.standard_normal((3, m, 4)) @ rng.standard_normal((3, 4, n))).astype(
        np.float32)
    zero_col = _gaussian((1, m, n), seed=3)
    zero_col[..., :, n // 2] = 0
    zeros = np.zeros((1, m, n), dtype=np.float32)
    a = np.concatenate([low_rank, zero_col, zeros])
    for full in (False, True):
        _check_svd(a, full)
    q, r = la.qr(mx.array(a), mode="complete", stream=mx.gpu)
    assert _qr_ratio(a, q, r) <= QR_RATIO
    if m == n:
        _check_eigh(a @ np.swapaxes(a, -1, -2))


@pytest.mark.parametrize("n", [16, 64])
def test_clustered_spectrum(n):
    rng = np.random.default_rng(n)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.repeat([-1.0, 1e-6, 2.0], [n // 4, n // 2, n - n // 4 - n // 2])
    sym = ((q * lam) @ q.T).astype(np.float32)
    eye = np.eye(n, dtype=np.float32)
    _check_eigh(np.stack([sym, eye, 3 * eye, np.zeros_like(eye)]))
    _check_svd(np.stack([sym, eye, q.astype(np.float32)]), full=True)


def test_nonfinite_stays_in_its_matrix():
    a = _gaussian((4, 16, 16), seed=11)
    a[1, 5, 3] = np.nan  # lower triangle: eigh reads only that one
    a[2, 0, 0] = np.inf
    x = mx.array(a)
    q, r = la.qr(x, stream=mx.gpu)
    u, s, vh = la.svd(x, stream=mx.gpu)
    w, v = la.eigh(x, stream=mx.gpu)
    for out in (q, r, u, s, vh, w, v):
        out = np.array(out)
        assert np.all(np.isnan(out[1])) and np.all(np.isnan(out[2]))
        assert np.all(np.isfinite(out[0])) and np.all(np.isfinite(out[3]))
    good = a[[0, 3]]
    assert _qr_ratio(good, np.array(q)[[0, 3]], np.array(r)[[0, 3]]) <= QR_RATIO


def test_batch_shapes_match_a_loop():
    a = _gaussian((2, 3, 9, 6), seed=5)
    x = mx.array(a)
    u, s, vh = la.svd(x, full_matrices=False, stream=mx.gpu)
    q, r = la.qr(x, stream=mx.gpu)
    assert u.shape == (2, 3, 9, 6) and s.shape == (2, 3, 6) and q.shape == (2, 3, 9, 6)
    for i in range(2):
        for j in range(3):
            s1 = la.svdvals(mx.array(a[i, j]), stream=mx.gpu)
            np.testing.assert_allclose(np.array(s)[i, j], np.array(s1), rtol=1e-5, atol=1e-6)
            r1 = la.qr(mx.array(a[i, j]), stream=mx.gpu)[1]
            np.testing.assert_allclose(np.array(r)[i, j], np.array(r1), rtol=1e-5, atol=1e-5)


def test_dispatch_picks_the_kernels():
    """stream=None: the GPU default device (the fixture of tests/gpu/conftest.py), so the
    implementation is returned as it is, not wrapped to run on a given stream."""
    x = mx.zeros((3, 8, 8))
    assert _dispatch.implementation("qr", None, x, mode="reduced") is ss.qr
    assert _dispatch.implementation("eigh", None, x) is ss.eigh
    assert _dispatch.implementation("eigvalsh", None, x) is ss.eigvalsh
    assert _dispatch.implementation("svd", None, x, full_matrices=True) is ss.svd
    assert _dispatch.implementation("svdvals", None, x) is ss.svdvals
    big = mx.zeros((2, 65, 65))
    assert _dispatch.implementation("eigh", None, big) is not ss.eigh
    assert _dispatch.implementation("qr", mx.cpu, x, mode="reduced") is not ss.qr
