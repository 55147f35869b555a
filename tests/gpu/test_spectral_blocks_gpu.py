"""GPU tests of the spectral building blocks: QDWH and Newton–Schulz polar decompositions
(mlx_linalg._gpu.polar), tall-skinny CholeskyQR2 / shifted CholeskyQR3 with the
Householder fallback (mlx_linalg._gpu.tall_skinny) and QDWH-eig / QDWH-SVD
(mlx_linalg._gpu.spectral_dc, Jacobi kernel base case), with the blocked GPU factorizations
and the small-matrix kernels as building blocks (``tall_skinny.KERNELS``).

The checks of tests/test_spectral_blocks.py, on the GPU with MLX's default TF32 setting
(``MLX_ENABLE_TF32`` unset: every product must still be float32-accurate through
``mlx_linalg._precision.matmul``), at sizes where a TF32-level error (about 3e-4) is far
above the guards: DESIGN.md's metrics, SciPy float64 forward errors, the 10x-float32-LAPACK
guard, agreement with the same graph run on the CPU, NaN isolation and laziness under
``mx.compile``. Run by tools/gpu-check.sh. Not yet run on a GPU.
"""

import math

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from matrices import EIGH_RATIO, QR_RATIO, SVD_RATIO, as64, graded_stack, norm, ratio

from mlx_linalg import _precision
from mlx_linalg._gpu import polar, spectral_dc, tall_skinny

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
POLAR_RATIO = SVD_RATIO
FORWARD = 10
H_FORWARD = 50
VS_LAPACK = 10
FLOOR = 1.0
# The same graph on the GPU and on the CPU (tall_skinny.LAPACK on the CPU stream): different
# rounding, so U agrees to about κ·u; in units of √n·κ·u.
AGREE = 10


def _graded(rng, batch, m, n, cond) -> np.ndarray:
    return graded_stack(rng, batch, m, n, cond).astype(np.float32)


def _orthogonality(u: np.ndarray) -> np.ndarray:
    t = u if u.shape[-2] >= u.shape[-1] else np.swapaxes(u, -1, -2)
    return np.swapaxes(t, -1, -2) @ t - np.eye(t.shape[-1])


def _polar_ratios(a, u, h):
    big = max(a.shape[-2:])
    return ratio(a - u @ h, big * norm(a), U32), ratio(_orthogonality(u), big, U32)


def test_precision_mode_reported():
    """Records whether this GPU multiplies float32 in reduced precision (TF32): the other
    tests must pass either way."""
    reduced = _precision.reduced_precision(mx.gpu)
    print(f"reduced-precision float32 matmul on this GPU: {reduced}")
    assert isinstance(reduced, bool)


@pytest.mark.parametrize("shape", [(64, 64), (300, 200), (200, 300), (1024, 1024), (4096, 256)])
@pytest.mark.parametrize("cond", [1.0, 1e3, 1e7])
def test_qdwh_gpu(shape, cond):
    rng = np.random.default_rng(hash((shape, cond)) % 2**32)
    batch = 2 if max(shape) <= 1024 else 1
    a = _graded(rng, batch, *shape, cond)
    u, h, info = polar.qdwh(mx.array(a), tall_skinny.KERNELS)
    un, hn = as64(u), as64(h)
    back, orth = _polar_ratios(a.astype(np.float64), un, hn)
    assert back <= POLAR_RATIO and orth <= POLAR_RATIO
    assert np.all(np.asarray(info) > 0)
    ref = [scipy.linalg.polar(x.astype(np.float64)) for x in a]
    u_ref = np.array([r[0] for r in ref])
    h_ref = np.array([r[1] for r in ref])
    assert np.all(norm(hn - h_ref) <= H_FORWARD * math.sqrt(max(shape)) * U32 * norm(h_ref))
    k = min(shape)
    assert np.all(norm(un - u_ref) <= FORWARD * k * cond * U32)
    if max(shape) <= 1024:
        lapack = [scipy.linalg.polar(x) for x in a]
        lb, lo = _polar_ratios(
            a.astype(np.float64), np.array([p[0] for p in lapack]), np.array([p[1] for p in lapack])
        )
        assert back <= VS_LAPACK * max(lb, FLOOR) and orth <= VS_LAPACK * max(lo, FLOOR)


