"""Products, views and norms against NumPy, including integer and complex inputs."""

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matrices import random_matrix

import mlx_linalg as la

INF = float("inf")


def test_matmul_matches_numpy_for_all_operand_ranks(rng):
    for s1, s2 in [
        ((3,), (3,)),
        ((2, 3), (3,)),
        ((3,), (3, 4)),
        ((5, 2, 3), (3, 4)),
        ((1, 2, 3), (6, 3, 2)),
    ]:
        a, b = rng.standard_normal(s1), rng.standard_normal(s2)
        got = la.matmul(mx.array(a, dtype=mx.float64), mx.array(b, dtype=mx.float64))
        np.testing.assert_allclose(np.asarray(got), np.matmul(a, b), rtol=1e-12)


def test_integer_matmul_and_tensordot_are_exact(rng):
    a = rng.integers(-50, 50, (2, 3, 4)).astype(np.int32)
    b = rng.integers(-50, 50, (4, 5)).astype(np.int32)
    got = la.matmul(mx.array(a), mx.array(b))
    assert got.dtype == mx.int32
    np.testing.assert_array_equal(np.asarray(got), a @ b)
    np.testing.assert_array_equal(
        np.asarray(la.matmul(mx.array(a[0, 0]), mx.array(b))), a[0, 0] @ b
    )
    got = la.tensordot(mx.array(a), mx.array(b), axes=1)
    np.testing.assert_array_equal(np.asarray(got), np.tensordot(a, b, axes=1))
    got = la.tensordot(mx.array(a), mx.array(a), axes=([1, 2], [1, 2]))
    np.testing.assert_array_equal(np.asarray(got), np.tensordot(a, a, axes=([1, 2], [1, 2])))


SMALL_INTS = [
    (np.int8, mx.int8),
    (np.int16, mx.int16),
    (np.uint8, mx.uint8),
    (np.uint16, mx.uint16),
]


@pytest.mark.parametrize(("np_dtype", "mx_dtype"), SMALL_INTS)
def test_small_integer_products_keep_the_operand_dtype(np_dtype, mx_dtype, rng):
    # The Array API: the result has result_type(x1, x2), wrapping on overflow as NumPy does.
    info = np.iinfo(np_dtype)
    a = rng.integers(info.min, info.max, (2, 3, 4), endpoint=True).astype(np_dtype)
    b = rng.integers(info.min, info.max, (4, 5), endpoint=True).astype(np_dtype)
    got = la.matmul(mx.array(a), mx.array(b))
    assert got.dtype == mx_dtype
    np.testing.assert_array_equal(np.asarray(got), a @ b)
    got = la.matmul(mx.array(a[0, 0]), mx.array(b))
    assert got.dtype == mx_dtype
    np.testing.assert_array_equal(np.asarray(got), a[0, 0] @ b)
    got = la.tensordot(mx.array(a), mx.array(b), axes=1)
    assert got.dtype == mx_dtype
    np.testing.assert_array_equal(np.asarray(got), np.tensordot(a, b, axes=1))
    got = la.vecdot(mx.array(a), mx.array(a[0]))
    assert got.dtype == mx_dtype
    np.testing.assert_array_equal(np.asarray(got), np.vecdot(a, a[0]))


def test_mixed_integer_products_promote_like_result_type():
    x1, x2 = mx.ones((2, 3), dtype=mx.int8), mx.ones((3, 2), dtype=mx.uint8)
    assert la.matmul(x1, x2).dtype == mx.result_type(x1, x2) == mx.int16
    assert la.vecdot(x1, x2.T).dtype == mx.int16
    assert la.tensordot(x1, x2, axes=1).dtype == mx.int16


@pytest.mark.parametrize(
    ("s1", "s2", "axis"),
    [((2, 3), (2, 1), -1), ((2, 1), (2, 3), -1), ((3, 4), (1, 4), -2), ((3, 4), (4,), -2)],
)
def test_cross_requires_size_3_in_both_inputs(s1, s2, axis):
    with pytest.raises(ValueError, match=r"\[mlx_linalg.cross\] expected size 3 along axis"):
        la.cross(mx.ones(s1), mx.ones(s2), axis=axis)


def test_cross_broadcasts_the_other_axes(rng):
    u, v = rng.standard_normal((4, 1, 3)), rng.standard_normal((5, 3))
    got = la.cross(mx.array(u, dtype=mx.float64), mx.array(v, dtype=mx.float64))
    np.testing.assert_allclose(np.asarray(got), np.cross(u, v), rtol=1e-12)


def test_outer_vecdot_cross(rng):
    x, y = rng.standard_normal(4), rng.standard_normal(3)
    np.testing.assert_allclose(
        np.asarray(la.outer(mx.array(x), mx.array(y))), np.outer(x, y), rtol=1e-6
    )
    a = (rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))).astype(np.complex64)
    b = (rng.standard_normal((3,)) + 1j * rng.standard_normal((3,))).astype(np.complex64)
    np.testing.assert_allclose(
        np.asarray(la.vecdot(mx.array(a), mx.array(b))), np.vecdot(a, b), rtol=1e-5
    )
    u, v = rng.standard_normal((4, 3, 2)), rng.standard_normal((3, 1))
    got = la.cross(mx.array(u, dtype=mx.float64), mx.array(v, dtype=mx.float64), axis=-2)
    np.testing.assert_allclose(np.asarray(got), np.cross(u, v, axis=-2), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(la.vecdot(mx.array(u), mx.array(u), axis=0)), (u * u).sum(0), rtol=1e-5
    )


