"""Exact power-of-two scaling (mlx_linalg._gpu.scaling), subnormal input included: the
prescale of the GPU's Jacobi, QR and polar paths."""

import mlx.core as mx
import numpy as np
import pytest

from mlx_linalg._gpu import reference_spectral, scaling


@pytest.mark.parametrize("largest", [3e38, 1.0, 1e-30, 1e-40, 1e-45])
def test_prescale_is_exact_and_lands_in_one_to_two(largest, rng):
    a = rng.uniform(-1, 1, (3, 5, 4)).astype(np.float32)
    a[:, 0, 0] = 1.0
    a = (a * np.float32(largest)).astype(np.float32)  # subnormal entries for 1e-40, 1e-45
    scaled, exponent, finite = scaling.prescale(mx.array(a))
    peak = np.abs(np.asarray(scaled)).max(axis=(-2, -1))
    assert np.asarray(finite).all() and np.all((peak >= 1) & (peak < 2))
    back = scaling.times_power_of_two(scaled, exponent)
    # exact where a's entries are normal; subnormal entries were rounded by a itself
    np.testing.assert_array_equal(np.asarray(back)[np.abs(a) >= 2**-126], a[np.abs(a) >= 2**-126])


def test_prescale_lower_reads_only_the_lower_triangle(rng):
    """The strict upper triangle, NaN or large, changes neither the scale nor ``finite``;
    the result is the prescaled lower triangle with zeros above it."""
    a = rng.uniform(-1, 1, (2, 4, 4)).astype(np.float32)
    a[0, 0, 3] = np.nan
    a[1, 1, 2] = 1e30
    scaled, exponent, finite = scaling.prescale_lower(mx.array(a))
    expected = scaling.prescale(mx.array(np.tril(a)))
    assert np.asarray(finite).all()
    for got, want in zip((scaled, exponent, finite), expected, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_prescale_zeroes_non_finite_and_keeps_zero_matrices():
    a = np.zeros((3, 2, 2), dtype=np.float32)
    a[1, 0, 1] = np.inf
    a[2] = 5.0
    scaled, exponent, finite = scaling.prescale(mx.array(a))
    assert np.asarray(finite).tolist() == [True, False, True]
    assert np.all(np.asarray(scaled)[:2] == 0) and np.asarray(exponent).tolist() == [0, 0, 2]


def test_times_power_of_two_beyond_the_exponent_range():
    x = mx.array([1.5, 1.0, 1.0], dtype=mx.float32)
    e = mx.array([-140.0, 127.0, -149.0])
    np.testing.assert_array_equal(
        np.asarray(scaling.times_power_of_two(x, e)),
        np.array([1.5 * 2.0**-140, 2.0**127, 2.0**-149], dtype=np.float32),
    )


def test_jacobi_svd_reference_of_a_subnormal_matrix(rng):
    """The register SVD's reference scales through prescale: a matrix whose largest entry
    is subnormal (2^e overflowed in the former scale-factor form) gets its singular values."""
    a = rng.standard_normal((1, 6, 4))
    a *= 2.0**-135 / np.abs(a).max()
    a32 = a.astype(np.float32)
    _, s, _, _ = reference_spectral.jacobi_svd_simd(
        mx.array(a32), full=False, want_uv=False, max_sweeps=30
    )
    expected = np.linalg.svd(a32.astype(np.float64)[0], compute_uv=False)
    np.testing.assert_allclose(np.asarray(s)[0], expected, rtol=1e-3, atol=2.0**-149)