def test_qdwh_gpu_agrees_with_cpu_graph():
    rng = np.random.default_rng(1)
    a = _graded(rng, 2, 256, 128, 1e3)
    ug, hg, infog = polar.qdwh(mx.array(a), tall_skinny.KERNELS)
    with mx.stream(mx.cpu):
        uc, hc, infoc = polar.qdwh(mx.array(a), tall_skinny.LAPACK)
        mx.eval(uc, hc, infoc)
    assert np.all(norm(as64(ug) - as64(uc)) <= AGREE * math.sqrt(128) * 1e3 * U32 * math.sqrt(128))
    assert np.all(norm(as64(hg) - as64(hc)) <= H_FORWARD * math.sqrt(256) * U32 * norm(as64(hc)))


@pytest.mark.parametrize("n", [128, 1024])
def test_newton_schulz_gpu(n):
    rng = np.random.default_rng(n)
    a = _graded(rng, 2, n, n, 10.0)
    u, h, info = polar.newton_schulz(mx.array(a))
    assert np.all(np.asarray(info) > 0)
    back, orth = _polar_ratios(a.astype(np.float64), as64(u), as64(h))
    assert back <= POLAR_RATIO and orth <= POLAR_RATIO


def test_polar_gpu_nan_isolated():
    rng = np.random.default_rng(2)
    a = _graded(rng, 3, 160, 96, 100.0)
    a[1, 4, 7] = np.nan
    for u, h, info in (
        polar.qdwh(mx.array(a), tall_skinny.KERNELS),
        polar.newton_schulz(mx.array(a)),
    ):
        un, hn, infon = np.asarray(u), np.asarray(h), np.asarray(info)
        assert np.all(np.isnan(un[1])) and np.all(np.isnan(hn[1])) and infon[1] < 0
        assert np.all(np.isfinite(un[[0, 2]])) and np.all(infon[[0, 2]] > 0)


def _qr_ratio(a, q, r):
    m = a.shape[-2]
    return max(ratio(a - q @ r, m * norm(a), U32), ratio(_orthogonality(q), m, U32))


@pytest.mark.parametrize("method", tall_skinny.METHODS)
@pytest.mark.parametrize("shape", [(65536, 64), (8192, 256), (2048, 512)])
@pytest.mark.parametrize("cond", [1.0, 1e2])
def test_tall_skinny_gpu(method, shape, cond):
    rng = np.random.default_rng(hash((shape, cond)) % 2**32)
    a = _graded(rng, 1, *shape, cond)
    q, r, fell_back = tall_skinny.qr(
        mx.array(a), tall_skinny.KERNELS, method=method, fallback="nan"
    )
    assert not np.any(np.asarray(fell_back))
    got = _qr_ratio(a.astype(np.float64), as64(q), as64(r))
    assert got <= QR_RATIO
    ql, rl = scipy.linalg.qr(a[0], mode="economic")
    lapack = _qr_ratio(
        a.astype(np.float64), ql[None].astype(np.float64), rl[None].astype(np.float64)
    )
    assert got <= VS_LAPACK * max(lapack, FLOOR)


def test_tall_skinny_gpu_fallback():
    rng = np.random.default_rng(3)
    a = np.concatenate(
        [
            _graded(rng, 1, 4096, 64, 10.0),
            _graded(rng, 1, 4096, 64, 1e6),
            _graded(rng, 1, 4096, 64, 10.0),
        ]
    )
    a[2, 0, 0] = np.inf
    q, r, fell_back = tall_skinny.qr(
        mx.array(a), tall_skinny.KERNELS, method="scholqr3", fallback="where"
    )
    assert np.asarray(fell_back).tolist() == [False, True, True]
    qn, rn = as64(q), as64(r)
    assert _qr_ratio(a[:2].astype(np.float64), qn[:2], rn[:2]) <= QR_RATIO
    assert np.all(np.isnan(qn[2]))


def test_gpu_graphs_are_lazy():
    rng = np.random.default_rng(4)
    x = mx.array(_graded(rng, 2, 512, 128, 1e3))
    compiled = mx.compile(lambda y: polar.qdwh(y, tall_skinny.KERNELS))
    u, _, info = compiled(x)
    assert np.all(np.asarray(info) > 0)
    assert ratio(_orthogonality(as64(u)), 512, U32) <= POLAR_RATIO
    compiled = mx.compile(lambda y: tall_skinny.qr(y, tall_skinny.KERNELS, fallback="where"))
    q, _, fell_back = compiled(x)
    assert not np.any(np.asarray(fell_back))
    assert ratio(_orthogonality(as64(q)), 512, U32) <= QR_RATIO


