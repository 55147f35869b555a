"""Regression tests for edge cases the conformance suite found: default rank cutoffs of
half-precision input, half-precision matrix powers, the condition number of the zero
matrix, LU of empty inputs, zero-size batches, and empty tensor contractions."""

import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg as la

# diag(1, 1e-2, 1e-3, 1e-6): the default cutoff max(M, N)·eps keeps 4 singular values with
# float32's eps (4.8e-7), 2 with float16's (3.9e-3) and 1 with bfloat16's (3.1e-2).
SPECTRUM = np.array([1.0, 1e-2, 1e-3, 1e-6])
RANK_BY_DTYPE = {mx.float32: 4, mx.float16: 2, mx.bfloat16: 1}
EPS = {mx.float32: 2.0**-23, mx.float16: 2.0**-10, mx.bfloat16: 2.0**-7}


def _graded(dtype) -> tuple[mx.array, np.ndarray]:
    """diag(SPECTRUM) in ``dtype`` and its float64 value after rounding to ``dtype``."""
    a = mx.array(np.diag(SPECTRUM)).astype(dtype)
    return a, np.asarray(a.astype(mx.float64))


@pytest.mark.parametrize("dtype", sorted(RANK_BY_DTYPE, key=str))
def test_default_rank_cutoff_uses_the_input_dtype_eps(dtype):
    a, a64 = _graded(dtype)
    rank = RANK_BY_DTYPE[dtype]
    assert int(la.matrix_rank(a).item()) == rank
    assert la.orth(a).shape == (4, rank)
    assert la.null_space(a).shape == (4, 4 - rank)
    assert int(la.lstsq(a, mx.ones((4,), dtype=dtype)).rank.item()) == rank
    expected = np.linalg.pinv(a64, rtol=4 * EPS[dtype])
    np.testing.assert_allclose(np.asarray(la.pinv(a).astype(mx.float64)), expected, rtol=1e-2)


def test_explicit_rank_cutoff_overrides_the_default():
    a, _ = _graded(mx.float16)
    assert int(la.matrix_rank(a, rtol=1e-7).item()) == 4
    assert la.orth(a, rcond=1e-7).shape == (4, 4)
    assert int(la.lstsq(a, mx.ones((4,), dtype=mx.float16), rcond=1e-7).rank.item()) == 4


def test_half_precision_matrix_power_does_not_overflow_in_between():
    # A = εI + N with N nilpotent: A² = ε²I + 2εN overflows float16 (2εN ≈ 7e4 > 65504)
    # while A³ = ε³I + 3ε²N (≈ 6e4) fits.
    a = mx.array([[0.58, 60000.0], [0.0, 0.58]], dtype=mx.float16)
    a64 = np.asarray(a.astype(mx.float64))
    got = la.matrix_power(a, 3)
    assert got.dtype == mx.float16
    expected = np.linalg.matrix_power(a64, 3)
    np.testing.assert_allclose(np.asarray(got.astype(mx.float64)), expected, rtol=2e-3)


def test_half_precision_negative_matrix_power_is_rounded_once():
    h = 1.0 / (np.arange(3)[:, None] + np.arange(3)[None, :] + 1)
    a = mx.array(4 * h).astype(mx.float16)
    got = la.matrix_power(a, -2)
    assert got.dtype == mx.float16
    expected = np.linalg.matrix_power(np.asarray(a.astype(mx.float64)), -2)
    # Computed in float32 (error ~ κ·2⁻²⁴ ≈ 3e-5) and rounded once: within 1/2 float16 ulp
    # plus that error. Computing in float16 is a whole ulp off.
    half_ulp = np.spacing(np.abs(expected).astype(np.float16)).astype(np.float64) / 2
    err = np.abs(np.asarray(got.astype(mx.float64)) - expected)
    assert np.all(err <= half_ulp * 1.2), err / half_ulp


@pytest.mark.parametrize("p", [None, 2, -2, "fro", "nuc", 1, -1, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [mx.float32, mx.float64, mx.float16, mx.complex64])
def test_condition_number_of_the_zero_matrix_is_inf(p, dtype):
    got = la.cond(mx.zeros((2, 3, 3), dtype=dtype), p)
    np.testing.assert_array_equal(np.asarray(got.astype(mx.float64)), [np.inf, np.inf])
    if p != "nuc":  # NumPy's nuclear norm of inv(0) (all NaN) raises instead
        np.testing.assert_array_equal(np.linalg.cond(np.zeros((2, 3, 3)), p), [np.inf, np.inf])


def test_condition_number_stays_nan_for_nan_input():
    x = mx.array([[[1.0, 2.0], [np.nan, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    got = np.asarray(la.cond(x))
    assert np.isnan(got[0]) and got[1] == np.inf
