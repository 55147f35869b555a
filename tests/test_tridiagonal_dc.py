"""Divide and conquer for symmetric tridiagonal matrices (``mlx_linalg._gpu.tridiagonal_dc``)
on the CPU, against ``scipy.linalg.eigvalsh`` of the dense matrix in float64, with
DESIGN.md-style ratios: eigenvalue error max|λ − λ₆₄| / (n u ‖T‖₂), orthogonality
‖I − ZᵀZ‖_F / (n u), residual ‖TZ − ZΛ‖_F / (n u ‖T‖₂), each at most 10 (LAPACK's sstedc
stays near 1; measured here at most 2.6)."""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from kernel_emulation import emulate, needs_emulation

from mlx_linalg._gpu import tridiagonal_dc

RATIO = 10
DTYPES = {mx.float32: np.float32, mx.float64: np.float64}


def _ratios(d, e, w, z):
    """(eigenvalue, orthogonality, residual) ratios of one matrix."""
    n = d.shape[-1]
    u = np.finfo(d.dtype).eps / 2
    t = np.diag(d.astype(np.float64)) + np.diag(e.astype(np.float64), 1)
    t = t + np.diag(e.astype(np.float64), -1)
    norm = max(np.linalg.norm(t, 2), np.finfo(np.float64).tiny)
    w, z = w.astype(np.float64), z.astype(np.float64)
    exact = scipy.linalg.eigvalsh(t)
    return (
        np.max(np.abs(w - exact)) / (n * u * norm),
        np.linalg.norm(np.eye(n) - z.T @ z) / (n * u),
        np.linalg.norm(t @ z - z * w) / (n * u * norm),
    )


def _solve(d, e, dtype=mx.float32):
    w, z = tridiagonal_dc.eigh_tridiagonal(mx.array(d, dtype=dtype), mx.array(e, dtype=dtype))
    return np.array(w), np.array(z)


def _assert_accurate(d, e, dtype=mx.float32):
    d, e = d.astype(DTYPES[dtype]), e.astype(DTYPES[dtype])
    w, z = _solve(d, e, dtype)
    for b in range(d.shape[0]):
        args = d[b], e[b], w[b], z[b]
        assert np.all(np.diff(args[2]) >= 0)
        assert max(_ratios(*args)) <= RATIO


@pytest.mark.parametrize("dtype", [mx.float32, mx.float64])
@pytest.mark.parametrize("n", [1, 2, 5, 32, 33, 64, 100, 200])
def test_gaussian(rng, n, dtype):
    _assert_accurate(rng.standard_normal((2, n)), rng.standard_normal((2, n - 1)), dtype)


def _hard(rng):
    n = 101
    yield "wilkinson", np.abs(np.arange(n) - 50.0), np.ones(n - 1)
    yield "1-2-1", np.full(100, 2.0), np.full(99, -1.0)
    yield "identity", np.ones(100), np.zeros(99)
    yield "near identity", np.ones(100), 1e-7 * rng.standard_normal(99)
    yield "graded", np.logspace(0, -20, 80), np.logspace(-1, -20, 79)
    yield "three clusters", np.repeat([1.0, 2.0, 3.0], 40), 1e-6 * rng.standard_normal(119)
    split = rng.standard_normal(299)
    split[[40, 150, 151]] = 0
    yield "split", rng.standard_normal(300), split
    yield "zero diagonal", np.zeros(70), np.ones(69)
    yield "zero", np.zeros(50), np.zeros(49)
    yield "tiny scale", 1e-30 * rng.standard_normal(40), 1e-30 * rng.standard_normal(39)
    yield "huge scale", 1e30 * rng.standard_normal(40), 1e30 * rng.standard_normal(39)


@pytest.mark.parametrize("dtype", [mx.float32, mx.float64])
def test_hard_spectra(rng, dtype):
    """Pairs equal to 14 digits (Wilkinson's W⁺₁₀₁), clusters at both ends (1-2-1), all
    eigenvalues equal or within 1e-7, a graded matrix, clusters of 40, a split matrix,
    the zero matrix and scales of 1e±30: every deflation path of the merges."""
    for _, d, e in _hard(rng):
        _assert_accurate(d[None], e[None], dtype)


