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


@pytest.mark.parametrize("shape", [(3, 0), (0, 3), (0, 0), (0, 4, 4), (0, 3, 2), (2, 3, 0)])
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.complex64])
def test_lu_of_empty_input_has_the_documented_shapes(shape, dtype):
    batch, (m, n) = shape[:-2], shape[-2:]
    k = min(m, n)
    p, lower, upper = la.lu(mx.zeros(shape, dtype=dtype))
    assert (p.shape, lower.shape, upper.shape) == (batch + (m, m), batch + (m, k), batch + (k, n))
    assert p.dtype == lower.dtype == upper.dtype == dtype
    np.testing.assert_array_equal(
        np.asarray(p.astype(mx.float32)), np.zeros(batch + (m, m)) + np.eye(m)
    )
    packed, piv = la.lu_factor(mx.zeros(shape, dtype=dtype))
    assert packed.shape == shape and packed.dtype == dtype
    assert piv.shape == batch + (k,) and piv.dtype == mx.int32


SOLVERS = {
    "lu_solve": lambda a, b: la.lu_solve(la.lu_factor(a), b),
    "lu_solve_T": lambda a, b: la.lu_solve(la.lu_factor(a), b, trans="T"),
    "cho_solve": lambda a, b: la.cho_solve((a, False), b),
    "cho_solve_lower": lambda a, b: la.cho_solve((a, True), b),
    "solve_triangular": lambda a, b: la.solve_triangular(a, b),
    "solve_triangular_T": lambda a, b: la.solve_triangular(a, b, trans="T", lower=True),
    "solve": lambda a, b: la.solve(a, b),
}


@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((0, 4, 4), (0, 4, 2)),
        ((0, 4, 4), (4,)),
        ((0, 0, 0), (0, 0, 3)),
        ((2, 0, 0), (2, 0, 1)),
        ((0, 4, 4), (3, 1, 4, 2)),
    ],
)
@pytest.mark.parametrize("dtype", [mx.float32, mx.float64, mx.bfloat16])
def test_solvers_take_zero_size_batches(name, a_shape, b_shape, dtype):
    x = SOLVERS[name](mx.zeros(a_shape, dtype=dtype), mx.ones(b_shape, dtype=dtype))
    batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) if len(b_shape) > 1 else a_shape[:-2]
    core = b_shape[-2:] if len(b_shape) > 1 else b_shape
    assert x.shape == tuple(batch) + tuple(core)
    assert x.dtype == dtype


@pytest.mark.parametrize(
    ("a_shape", "b_shape"), [((0, 4, 4), (0, 4, 2)), ((0, 5, 3), (0, 5, 1)), ((2, 0, 3), (2, 0, 2))]
)
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.complex64])
def test_lstsq_of_empty_input_has_numpy_shapes(a_shape, b_shape, dtype):
    x, residuals, rank, s = la.lstsq(mx.zeros(a_shape, dtype=dtype), mx.ones(b_shape, dtype=dtype))
    batch, (m, n), k = a_shape[:-2], a_shape[-2:], b_shape[-1]
    real = mx.float32 if dtype == mx.complex64 else dtype
    assert (x.shape, x.dtype) == (batch + (n, k), dtype)
    assert (rank.shape, rank.dtype) == (batch, mx.int32)
    assert (s.shape, s.dtype) == (batch + (min(m, n),), real)
    assert residuals.shape == (batch + (k,) if m > n else batch + (0,))
    assert residuals.dtype == real


def test_lstsq_with_no_columns_in_a_leaves_all_of_b_as_residual():
    b = np.arange(10.0).reshape(5, 2)
    x, residuals, rank, s = la.lstsq(
        mx.zeros((5, 0), dtype=mx.float64), mx.array(b, dtype=mx.float64)
    )
    ex, eres, erank, es = np.linalg.lstsq(np.zeros((5, 0)), b)
    assert x.shape == ex.shape and s.shape == es.shape and int(rank.item()) == erank
    np.testing.assert_allclose(np.asarray(residuals), eres)


def test_lstsq_with_no_right_hand_sides_still_gives_rank_and_singular_values(rng):
    a = rng.standard_normal((5, 3)) @ np.diag([1.0, 1.0, 0.0])
    x, residuals, rank, s = la.lstsq(
        mx.array(a, dtype=mx.float64), mx.zeros((5, 0), dtype=mx.float64)
    )
    ex, _, erank, es = np.linalg.lstsq(a, np.zeros((5, 0)))
    assert x.shape == ex.shape == (3, 0) and residuals.shape == (0,)
    assert int(rank.item()) == erank == 2
    np.testing.assert_allclose(np.asarray(s), es, atol=1e-12)


@pytest.mark.parametrize(
    ("s1", "s2", "axes"),
    [
        ((0, 0), (0, 0), 1),
        ((0, 0), (0, 0), 2),
        ((3, 0), (0, 4), 1),
        ((3, 0), (3, 0), 2),
        ((2, 3), (3, 0), 1),
        ((0, 3), (3, 2), 1),
        ((2, 0, 3), (0, 3, 4), 2),
    ],
)
def test_tensordot_of_size_zero_arrays_matches_numpy(s1, s2, axes, rng):
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    got = la.tensordot(mx.array(a, dtype=mx.float64), mx.array(b, dtype=mx.float64), axes=axes)
    expected = np.tensordot(a, b, axes=axes)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.asarray(got), expected)
