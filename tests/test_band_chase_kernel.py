"""The ``band_to_tridiagonal`` kernel (metal/band_to_tridiagonal.metal, stage 2 of the
two-stage tridiagonal reduction) under CPU emulation.

The tridiagonal matrix it returns must have the band matrix's eigenvalues: in float32,
to 30 n u ‖A‖₂ against ``scipy.linalg.eigvalsh`` of the band matrix in float64 (a
backward-stable orthogonal reduction moves them by O(n u ‖A‖₂); DESIGN.md's eigenvalue
metric with the bound the stage-1 tests use).
"""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from kernel_emulation import emulate, needs_emulation
from matrices import symmetric_band

from mlx_linalg._gpu import band_chase, band_reduction, tridiagonal, tridiagonal_dc
from mlx_linalg._gpu.blocked_common import REFERENCE

U32 = np.finfo(np.float32).eps / 2
EIGENVALUES = 30

pytestmark = needs_emulation


def _emulated(a, band, simdgroups=2):
    launch = band_chase.band_to_tridiagonal_launch(a.shape, band, simdgroups)
    d, e, _, _ = emulate.run("band_to_tridiagonal", [a], **launch)
    return d, e[:, : a.shape[-1] - 1]


def _emulated_q(a, band, simdgroups=2):
    """(d, e, Q) with Q formed by the back-transformation kernel applied to the identity."""
    batch, n, _ = a.shape
    launch = band_chase.band_to_tridiagonal_launch(a.shape, band, simdgroups, want_q=True)
    d, e, _, kept = emulate.run("band_to_tridiagonal", [a], **launch)
    rows = np.broadcast_to(np.eye(n, dtype=np.float32), (batch, n, n)).copy()  # Iᵀ
    (qt,) = emulate.run(
        "apply_band_reflectors",
        [kept, rows],
        output_shapes=[rows.shape],
        **band_chase.apply_band_reflectors_launch(kept.shape, batch * n, n),
    )
    return d, e[:, : n - 1], np.swapaxes(qt, -1, -2)


def _eigenvalue_error(a, d, e):
    """max |λ(T) − λ(A)| / ‖A‖₂ per matrix, in units of n u."""
    n = a.shape[-1]
    errors = []
    for one, dm, em in zip(a.astype(np.float64), d, e, strict=True):
        exact = scipy.linalg.eigvalsh(one)
        tri = scipy.linalg.eigvalsh_tridiagonal(dm.astype(np.float64), em.astype(np.float64))
        errors.append(np.max(np.abs(tri - exact)) / (np.linalg.norm(one, 2) * n * U32))
    return np.array(errors)


@pytest.mark.parametrize(
    ("n", "band", "simdgroups"),
    [(40, 8, 2), (45, 4, 1), (70, 16, 3), (70, 32, 2), (33, 32, 1), (5, 32, 1), (3, 2, 1)],
)
def test_tridiagonal_has_the_band_matrix_eigenvalues(rng, n, band, simdgroups):
    a = symmetric_band(rng, 2, n, band)
    d, e = _emulated(a, band, simdgroups)
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(e))
    assert np.all(_eigenvalue_error(a, d, e) <= EIGENVALUES)


def test_nothing_outside_the_lower_band_is_read(rng):
    n, band = 40, 8
    a = symmetric_band(rng, 1, n, band)
    rows, cols = np.indices((n, n))
    garbage = a.copy()
    garbage[..., (rows < cols) | (rows - cols > band)] = np.nan
    for got, want in zip(_emulated(garbage, band), _emulated(a, band), strict=True):
        np.testing.assert_array_equal(got, want)


def test_scaling_by_powers_of_two_is_exact(rng):
    """Reflectors are formed from scaled vectors, so nothing over- or underflows: entries
    of 2⁻¹⁰⁰ (squares below float32's least normal) and 2¹⁰⁰ (squares past its largest)
    give the same result scaled."""
    n, band = 30, 8
    a = symmetric_band(rng, 1, n, band)
    d, e = _emulated(a, band)
    for power in (-100, 100):
        ds, es = _emulated(a * np.float32(2.0**power), band)
        np.testing.assert_array_equal(ds, d * np.float32(2.0**power))
        np.testing.assert_array_equal(es, e * np.float32(2.0**power))


def test_zero_diagonal_and_tiny_matrices():
    n, band = 20, 4
    diagonal = np.zeros((2, n, n), np.float32)
    diagonal[1] = np.diag(np.arange(1, n + 1, dtype=np.float32))
    d, e = _emulated(diagonal, band)
    np.testing.assert_array_equal(d, np.diagonal(diagonal, axis1=1, axis2=2))
    np.testing.assert_array_equal(e, 0)
    for n in (1, 2):
        a = np.arange(1, n * n + 1, dtype=np.float32).reshape(1, n, n)
        d, e = _emulated(a, band)
        np.testing.assert_array_equal(d[0], np.diag(a[0]))
        np.testing.assert_array_equal(e[0], np.diag(a[0], -1))


def test_nan_stays_in_its_matrix(rng):
    n, band = 40, 8
    a = symmetric_band(rng, 2, n, band)
    alone, _ = _emulated(a[:1], band)
    a[1, 20, 15] = np.nan
    d, e = _emulated(a, band)
    np.testing.assert_array_equal(d[0], alone[0])
    assert np.isnan(d[1]).any() and np.isnan(e[1]).any()


