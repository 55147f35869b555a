"""Stacks behave as loops over their matrices; empty, transposed and strided inputs work."""

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matrices import random_matrix, random_spd

import mlx_linalg as la
from mlx_linalg._cpu import lapack
from mlx_linalg._cpu.lapack import ONE_MATRIX_FROM

SQUARE_OPS = {
    "cholesky": lambda a: la.cholesky(a),
    "qr": lambda a: la.qr(a),
    "qr_complete": lambda a: la.qr(a, mode="complete"),
    "eigh": lambda a: la.eigh(a),
    "eigvalsh": lambda a: la.eigvalsh(a),
    "svd": lambda a: la.svd(a),
    "svdvals": lambda a: la.svdvals(a),
    "inv": lambda a: la.inv(a),
    "det": lambda a: la.det(a),
    "slogdet": lambda a: la.slogdet(a),
    "lu": lambda a: la.lu(a),
    "lu_factor": lambda a: la.lu_factor(a),
    "pinv": lambda a: la.pinv(a),
    "matrix_rank": lambda a: la.matrix_rank(a),
    "matrix_norm_2": lambda a: la.matrix_norm(a, ord=2),
    "matrix_norm_nuc": lambda a: la.matrix_norm(a, ord="nuc"),
    "cond": lambda a: la.cond(a),
    "matrix_power": lambda a: la.matrix_power(a, 3),
    "eigvals": lambda a: la.eigvals(a),
    "polar": lambda a: la.polar(a),
    "solve": lambda a: la.solve(a, mx.ones(a.shape[:-1] + (2,), dtype=a.dtype)),
    "solve_triangular": lambda a: la.solve_triangular(a, mx.ones(a.shape[-1:]), lower=True),
    "lstsq": lambda a: la.lstsq(a, mx.ones(a.shape[:-1] + (2,), dtype=a.dtype)),
}


def _outputs(result) -> list[np.ndarray]:
    items = result if isinstance(result, tuple) else (result,)
    return [np.asarray(x) for x in items if isinstance(x, mx.array)]


def _spd_stack(batch: tuple, n: int, seed: int) -> mx.array:
    return random_spd(np.random.default_rng(seed), batch + (n, n), mx.float64)


@settings(max_examples=25, deadline=None)
@given(
    op=st.sampled_from(sorted(SQUARE_OPS)),
    batch=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_batch_equals_loop(op, batch, n, seed):
    a = _spd_stack(batch, n, seed)
    fn = SQUARE_OPS[op]
    stacked = _outputs(fn(a))
    flat = np.asarray(a).reshape((-1, n, n))
    for i, matrix in enumerate(flat):
        single = _outputs(fn(mx.array(matrix, dtype=mx.float64)))
        index = np.unravel_index(i, batch)
        for whole, one in zip(stacked, single, strict=True):
            np.testing.assert_allclose(whole[index], one, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0), (0, 4, 4), (2, 0, 0), (0, 2, 3)])
def test_empty_inputs_give_empty_outputs_of_the_right_shape(shape):
    a = mx.zeros(shape)
    m, n = shape[-2:]
    k = min(m, n)
    batch = shape[:-2]
    q, r = la.qr(a)
    assert q.shape == batch + (m, k) and r.shape == batch + (k, n)
    u, s, vh = la.svd(a)
    assert u.shape == batch + (m, m) and s.shape == batch + (k,) and vh.shape == batch + (n, n)
    assert la.svdvals(a).shape == batch + (k,)
    assert la.pinv(a).shape == batch + (n, m)
    assert la.matrix_rank(a).shape == batch
    assert la.matrix_norm(a).shape == batch
    if m == n:
        assert la.cholesky(a).shape == shape
        assert la.inv(a).shape == shape
        assert la.eigh(a).eigenvectors.shape == shape
        assert la.eigvalsh(a).shape == batch + (m,)
        assert la.det(a).shape == batch
        assert la.solve(a, mx.zeros(batch + (m, 2))).shape == batch + (m, 2)


def test_empty_determinant_is_one():
    np.testing.assert_array_equal(np.asarray(la.det(mx.zeros((2, 0, 0)))), [1, 1])


