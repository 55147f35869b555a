"""GPU tests of the two-stage eigenvalue routes (``mlx_linalg._gpu.two_stage``: stage 1,
the ``band_to_tridiagonal`` and ``tridiagonal_eigenvalues`` kernels, divide and conquer,
the back-transformations) and of ``mlx_linalg.eigh`` / ``eigvalsh`` dispatched to them,
against SciPy in float64: eigenvalues to 30 n u ‖A‖₂ (the bound of the stage-1 tests),
orthogonality and residuals to 30 n u. Run by tools/gpu-check.sh."""

import inspect

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg

from conformance.zoo import hermitian_from
from mlx_linalg._gpu import band_chase, band_q_blocks, band_reduction, tridiagonal_dc, two_stage
from mlx_linalg._gpu.blocked_common import KERNELS

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
EIGENVALUES = 30
# ‖I − QᵀQ‖/(n u) and ‖QᵀAQ − T‖/(n ‖A‖ u), as the CPU tests.
RATIO = 30


def _symmetric(rng, batch, n):
    g = rng.standard_normal((batch, n, n))
    return ((g + np.swapaxes(g, -1, -2)) / 2).astype(np.float32)


@pytest.mark.parametrize(("n", "band"), [(300, 32), (1024, 32), (1000, 16)])
def test_eigvalsh_gpu(rng, n, band):
    a = _symmetric(rng, 2, n)
    w = np.array(two_stage.eigvalsh(mx.array(a), band=band))
    for one, got in zip(a.astype(np.float64), w, strict=True):
        exact = scipy.linalg.eigvalsh(one)
        assert np.all(np.diff(got) >= 0)
        assert np.max(np.abs(got - exact)) <= EIGENVALUES * n * U32 * np.linalg.norm(one, 2)


def test_band_to_tridiagonal_batch_and_nan_gpu(rng):
    n, band = 500, 32
    a = _symmetric(rng, 3, n)
    rows, cols = np.indices((n, n))
    a[..., np.abs(rows - cols) > band] = 0
    alone = [np.array(x) for x in band_chase.band_to_tridiagonal(mx.array(a[:1]), band)]
    a[2, 300, 290] = a[2, 290, 300] = np.nan
    d, e = (np.array(x) for x in band_chase.band_to_tridiagonal(mx.array(a), band))
    np.testing.assert_array_equal(d[:1], alone[0])
    np.testing.assert_array_equal(e[:1], alone[1])
    assert np.all(np.isfinite(d[:2])) and np.isnan(d[2]).any()
    w = np.array(two_stage.eigvalsh(mx.array(a[2:])))
    assert np.all(np.isnan(w))


@pytest.mark.parametrize(("n", "band"), [(500, 32), (1024, 16)])
def test_stage2_reflectors_give_q_gpu(rng, n, band):
    """Q from the kept reflectors (``apply_band_q`` on the identity) is orthogonal and
    Qᵀ A Q is the tridiagonal matrix, to the ratios of the CPU tests."""
    a = _symmetric(rng, 2, n)
    rows, cols = np.indices((n, n))
    a[..., np.abs(rows - cols) > band] = 0
    d, e, kept = band_chase.band_to_tridiagonal_q(mx.array(a), band)
    eye = mx.array(np.broadcast_to(np.eye(n, dtype=np.float32), a.shape).copy())
    q = np.array(band_chase.apply_band_q(kept, eye)).astype(np.float64)
    d, e = np.array(d).astype(np.float64), np.array(e).astype(np.float64)
    for one, dm, em, qm in zip(a.astype(np.float64), d, e, q, strict=True):
        t = np.diag(dm) + np.diag(em, -1) + np.diag(em, 1)
        assert np.linalg.norm(np.eye(n) - qm.T @ qm) <= RATIO * n * U32
        assert np.linalg.norm(qm.T @ one @ qm - t) <= RATIO * n * U32 * np.linalg.norm(one)


