"""Bad input raises at call time with a message naming the function, what was expected and
what came."""

import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg as la

SQUARE = mx.eye(3)
RECT = mx.ones((3, 4))
VEC = mx.ones((3,))
INTS = mx.ones((3, 3), dtype=mx.int32)

CASES = [
    # (callable, exception, function name, fragment of the message)
    (
        lambda: la.cholesky(RECT),
        ValueError,
        "cholesky",
        r"expected a \(\.\.\., M, M\) array for x, got shape \(3, 4\)",
    ),
    (lambda: la.cholesky(VEC), ValueError, "cholesky", r"got shape \(3,\)"),
    (
        lambda: la.cholesky(INTS),
        TypeError,
        "cholesky",
        "expected a floating-point array .* got int32",
    ),
    (lambda: la.cholesky(mx.eye(3, dtype=mx.bool_)), TypeError, "cholesky", "got bool"),
    (lambda: la.qr(VEC), ValueError, "qr", r"expected a \(\.\.\., M, N\) array"),
    (
        lambda: la.qr(SQUARE, mode="r"),
        ValueError,
        "qr",
        "expected mode to be one of 'reduced', 'complete', got 'r'",
    ),
    (lambda: la.svd(INTS), TypeError, "svd", "got int32"),
    (lambda: la.eigh(RECT), ValueError, "eigh", r"\(\.\.\., M, M\)"),
    (lambda: la.eigvalsh(RECT), ValueError, "eigvalsh", r"\(\.\.\., M, M\)"),
    (lambda: la.eig(RECT), ValueError, "eig", r"\(\.\.\., M, M\)"),
    (lambda: la.inv(RECT), ValueError, "inv", r"\(\.\.\., M, M\)"),
    (lambda: la.det(VEC), ValueError, "det", r"got shape \(3,\)"),
    (lambda: la.slogdet(RECT), ValueError, "slogdet", r"\(\.\.\., M, M\)"),
    (lambda: la.solve(RECT, VEC), ValueError, "solve", r"x1, got shape \(3, 4\)"),
    (lambda: la.solve(SQUARE, mx.ones((4,))), ValueError, "solve", r"expected b of shape \(3,\)"),
    (lambda: la.solve(SQUARE, mx.ones((2, 2))), ValueError, "solve", r"\(\.\.\., 3, K\)"),
    (
        lambda: la.solve(mx.ones((2, 3, 3)), mx.ones((4, 3, 1))),
        ValueError,
        "solve",
        "broadcastable batch shapes",
    ),
    (lambda: la.solve(SQUARE, mx.ones((3,), dtype=mx.int32)), TypeError, "solve", "got int32"),
    (
        lambda: la.lu_solve((SQUARE, mx.zeros((3,), dtype=mx.int32)), VEC, trans=3),
        ValueError,
        "lu_solve",
        "expected trans",
    ),
    (lambda: la.lu_solve(SQUARE, VEC), TypeError, "lu_solve", r"\(lu, piv\) pair"),
    (
        lambda: la.lu_solve((SQUARE, mx.zeros((2,), dtype=mx.int32)), VEC),
        ValueError,
        "lu_solve",
        "expected integer piv of shape",
    ),
    (
        lambda: la.solve_triangular(SQUARE, VEC, trans="X"),
        ValueError,
        "solve_triangular",
        "expected trans",
    ),
    (
        lambda: la.solve_triangular(RECT, VEC),
        ValueError,
        "solve_triangular",
        r"for a, got shape \(3, 4\)",
    ),
    (lambda: la.cho_solve(SQUARE, VEC), TypeError, "cho_solve", r"\(c, lower\) pair"),
    (lambda: la.cho_solve((RECT, True), VEC), ValueError, "cho_solve", "for c"),
    (lambda: la.lstsq(VEC, VEC), ValueError, "lstsq", "for a"),
    (lambda: la.lstsq(RECT, mx.ones((4,))), ValueError, "lstsq", r"expected b of shape \(3,\)"),
    (lambda: la.matrix_power(RECT, 2), ValueError, "matrix_power", r"\(\.\.\., M, M\)"),
    (lambda: la.matrix_power(SQUARE, 1.5), TypeError, "matrix_power", "expected an integer n"),
    (lambda: la.matrix_norm(VEC), ValueError, "matrix_norm", r"\(\.\.\., M, N\)"),
    (lambda: la.matrix_norm(SQUARE, ord=3), ValueError, "matrix_norm", "expected ord to be one of"),
    (lambda: la.vector_norm(SQUARE, axis=2), ValueError, "vector_norm", "expected axes within"),
    (lambda: la.vector_norm(SQUARE, axis=(0, 0)), ValueError, "vector_norm", "distinct axes"),
    (
        lambda: la.vector_norm(SQUARE, ord="fro"),
        TypeError,
        "vector_norm",
        "expected ord to be a number",
    ),
    (lambda: la.vector_norm(INTS), TypeError, "vector_norm", "got int32"),
    (lambda: la.cond(RECT, p=1), ValueError, "cond", r"\(\.\.\., M, M\)"),
    (lambda: la.cond(SQUARE, p=3), ValueError, "cond", "expected p to be one of"),
    (lambda: la.polar(SQUARE, side="up"), ValueError, "polar", "expected side"),
    (lambda: la.pinv(SQUARE, rtol=mx.array(1j)), TypeError, "pinv", "expected a real rtol"),
    (lambda: la.matmul(VEC, mx.ones((4,))), ValueError, "matmul", "share K"),
    (lambda: la.matmul(mx.array(1.0), VEC), ValueError, "matmul", "at least 1 dimension"),
    (
        lambda: la.matmul(mx.ones((2, 3, 3)), mx.ones((4, 3, 3))),
        ValueError,
        "matmul",
        "broadcastable",
    ),
    (lambda: la.outer(SQUARE, VEC), ValueError, "outer", "two 1-D arrays"),
    (lambda: la.tensordot(SQUARE, SQUARE, axes=3), ValueError, "tensordot", "0 <= axes <= 2"),
    (lambda: la.tensordot(RECT, RECT, axes=[[0], [1]]), ValueError, "tensordot", "equal sizes"),
    (lambda: la.vecdot(VEC, mx.ones((4,))), ValueError, "vecdot", "broadcastable|equal sizes"),
    (lambda: la.cross(mx.ones((4,)), mx.ones((4,))), ValueError, "cross", "size 3"),
    (lambda: la.cross(VEC, VEC, axis=1), ValueError, "cross", "expected axis"),
    (lambda: la.matrix_transpose(VEC), ValueError, "matrix_transpose", r"\(\.\.\., M, N\)"),
    (lambda: la.diagonal(VEC), ValueError, "diagonal", r"\(\.\.\., M, N\)"),
    (lambda: la.trace(mx.eye(3, dtype=mx.bool_)), TypeError, "trace", "got bool"),
    (lambda: la.cholesky("abc"), TypeError, "cholesky", "expected an array for x, got str"),
    (
        lambda: la.errstate(linalg="warn").__enter__(),
        ValueError,
        "errstate",
        "expected linalg='nan' or 'raise'",
    ),
    (lambda: la.qr(SQUARE, stream="gpu"), TypeError, "", "expected stream to be None"),
]


@pytest.mark.parametrize(
    "call, exc, fn, fragment", CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_bad_input_raises_a_clear_error(call, exc, fn, fragment):
    prefix = rf"^\[mlx_linalg\.{fn}\] " if fn else r"^\[mlx_linalg\] "
    with pytest.raises(exc, match=prefix + ".*" + fragment):
        call()


def test_numpy_float64_inputs_keep_their_precision():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert la.cholesky(a).dtype == mx.float64
    assert la.inv(a).dtype == mx.float64