def test_transposed_and_strided_inputs_match_contiguous_ones(rng):
    base = random_matrix(rng, (4, 12, 12), mx.float32)
    views = {
        "transposed": mx.swapaxes(base, -1, -2),
        "strided": base[::2, ::2, 1::2],
        "reversed": base[:, ::-1, :],
    }
    for name, view in views.items():
        contiguous = mx.array(np.ascontiguousarray(np.asarray(view)))
        for op in ("qr", "svd", "inv", "det", "lu"):
            got, want = _outputs(SQUARE_OPS[op](view)), _outputs(SQUARE_OPS[op](contiguous))
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w, err_msg=f"{op} on {name} view")


def test_solve_broadcasts_batch_axes(rng):
    a = random_matrix(rng, (3, 1, 5, 5), mx.float64)
    b = random_matrix(rng, (4, 5, 2), mx.float64)
    x = la.solve(a, b)
    assert x.shape == (3, 4, 5, 2)
    want = np.linalg.solve(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.asarray(x), want, rtol=1e-10)


def test_solve_treats_only_exactly_1d_x2_as_a_vector(rng):
    a = random_matrix(rng, (2, 3, 3), mx.float64)
    vector = la.solve(a, mx.ones((3,), dtype=mx.float64))
    assert vector.shape == (2, 3)
    # (2, 3) is a stack of matrices (..., M, K) with M = 2 != 3: an error, not a vector batch
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.solve\]"):
        la.solve(a, mx.ones((2, 3)))
    matrix = la.solve(a, mx.ones((3, 1), dtype=mx.float64))
    assert matrix.shape == (2, 3, 1)
    np.testing.assert_allclose(np.asarray(matrix)[..., 0], np.asarray(vector), rtol=1e-12)


def test_batch_of_1000_small_matrices(rng):
    a = random_spd(rng, (1000, 4, 4), mx.float32)
    L = np.asarray(la.cholesky(a)).astype(np.float64)
    np.testing.assert_allclose(L @ np.swapaxes(L, -1, -2), np.asarray(a), rtol=1e-5, atol=1e-5)


LARGE_OPS = ("cholesky", "qr", "qr_complete", "eigh", "eigvalsh", "svd", "svdvals", "inv", "solve")


@pytest.mark.parametrize("op", LARGE_OPS)
def test_large_matrices_batch_equals_loop(op):
    """Matrices of order ONE_MATRIX_FROM and up take the per-matrix SciPy path."""
    n = ONE_MATRIX_FROM + 6
    stack = _spd_stack((2,), n, seed=7)
    whole = _outputs(SQUARE_OPS[op](stack))
    for i in range(2):
        for w, g in zip(whole, _outputs(SQUARE_OPS[op](stack[i])), strict=True):
            np.testing.assert_array_equal(w[i], g, err_msg=f"{op} matrix {i}")


@pytest.mark.parametrize("op", LARGE_OPS)
def test_large_transposed_and_strided_inputs_match_contiguous_ones(rng, op):
    base = _spd_stack((2,), 2 * ONE_MATRIX_FROM, seed=11)
    base = (base + mx.swapaxes(base, -1, -2)) / 2  # exactly symmetric: the views read one triangle
    views = {"transposed": mx.swapaxes(base, -1, -2), "strided": base[:, ::2, ::2]}
    for name, view in views.items():
        contiguous = mx.array(np.ascontiguousarray(np.asarray(view)), dtype=view.dtype)
        got, want = _outputs(SQUARE_OPS[op](view)), _outputs(SQUARE_OPS[op](contiguous))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w, err_msg=f"{op} on {name} view")


@pytest.mark.parametrize(
    "op, args, keywords",
    [
        ("lstsq", ((0, 0), (0, 2)), {"rcond": 1e-6}),
        ("lstsq", ((2, 0, 3), (2, 0, 1)), {"rcond": 1e-6}),
        ("svd", ((0, 0),), {"full_matrices": True}),
        ("svdvals", ((3, 0),), {}),
        ("eigh", ((0, 0),), {}),
        ("solve", ((0, 0), (0, 1)), {}),
    ],
)
def test_cpu_path_never_widens_float32_to_float64(op, args, keywords):
    """A float64 MLX array cannot enter a GPU stream, so the LAPACK path must not hand one
    back for float32 input (SciPy returns float64 for some empty outputs)."""
    outputs, _ = getattr(lapack, op)(*(mx.zeros(shape) for shape in args), **keywords)
    assert all(o.dtype != mx.float64 for o in outputs), [o.dtype for o in outputs]