@pytest.mark.parametrize(("n", "band"), [(300, 32), (1024, 32), (1000, 16)])
def test_eigh_gpu(rng, n, band):
    """The whole route with eigenvectors: eigenvalues to 30 n u ‖A‖₂, ZᵀZ = I and
    A Z = Z Λ to the ratios of the CPU tests."""
    a = _symmetric(rng, 2, n)
    w, z = (np.array(x).astype(np.float64) for x in two_stage.eigh(mx.array(a), band=band))
    for one, wm, zm in zip(a.astype(np.float64), w, z, strict=True):
        norm = np.linalg.norm(one, 2)
        assert np.max(np.abs(wm - scipy.linalg.eigvalsh(one))) <= EIGENVALUES * n * U32 * norm
        assert np.linalg.norm(np.eye(n) - zm.T @ zm) <= RATIO * n * U32
        assert np.linalg.norm(one @ zm - zm * wm) <= RATIO * n * U32 * norm


def test_secular_roots_kernel_gpu(rng):
    """The divide and conquer's ``secular_roots`` kernel on the GPU at a merge's size: every
    root within 8 k u (‖D‖ + ρ) of D + ρ z zᵀ's eigenvalues in float64 (as
    tests/test_tridiagonal_dc.py checks it under emulation), none for deflated poles."""
    m, k = 2, 1024
    d = np.sort(rng.standard_normal((m, k)), -1).astype(np.float32)
    z = rng.standard_normal((m, k))
    z = (z / np.linalg.norm(z, axis=-1, keepdims=True)).astype(np.float32)
    z[:, ::7] = 0
    rho = np.array([[0.5], [3.0]], np.float32)
    zz = mx.array(z)
    origin, tau, _ = tridiagonal_dc._secular_roots(mx.array(d), zz, mx.array(rho), zz != 0)
    origin, tau, keep = np.array(origin), np.array(tau), z != 0
    assert np.all(tau[~keep] == 0)
    for b in range(m):
        exact = np.linalg.eigvalsh(np.diag(d[b]).astype(np.float64) + rho[b] * np.outer(z[b], z[b]))
        roots = origin[b][keep[b]].astype(np.float64) + tau[b][keep[b]]
        error = np.max(np.min(np.abs(exact[None, :] - roots[:, None]), axis=1))
        assert error <= 8 * k * U32 * (np.abs(d[b]).max() + rho[b, 0])


# ‖I − ZᵀZ‖_F/(n u) of the divide and conquer's Z at n = 4096: 1.6 on an H200 with its
# merges' Q U summed from 256-term products, 7.0 with whole products (module docstring of
# tridiagonal_dc); the GPU SVD's V inherits it.
DC_ORTHOGONALITY = 4


def test_divide_and_conquer_stays_orthogonal_at_4096_gpu(rng):
    """The divide and conquer's eigenvectors of the tridiagonal matrix of a 4096 x 4096
    Gaussian symmetric one (its eigenvectors dense, few deflations; those of a random
    tridiagonal matrix are localized and stayed orthogonal anyway) are orthogonal to
    DC_ORTHOGONALITY n u, far inside the 30 n u threshold: the top merges' long products
    must not accumulate over all n inner terms at once."""
    n = 4096
    banded, _ = band_reduction.sy2sb(mx.array(_symmetric(rng, 1, n)), band=32, blocks=KERNELS)
    d, e = band_chase.band_to_tridiagonal(banded, 32)
    w, z = tridiagonal_dc.eigh_tridiagonal(d, e)
    zm = np.array(z[0], dtype=np.float64)
    assert np.linalg.norm(np.eye(n) - zm.T @ zm) <= DC_ORTHOGONALITY * n * U32
    diagonal, off_diagonal = np.array(d[0], np.float64), np.array(e[0], np.float64)
    exact = scipy.linalg.eigvalsh_tridiagonal(diagonal, off_diagonal)
    assert np.max(np.abs(np.array(w[0]) - exact)) <= n * U32 * np.abs(exact).max()