@pytest.mark.slow  # spectral_dc (QDWH-eig/SVD) is not dispatched: 70-220x cuSOLVER
@pytest.mark.parametrize("n", [200, 1024])
@pytest.mark.parametrize("kind", ["gaussian", "clustered"])
def test_qdwh_eigh_gpu(n, kind):
    """QDWH-eig with the blocked kernels for the splits and the Jacobi kernel as base."""
    rng = np.random.default_rng(n)
    if kind == "gaussian":
        g = rng.standard_normal((n, n))
        a = (g + g.T) / 2
    else:
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        w = np.concatenate(
            [np.full(n // 4, 1.0), np.full(n // 2, -2.0), np.full(n - n // 4 - n // 2, 3.0)]
        )
        a = (q * w) @ q.T
    a = a.astype(np.float32)
    stats = {}
    w, v = spectral_dc.eigh(
        mx.array(a), tall_skinny.KERNELS, base=spectral_dc.kernel_eigh, stats=stats
    )
    wn, vn = as64(w), as64(v)
    a64 = a.astype(np.float64)
    resid = ratio(a64 - (vn * wn) @ vn.T, n * norm(a64), U32)
    orth = ratio(vn.T @ vn - np.eye(n), n, U32)
    assert resid <= EIGH_RATIO and orth <= EIGH_RATIO
    w_ref = np.linalg.eigvalsh(a64)
    assert np.max(np.abs(wn - w_ref)) <= FORWARD * n * U32 * np.abs(w_ref).max()
    assert stats["unsplit"] == 0


@pytest.mark.slow  # spectral_dc (QDWH-eig/SVD) is not dispatched: 70-220x cuSOLVER
@pytest.mark.parametrize("shape", [(300, 200), (200, 300), (1024, 1024)])
@pytest.mark.parametrize("kind", ["graded", "rank5"])
def test_qdwh_svd_gpu(shape, kind):
    rng = np.random.default_rng(hash((shape, kind)) % 2**32)
    m, n = shape
    if kind == "graded":
        a = _graded(rng, 1, m, n, 1e7)[0]
    else:
        a = (rng.standard_normal((m, 5)) @ rng.standard_normal((5, n))).astype(np.float32)
    u, s, vh = spectral_dc.svd(mx.array(a), tall_skinny.KERNELS, base=spectral_dc.kernel_eigh)
    un, sn, vhn = as64(u), as64(s), as64(vh)
    a64 = a.astype(np.float64)
    k = min(shape)
    resid = ratio(a64 - (un * sn) @ vhn, max(shape) * norm(a64), U32)
    orth_u = ratio(un.T @ un - np.eye(k), m, U32)
    orth_v = ratio(vhn @ vhn.T - np.eye(k), n, U32)
    assert max(resid, orth_u, orth_v) <= SVD_RATIO
    assert np.all(np.diff(sn) <= 0) and np.all(sn >= 0)
    s_ref = np.linalg.svd(a64, compute_uv=False)
    assert np.max(np.abs(sn - s_ref)) <= FORWARD * max(shape) * U32 * s_ref.max()


@pytest.mark.parametrize("method", ["qdwh", "newton_schulz"])
def test_public_polar_methods_gpu(method):
    """mlx_linalg.polar(method=...) on the GPU (QDWH with the kernels' graphs): the
    SVD-based factors of SciPy to float32 accuracy, and its gradient (Newton–Schulz)."""
    import mlx_linalg as la

    rng = np.random.default_rng(7)
    a = graded_stack(rng, 2, 300, 200, 10.0).astype(np.float32)
    u, p = la.polar(mx.array(a), method=method)
    for i in range(2):
        ref_u, ref_p = scipy.linalg.polar(a[i].astype(np.float64))
        np.testing.assert_allclose(np.asarray(u)[i], ref_u, atol=5e-5)
        np.testing.assert_allclose(np.asarray(p)[i], ref_p, atol=5e-5 * norm(ref_p))
    if method == "newton_schulz":
        grad = mx.grad(lambda x: la.polar(x, method=method).u.sum())(mx.array(a))
        reference = mx.grad(lambda x: la.polar(x).u.sum())(mx.array(a))
        np.testing.assert_allclose(np.asarray(grad), np.asarray(reference), atol=1e-3)