def test_views_and_trace(rng):
    a = rng.standard_normal((2, 3, 5))
    x = mx.array(a, dtype=mx.float64)
    np.testing.assert_array_equal(np.asarray(la.matrix_transpose(x)), np.swapaxes(a, -1, -2))
    for k in (-2, 0, 1, 4, 7):
        np.testing.assert_array_equal(
            np.asarray(la.diagonal(x, offset=k)), np.diagonal(a, k, -2, -1)
        )
        np.testing.assert_allclose(
            np.asarray(la.trace(x, offset=k)), np.trace(a, k, -2, -1), rtol=1e-12
        )
    ints = mx.array(np.arange(9, dtype=np.int32).reshape(3, 3))
    assert la.trace(ints).item() == 12
    assert la.trace(ints, dtype=mx.float32).dtype == mx.float32


@settings(max_examples=40, deadline=None)
@given(
    ord=st.sampled_from([1, 2, 3, 0.5, -1, -2, 0, INF, -INF]),
    axis=st.sampled_from([None, 0, -1, (0, 1), (1, 2), (0, 2)]),
    keepdims=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_vector_norm_matches_numpy(ord, axis, keepdims, seed):
    a = np.random.default_rng(seed).standard_normal((3, 4, 5))
    a[0, 0, 0] = 0
    if axis is None and ord not in (2,):
        flat_ref = np.linalg.norm(a.ravel(), ord=ord)
        ref = np.full((1, 1, 1) if keepdims else (), flat_ref)
    else:
        ref = np.linalg.vector_norm(a, ord=ord, axis=axis, keepdims=keepdims)
    got = la.vector_norm(mx.array(a, dtype=mx.float64), axis=axis, keepdims=keepdims, ord=ord)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10)


def test_vector_norm_does_not_overflow_or_underflow():
    big = mx.array([3e30, 4e30], dtype=mx.float32)
    np.testing.assert_allclose(float(la.vector_norm(big)), 5e30, rtol=1e-6)
    tiny = mx.array([3e-30, 4e-30], dtype=mx.float32)
    np.testing.assert_allclose(float(la.vector_norm(tiny)), 5e-30, rtol=1e-6)
    assert float(la.vector_norm(mx.array([1.0, INF]))) == INF
    assert np.isnan(float(la.vector_norm(mx.array([1.0, float("nan")]))))
    assert float(la.vector_norm(mx.zeros((0,)))) == 0


@pytest.mark.parametrize("ord", ["fro", "nuc", 1, -1, 2, -2, INF, -INF])
@pytest.mark.parametrize("keepdims", [True, False])
def test_matrix_norm_matches_numpy(rng, ord, keepdims):
    a = random_matrix(rng, (2, 5, 3), mx.complex64)
    got = la.matrix_norm(a, ord=ord, keepdims=keepdims)
    assert got.dtype == mx.float32
    ref = np.linalg.matrix_norm(np.asarray(a).astype(np.complex128), ord=ord, keepdims=keepdims)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5)


def test_matrix_power(rng):
    a = np.asarray(random_matrix(rng, (2, 4, 4), mx.float64))
    x = mx.array(a, dtype=mx.float64)
    for n in (0, 1, 2, 5, -1, -3):
        np.testing.assert_allclose(
            np.asarray(la.matrix_power(x, n)), np.linalg.matrix_power(a, n), rtol=1e-9, atol=1e-9
        )


@pytest.mark.parametrize("dtype", [mx.float32, mx.float64, mx.int32])
def test_diagonals_past_the_matrix_are_empty_and_trace_to_zero(dtype):
    # Reducing MLX's own empty diagonal view intermittently hung (mlx 0.32, CPU); the loop
    # made that near certain before the fix.
    x = mx.ones((2, 3, 5), dtype=dtype)
    for _ in range(200):
        for k in (5, 6, 7, -3, -4):
            assert la.diagonal(x, offset=k).shape == (2, 0)
            np.testing.assert_array_equal(np.asarray(la.trace(x, offset=k)), [0, 0])


def test_norms_of_a_million_float32_terms_stay_float32_accurate(rng):
    # MLX's own float32 sum of the 10⁶ squares was 2.8e-4 off (relative); NumPy's is 5e-7.
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    x, a64 = mx.array(a), a.astype(np.float64)
    for got, expected in [
        (la.matrix_norm(x), np.linalg.norm(a64)),
        (la.vector_norm(x, ord=1), np.abs(a64).sum()),
        (la.vector_norm(x, ord=3), np.linalg.norm(a64.ravel(), 3)),
        (la.matrix_norm(x.reshape(1, 1024 * 1024), ord=INF), np.abs(a64).sum()),
    ]:
        assert abs(got.item() - expected) <= 2e-6 * expected


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [(0, 1), (1,), (-1, 0), None])
@pytest.mark.parametrize("ord", [1, 2, 3, -1])
def test_blocked_norms_over_several_axes_match_numpy(axis, ord, keepdims, rng):
    a = rng.standard_normal((3, 700, 5))
    got = la.vector_norm(mx.array(a, dtype=mx.float64), axis=axis, ord=ord, keepdims=keepdims)
    expected = np.linalg.vector_norm(a, axis=axis, ord=ord, keepdims=keepdims)
    assert got.shape == expected.shape
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12)