@pytest.mark.parametrize("spectrum", ["gaussian", "clustered", "graded", "huge", "tiny"])
def test_dispatched_eigh_and_eigvalsh_gpu(rng, spectrum):
    """``mlx_linalg.eigh`` / ``eigvalsh`` of float32 matrices from the crossover on take
    the two-stage route (as dispatched, twice): eigenvalues to
    30 n u ‖A‖₂ against SciPy in float64, Z orthogonal and A Z = Z Λ to 30 n u, on a
    Gaussian matrix, a spectrum of three tight clusters, eigenvalues graded over 10⁻⁶..1,
    and entries near float32's overflow and underflow thresholds (the power-of-two
    scaling)."""
    import mlx_linalg
    from mlx_linalg import _dispatch

    n = two_stage.CROSSOVER["eigh"]
    if spectrum == "clustered":
        clusters = np.repeat([-1.0, 1e-3, 2.0], [n // 3, n // 3, n - 2 * (n // 3)])
        a = hermitian_from(rng, clusters, False)
    elif spectrum == "graded":
        a = hermitian_from(rng, np.logspace(-6, 0, n) * rng.choice([-1, 1], n), False)
    else:
        a = _symmetric(rng, 1, n)[0].astype(np.float64)
        a *= {"gaussian": 1.0, "huge": 1e36, "tiny": 1e-36}[spectrum]
    a32 = mx.array(a.astype(np.float32)[None])
    a = np.array(a32[0]).astype(np.float64)  # the float32 matrix, exactly
    picked = _dispatch.implementation("eigh", None, a32)
    assert inspect.unwrap(picked) is two_stage.eigh_scaled
    exact = scipy.linalg.eigvalsh(a)
    norm = np.abs(exact).max()
    for _ in range(2):  # the second call as the first
        w = np.array(mlx_linalg.eigvalsh(a32)[0]).astype(np.float64)
        wv, z = (np.array(x[0]).astype(np.float64) for x in mlx_linalg.eigh(a32))
    assert np.max(np.abs(w - exact)) <= EIGENVALUES * n * U32 * norm
    assert np.max(np.abs(wv - exact)) <= EIGENVALUES * n * U32 * norm
    assert np.linalg.norm(np.eye(n) - z.T @ z) <= RATIO * n * U32
    assert np.linalg.norm(a @ z - z * wv) <= RATIO * n * U32 * norm


def test_dispatched_eigh_batch_with_a_nan_gpu(rng):
    import mlx_linalg

    n = two_stage.CROSSOVER["eigh"]
    a = _symmetric(rng, 2, n)
    a[1, 10, 3] = np.nan
    w, z = (np.array(x) for x in mlx_linalg.eigh(mx.array(a)))
    assert np.all(np.isfinite(w[0])) and np.all(np.isfinite(z[0]))
    assert np.all(np.isnan(w[1])) and np.all(np.isnan(z[1]))
    exact = scipy.linalg.eigvalsh(a[0].astype(np.float64))
    assert np.max(np.abs(w[0] - exact)) <= EIGENVALUES * n * U32 * np.abs(exact).max()


@pytest.mark.parametrize(("n", "band", "group"), [(1024, 32, 32), (700, 16, 64)])
def test_blocked_back_transformation_matches_the_kernel_gpu(rng, n, band, group):
    """Q₂ Z by blocks of reflectors (``band_q_blocks``, matrix products) equals the
    kernel's (a sweep at a time) on stage 2's own reflectors, to 30 n u ‖Z‖."""
    a = _symmetric(rng, 2, n)
    rows, cols = np.indices((n, n))
    a[..., np.abs(rows - cols) > band] = 0
    _, _, kept = band_chase.band_to_tridiagonal_q(mx.array(a), band)
    z = mx.array(rng.standard_normal((2, n, 300)).astype(np.float32))
    blocked = np.array(band_q_blocks.apply_band_q_blocks(kept, z, group=group))
    one_at_a_time = np.array(band_chase.apply_band_q(kept, z))
    scale = np.abs(one_at_a_time).max()
    assert np.abs(blocked - one_at_a_time).max() <= RATIO * n * U32 * scale
