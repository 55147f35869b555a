"""DESIGN.md's failure policy: a failing matrix of a batch becomes NaN, the others are
unaffected; errstate(linalg="raise") raises LinAlgError naming the batch index; NaN/Inf
inputs affect only their own batch entry."""

import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg as la
from mlx_linalg._cpu.lapack import ONE_MATRIX_FROM

NOT_PD = np.array([[1.0, 2.0], [2.0, 1.0]])
SINGULAR = np.array([[1.0, 2.0], [2.0, 4.0]])
GOOD = np.array([[4.0, 1.0], [1.0, 3.0]])
RHS = mx.ones((3, 2, 1))

FAILING = {
    "cholesky": (NOT_PD, lambda a: la.cholesky(a)),
    "cho_factor": (NOT_PD, lambda a: la.cho_factor(a).c),
    "inv": (SINGULAR, lambda a: la.inv(a)),
    "solve": (SINGULAR, lambda a: la.solve(a, RHS)),
    "solve_triangular": (
        np.triu(SINGULAR) * [[1, 1], [1, 0]],
        lambda a: la.solve_triangular(a, RHS),
    ),
    "lu_solve": (SINGULAR, lambda a: la.lu_solve(la.lu_factor(a), RHS)),
    "cho_solve": (np.zeros((2, 2)), lambda a: la.cho_solve((a, True), RHS)),
}


def _stack(bad: np.ndarray) -> mx.array:
    return mx.array(np.stack([GOOD, bad, GOOD]).astype(np.float32))


@pytest.mark.parametrize("name", sorted(FAILING))
def test_failing_matrix_becomes_nan_and_the_rest_are_exact(name):
    bad, call = FAILING[name]
    out = np.asarray(call(_stack(bad)))
    assert np.isnan(out[1]).all()
    good_alone = np.asarray(call(mx.array(np.stack([GOOD] * 3).astype(np.float32))))
    np.testing.assert_array_equal(out[[0, 2]], good_alone[[0, 2]])


@pytest.mark.parametrize("name", sorted(FAILING))
def test_raise_mode_names_the_batch_index(name):
    bad, call = FAILING[name]
    fn = name if name != "cho_factor" else "cholesky"
    with la.errstate(linalg="raise"):
        with pytest.raises(
            la.LinAlgError, match=rf"^\[mlx_linalg\.{fn}\] .* at batch index \(1,\)"
        ) as info:
            call(_stack(bad))
    assert info.value.indices == ((1,),)
    assert isinstance(info.value, np.linalg.LinAlgError)
    with la.errstate(linalg="raise"):  # nothing fails: nothing raised
        call(mx.array(np.stack([GOOD] * 3).astype(np.float32)))


def test_raise_mode_is_scoped_and_nested():
    assert la.geterr() == {"linalg": "nan"}
    with la.errstate(linalg="raise"):
        assert la.geterr() == {"linalg": "raise"}
        with la.errstate(linalg="nan"):
            assert np.isnan(np.asarray(la.cholesky(mx.array(NOT_PD.astype(np.float32))))).all()
        assert la.geterr() == {"linalg": "raise"}
    assert la.geterr() == {"linalg": "nan"}


NONFINITE_OPS = {
    "cholesky": lambda a: la.cholesky(a),
    "qr": lambda a: la.qr(a),
    "eigh": lambda a: la.eigh(a),
    "eigvalsh": lambda a: la.eigvalsh(a),
    "svd": lambda a: la.svd(a),
    "svdvals": lambda a: la.svdvals(a),
    "eig": lambda a: la.eig(a),
    "inv": lambda a: la.inv(a),
    "solve": lambda a: la.solve(a, RHS),
    "det": lambda a: la.det(a),
    "slogdet": lambda a: la.slogdet(a),
    "lu": lambda a: la.lu(a),
    "lstsq": lambda a: la.lstsq(a, RHS),
    "pinv": lambda a: la.pinv(a),
}


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", sorted(NONFINITE_OPS))
def test_nonfinite_input_affects_only_its_own_batch_entry(name, poison):
    bad = GOOD.copy()
    bad[0, 1] = bad[1, 0] = poison
    call = NONFINITE_OPS[name]
    with la.errstate(linalg="raise"):  # non-finite input is not a numerical failure
        result = call(_stack(bad))
    clean = call(mx.array(np.stack([GOOD] * 3).astype(np.float32)))
    items = result if isinstance(result, tuple) else (result,)
    clean_items = clean if isinstance(clean, tuple) else (clean,)
    for got, want in zip(items, clean_items, strict=True):
        got, want = np.asarray(got), np.asarray(want)
        if np.issubdtype(got.dtype, np.inexact):
            assert np.isnan(got[1]).all(), name
        np.testing.assert_array_equal(got[[0, 2]], want[[0, 2]])


@pytest.mark.parametrize("name", ["cholesky", "inv", "solve"])
def test_failing_large_matrix_becomes_nan(name):
    """The same policy on the per-matrix SciPy path (order ONE_MATRIX_FROM and up)."""
    bad, call = FAILING[name]
    n = ONE_MATRIX_FROM
    good_big, bad_big = np.eye(n), np.eye(n)
    good_big[:2, :2], bad_big[:2, :2] = GOOD, bad
    stack = mx.array(np.stack([good_big, bad_big, good_big]).astype(np.float32))
    rhs = mx.ones((3, n, 1))
    out = np.asarray(call(stack) if name != "solve" else la.solve(stack, rhs))
    assert np.isnan(out[1]).all()
    assert np.isfinite(out[[0, 2]]).all()
    with la.errstate(linalg="raise"):
        with pytest.raises(la.LinAlgError, match=r"at batch index \(1,\)"):
            call(stack) if name != "solve" else la.solve(stack, rhs)