def test_batch_and_nan_stay_apart(rng):
    d = rng.standard_normal((3, 40)).astype(np.float32)
    e = rng.standard_normal((3, 39)).astype(np.float32)
    alone = _solve(d[:1], e[:1])
    d[2, 5] = np.nan
    w, z = _solve(d, e)
    np.testing.assert_allclose(w[0], alone[0][0], rtol=0, atol=0)
    assert np.all(np.isfinite(w[:2])) and np.all(np.isnan(w[2])) and np.all(np.isnan(z[2]))


@pytest.mark.parametrize(
    ("n", "leaf", "count"),
    [
        (1, 1, 1),
        (32, 32, 1),
        (33, 17, 2),
        (300, 19, 16),
        (1024, 32, 32),
        (1025, 17, 64),
        (1100, 18, 64),
    ],
)
def test_leaves_pad_fewer_rows_than_leaves(n, leaf, count):
    """The fewest leaves of at most LEAF rows, a power of two of them, one size: T padded
    by fewer rows than there are leaves (1100 to 1152, not to 2048)."""
    assert tridiagonal_dc.leaves(n) == (leaf, count)
    assert leaf <= tridiagonal_dc.LEAF and 0 <= leaf * count - n < count


def test_bad_input():
    with pytest.raises(ValueError, match="eigh_tridiagonal.*float32 or float64"):
        tridiagonal_dc.eigh_tridiagonal(mx.zeros((3,), mx.int32), mx.zeros((2,), mx.int32))
    with pytest.raises(ValueError, match="eigh_tridiagonal.*n - 1"):
        tridiagonal_dc.eigh_tridiagonal(mx.zeros((3,)), mx.zeros((3,)))


def _secular_problem(rng, kind: str):
    """(d, z, rho) float32 of three merges: Gaussian poles with deflated entries (z = 0,
    one pole repeated); two clusters of poles 1e-6 and 1e-5 apart with z over 1e-3 .. 1;
    poles graded over 1e-20 .. 1."""
    m, k = 3, 40
    if kind == "gaussian":
        d = np.sort(rng.standard_normal((m, k)), -1)
        z = rng.standard_normal((m, k))
    elif kind == "clustered":
        near_one = np.broadcast_to(1 + 1e-6 * np.arange(20), (m, 20))
        d = np.sort(np.concatenate([near_one, 2 + 1e-5 * rng.random((m, 20))], -1), -1)
        z = 10.0 ** rng.uniform(-3, 0, (m, k))
    else:
        d = np.sort(10.0 ** rng.uniform(-20, 0, (m, k)), -1)
        z = rng.standard_normal((m, k))
    d, z = d.astype(np.float32), (z / np.linalg.norm(z, axis=-1, keepdims=True)).astype(np.float32)
    if kind == "gaussian":
        z[0, [3, 10, 11]] = 0
        d[1, 5] = d[1, 4]
        z[1, 4] = 0
    return d, z, np.array([0.5, 2.0, 1e-3], np.float32)


@needs_emulation
@pytest.mark.parametrize("kind", ["gaussian", "clustered", "graded"])
def test_secular_roots_kernel_matches_the_reference(rng, kind):
    """The ``secular_roots`` kernel (emulated; rational iteration) against the MLX-op
    bisection: the same origins, τ to 1e-4 relative, and every root within 8 k u (‖D‖ + ρ)
    of D + ρ z zᵀ's eigenvalues in float64; deflated poles (z = 0) get no root."""
    d, z, rho = _secular_problem(rng, kind)
    m, k = d.shape
    launch = tridiagonal_dc.secular_roots_launch((m, k))
    origin, tau = emulate.run("secular_roots", [d, z, rho], **launch)
    keep = z != 0
    ref_origin, ref_tau = tridiagonal_dc._roots_reference(
        mx.array(d), mx.array(z), mx.array(rho[:, None]), mx.array(keep)
    )
    np.testing.assert_array_equal(origin, np.array(ref_origin))
    np.testing.assert_allclose(tau, np.array(ref_tau), rtol=1e-4, atol=0)
    assert np.all(tau[~keep] == 0) and np.array_equal(origin[~keep], d[~keep])
    u = np.finfo(np.float32).eps / 2
    for b in range(m):
        exact = np.linalg.eigvalsh(np.diag(d[b]).astype(np.float64) + rho[b] * np.outer(z[b], z[b]))
        roots = origin[b][keep[b]].astype(np.float64) + tau[b][keep[b]]
        error = max(np.min(np.abs(exact - root)) for root in roots)
        assert error <= 8 * k * u * (np.abs(d[b]).max() + rho[b])