def test_two_stage_route_end_to_end(rng):
    """Stage 1 (MLX-op building blocks on the CPU), this kernel and the bisection kernel
    (both emulated): the steps of ``two_stage.eigvalsh``, to 30 n u ‖A‖₂ of A's
    eigenvalues."""
    n, band = 60, 8
    g = rng.standard_normal((1, n, n))
    a = ((g + np.swapaxes(g, -1, -2)) / 2).astype(np.float32)
    banded, _ = band_reduction.sy2sb(mx.array(a), band=band, blocks=REFERENCE)
    d, e = _emulated(np.array(banded), band)
    padded = np.concatenate([e, np.zeros((1, 1), np.float32)], axis=1)
    (w,) = emulate.run(
        "tridiagonal_eigenvalues",
        [d, padded],
        **tridiagonal.tridiagonal_eigenvalues_launch(d.shape),
    )
    exact = scipy.linalg.eigvalsh(a[0].astype(np.float64))
    assert np.max(np.abs(w[0] - exact)) <= EIGENVALUES * n * U32 * np.linalg.norm(a[0], 2)


@pytest.mark.parametrize(("n", "band"), [(40, 8), (37, 32), (3, 2), (2, 1), (1, 1), (100, 2)])
def test_kept_reflectors_give_q(rng, n, band):
    """With WANT_Q the same (d, e) (bit for bit), and the reflectors, applied to the
    identity by the back-transformation kernel, give an orthogonal Q with Qᵀ A Q = T:
    ‖I − QᵀQ‖/(n u) and ‖QᵀAQ − T‖/(n ‖A‖ u) at most 30 (the stage-1 tests' ratios).
    (100, 2): 49 ticks a sweep, which the kernel stages 32 at a time; n < 3: Q = I."""
    a = symmetric_band(rng, 2, n, band)
    d, e, q = _emulated_q(a, band)
    want_d, want_e = _emulated(a, band)
    np.testing.assert_array_equal(d, want_d)
    np.testing.assert_array_equal(e, want_e)
    for one, dm, em, qm in zip(a.astype(np.float64), d, e, q.astype(np.float64), strict=True):
        t = np.diag(dm.astype(np.float64)) + np.diag(em, -1) + np.diag(em, 1)
        assert np.linalg.norm(np.eye(n) - qm.T @ qm) <= 30 * n * U32
        assert np.linalg.norm(qm.T @ one @ qm - t) <= 30 * n * U32 * np.linalg.norm(one)


def test_bad_input_is_refused_before_any_launch():
    a = mx.zeros((4, 4), mx.float32)
    with pytest.raises(ValueError, match="band_to_tridiagonal.*float32"):
        band_chase.band_to_tridiagonal(a.astype(mx.float64), 2)
    with pytest.raises(ValueError, match="band_to_tridiagonal_q.*1 <= band <= 32"):
        band_chase.band_to_tridiagonal_q(a, 33)
    with pytest.raises(ValueError, match="band_to_tridiagonal.*n, n"):
        band_chase.band_to_tridiagonal(mx.zeros((4, 3), mx.float32), 2)
    kept = mx.zeros((2, 1, 3), mx.float32)
    with pytest.raises(ValueError, match="apply_band_q.*batch shape"):
        band_chase.apply_band_q(kept, mx.zeros((2, 4, 4), mx.float32))
    with pytest.raises(ValueError, match="apply_band_q.*n <= 4096"):
        band_chase.apply_band_q(mx.zeros((4095, 128, 33)), mx.zeros((4097, 2), mx.float32))
    with pytest.raises(ValueError, match="1 to 32 simdgroups"):
        band_chase.band_to_tridiagonal_launch((1, 8, 8), 2, 33)
    d, e, q = band_chase.band_to_tridiagonal_q(mx.zeros((0, 5, 5), mx.float32), 2)
    assert d.shape == (0, 5) and e.shape == (0, 4) and q.shape == (0, 3, 2, 3)


def test_two_stage_eigh_end_to_end(rng):
    """``two_stage.eigh``'s steps with the kernels emulated: stage 1 (MLX-op blocks), stage
    2 keeping Q₂, divide and conquer, Q₂ and Q₁ applied back: A Z = Z Λ and ZᵀZ = I to
    30 n u (‖A‖), eigenvalues to 30 n u ‖A‖₂."""
    n, band = 60, 8
    g = rng.standard_normal((1, n, n))
    a = ((g + np.swapaxes(g, -1, -2)) / 2).astype(np.float32)
    banded, reflectors = band_reduction.sy2sb(mx.array(a), band=band, blocks=REFERENCE)
    launch = band_chase.band_to_tridiagonal_launch((1, n, n), band, 2, want_q=True)
    d, e, _, kept = emulate.run("band_to_tridiagonal", [np.array(banded)], **launch)
    w, zt = tridiagonal_dc.eigh_tridiagonal(mx.array(d), mx.array(e[:, : n - 1]))
    rows = np.swapaxes(np.array(zt), -1, -2).copy()
    (q2z,) = emulate.run(
        "apply_band_reflectors",
        [kept, rows],
        output_shapes=[rows.shape],
        **band_chase.apply_band_reflectors_launch(kept.shape, n, n),
    )
    z = band_reduction.apply_q(reflectors, mx.array(np.swapaxes(q2z, -1, -2).copy()))
    w, z, a64 = np.array(w[0], np.float64), np.array(z[0], np.float64), a[0].astype(np.float64)
    norm = np.linalg.norm(a64, 2)
    assert np.max(np.abs(w - scipy.linalg.eigvalsh(a64))) <= EIGENVALUES * n * U32 * norm
    assert np.linalg.norm(np.eye(n) - z.T @ z) <= EIGENVALUES * n * U32
    assert np.linalg.norm(a64 @ z - z * w) <= EIGENVALUES * n * U32 * norm
