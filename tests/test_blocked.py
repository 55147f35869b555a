"""The blocked large-matrix algorithms of mlx_linalg._gpu.blocked_*, on the CPU.

They run here with the MLX-op reference building blocks (``blocked_common.REFERENCE``, the
same contracts as the GPU kernels), in float64 (the algorithm, at LAPACK-level accuracy) and
float32 (what the GPU runs), against SciPy with DESIGN.md's metrics; with n not a multiple
of the block size, batches, ill-conditioned inputs and the failure policy; and inside
``mx.compile``, which refuses any host synchronization, so the graphs are lazy.
The same checks with the real kernels on a GPU: tests/gpu/test_blocked_gpu.py.
"""

import functools
import inspect

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from matrices import (
    CHOLESKY_RATIO,
    INV_RATIO,
    LU_RATIO,
    QR_RATIO,
    SOLVE_RATIO,
    as64,
    as_mlx,
    norm,
    qr_ratio,
    ratio,
    replay_pivots,
    unit_roundoff,
)

import mlx_linalg as la
from mlx_linalg import _dispatch
from mlx_linalg._gpu import (
    blocked_cholesky,
    blocked_common,
    blocked_lu,
    blocked_panel,
    blocked_qr,
    blocked_rules,
    blocked_triangular,
)
from mlx_linalg._gpu.blocked_common import REFERENCE, finite_matrices

DTYPES = [mx.float64, mx.float32]
# n around the block size (64) and several blocks; 1 is a single partial block.
SIZES = [1, 63, 64, 65, 200]
# Normwise forward error against float64 SciPy, in units of sqrt(n)·κ·u (DESIGN.md).
FORWARD = 10
# Our float32 ratio may exceed float32 LAPACK's on the same input by this factor at most
# (ratios below FLOOR count as FLOOR, so that tiny ratios do not make the guard flaky).
VS_LAPACK = 10
FLOOR = 0.1


def _spd(rng, shape, cond=None) -> np.ndarray:
    """Float64 symmetric positive definite stack: G Gᵀ/n + I, or eigenvalues 1..1/cond."""
    n = shape[-1]
    if cond is None:
        g = rng.standard_normal(shape)
        return g @ np.swapaxes(g, -1, -2) / n + np.eye(n)
    q, _ = np.linalg.qr(rng.standard_normal(shape))
    return (q * np.logspace(0, -np.log10(cond), n)) @ np.swapaxes(q, -1, -2)


def _triangular(rng, shape, lower: bool) -> np.ndarray:
    """Float64 triangular stack with a diagonal of magnitude 1..2, random signs."""
    n = shape[-1]
    t = rng.standard_normal(shape) / np.sqrt(n)
    d = rng.uniform(1, 2, shape[:-1]) * rng.choice([-1, 1], shape[:-1])
    t = np.tril(t, -1) if lower else np.triu(t, 1)
    return t + d[..., None] * np.eye(n)


def _lapack_cholesky_ratio(a32: np.ndarray) -> float:
    n = a32.shape[-1]
    a = a32.reshape(-1, n, n)
    factors = np.stack([scipy.linalg.cholesky(m, lower=True) for m in a]).astype(np.float64)
    return ratio(factors @ np.swapaxes(factors, -1, -2) - a, n * norm(a), unit_roundoff(np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_accuracy(rng, dtype, n, upper):
    a = _spd(rng, (2, n, n))
    am = as_mlx(a, dtype)
    (factor,), failed = blocked_cholesky.cholesky(am, upper=upper, blocks=REFERENCE)
    assert factor.shape == (2, n, n) and factor.dtype == dtype and failed.shape == (2,)
    assert not np.any(np.asarray(failed))
    f = as64(factor)
    a_in = as64(am)
    u = unit_roundoff(dtype)
    if upper:
        assert np.all(np.tril(f, -1) == 0)
        rebuilt = np.swapaxes(f, -1, -2) @ f
    else:
        assert np.all(np.triu(f, 1) == 0)
        rebuilt = f @ np.swapaxes(f, -1, -2)
    assert ratio(rebuilt - a_in, n * norm(a_in), u) <= CHOLESKY_RATIO
    expected = np.linalg.cholesky(a_in)
    if upper:
        expected = np.swapaxes(expected, -1, -2)
    # G Gᵀ/n + I has κ <= about 5: the factor is accurate to a few sqrt(n)·u.
    assert np.max(norm(f - expected) / norm(expected)) <= FORWARD * 5 * np.sqrt(n) * u
    if dtype == mx.float32:
        ours = ratio(rebuilt - a_in, n * norm(a_in), u)
        assert ours <= VS_LAPACK * max(_lapack_cholesky_ratio(np.asarray(am)), FLOOR)


@pytest.mark.parametrize("cond", [1e3, 1e6])
def test_cholesky_ill_conditioned_float32(rng, cond):
    n = 150
    am = as_mlx(_spd(rng, (2, n, n), cond), mx.float32)
    (factor,), failed = blocked_cholesky.cholesky(am, upper=False, blocks=REFERENCE)
    assert not np.any(np.asarray(failed))
    f, a_in = as64(factor), as64(am)
    ours = ratio(f @ np.swapaxes(f, -1, -2) - a_in, n * norm(a_in), unit_roundoff(np.float32))
    assert ours <= CHOLESKY_RATIO
    assert ours <= VS_LAPACK * max(_lapack_cholesky_ratio(np.asarray(am)), FLOOR)


def test_cholesky_small_blocks_batch_axes(rng):
    """Many blocks (block=16), two batch axes, equal to the matrix-by-matrix result."""
    n = 50
    a = _spd(rng, (2, 3, n, n))
    am = as_mlx(a, mx.float64)
    (factor,), failed = blocked_cholesky.cholesky(am, upper=False, blocks=REFERENCE, block=16)
    assert factor.shape == (2, 3, n, n) and failed.shape == (2, 3)
    np.testing.assert_allclose(as64(factor), np.linalg.cholesky(a), rtol=0, atol=1e-13)
    (one,), _ = blocked_cholesky.cholesky(am[1, 2], upper=False, blocks=REFERENCE, block=16)
    np.testing.assert_array_equal(np.asarray(one), np.asarray(factor[1, 2]))


def test_cholesky_reads_one_triangle(rng):
    n = 100
    a = _spd(rng, (1, n, n))
    junk = rng.standard_normal((1, n, n)) * 1e3
    lower_only = np.tril(a) + np.triu(junk, 1)
    upper_only = np.triu(a) + np.tril(junk, -1)
    (lo,), _ = blocked_cholesky.cholesky(
        as_mlx(lower_only, mx.float64), upper=False, blocks=REFERENCE
    )
    (up,), _ = blocked_cholesky.cholesky(
        as_mlx(upper_only, mx.float64), upper=True, blocks=REFERENCE
    )
    expected = np.linalg.cholesky(a)
    np.testing.assert_allclose(as64(lo), expected, atol=1e-12)
    np.testing.assert_allclose(as64(up), np.swapaxes(expected, -1, -2), atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cholesky_failures_stay_in_their_matrix(rng, dtype):
    """Not positive definite (in the second block), NaN, and Inf: NaN factor, flagged."""
    n = 130
    a = _spd(rng, (5, n, n))
    a[1, 100, 100] = -5.0  # fails in the second diagonal block
    a[2, 3, 1] = a[2, 1, 3] = np.nan
    a[3, 0, 0] = np.inf
    (factor,), failed = blocked_cholesky.cholesky(as_mlx(a, dtype), upper=False, blocks=REFERENCE)
    np.testing.assert_array_equal(np.asarray(failed), [False, True, True, True, False])
    f = as64(factor)
    assert np.all(np.isnan(f[1:4]))
    good = a[[0, 4]]
    u = unit_roundoff(dtype)
    g = f[[0, 4]]
    assert ratio(g @ np.swapaxes(g, -1, -2) - good, n * norm(good), u) <= CHOLESKY_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("trans", [0, 1])
@pytest.mark.parametrize("unit", [False, True])
def test_solve_triangular(rng, dtype, lower, trans, unit):
    n, k = 150, 70  # three blocks, and more right-hand sides than one substitution task
    t = _triangular(rng, (2, n, n), lower)
    stored = t + (np.triu if lower else np.tril)(rng.standard_normal((2, n, n)), 1 if lower else -1)
    if unit:
        stored[:, np.arange(n), np.arange(n)] = 7.0  # not read
        t[:, np.arange(n), np.arange(n)] = 1.0
    b = rng.standard_normal((2, n, k))
    (x,), failed = blocked_triangular.solve_triangular(
        as_mlx(stored, dtype),
        as_mlx(b, dtype),
        lower=lower,
        unit_diagonal=unit,
        trans=trans,
        blocks=REFERENCE,
    )
    assert x.shape == (2, n, k) and x.dtype == dtype
    assert failed is None if unit else not np.any(np.asarray(failed))
    op = np.swapaxes(t, -1, -2) if trans else t
    op = as64(as_mlx(op, dtype))
    xs = as64(x)
    u = unit_roundoff(dtype)
    assert ratio(as64(as_mlx(b, dtype)) - op @ xs, norm(op) * norm(xs), u) <= SOLVE_RATIO
    expected = np.linalg.solve(op, as64(as_mlx(b, dtype)))
    assert np.max(norm(xs - expected) / norm(expected)) <= FORWARD * np.sqrt(n) * u * np.max(
        np.linalg.cond(op)
    )


def test_solve_triangular_vector_and_small_blocks(rng):
    n = 45
    t = _triangular(rng, (3, n, n), lower=False)
    b = rng.standard_normal((3, n, 1))
    (x,), _ = blocked_triangular.solve_triangular(
        as_mlx(t, mx.float64),
        as_mlx(b, mx.float64),
        lower=False,
        unit_diagonal=False,
        trans=0,
        blocks=REFERENCE,
        block=8,
    )
    np.testing.assert_allclose(as64(x), np.linalg.solve(t, b), rtol=1e-11, atol=1e-12)



@pytest.mark.parametrize("shape", [(4, 7, 5), (2, 130, 3), (3, 0, 4)])
def test_finite_matrices_marks_each_matrix(rng, shape):
    """The blocked routes' failure mask (rows, then the matrix): False exactly where a
    matrix holds a NaN or an infinity, whatever its position; an empty matrix is finite."""
    a = rng.standard_normal(shape).astype(np.float32)
    if a.size:
        a[1, -1, 0] = np.nan
        a[-1, 0, -1] = -np.inf
    expected = np.isfinite(a).all(axis=(-2, -1))
    np.testing.assert_array_equal(np.asarray(finite_matrices(mx.array(a))), expected)

def test_solve_triangular_zero_diagonal_fails_alone(rng):
    n = 100
    t = _triangular(rng, (3, n, n), lower=True)
    t[1, 80, 80] = 0.0
    b = rng.standard_normal((3, n, 4))
    (x,), failed = blocked_triangular.solve_triangular(
        as_mlx(t, mx.float32),
        as_mlx(b, mx.float32),
        lower=True,
        unit_diagonal=False,
        trans=0,
        blocks=REFERENCE,
    )
    np.testing.assert_array_equal(np.asarray(failed), [False, True, False])
    xs = as64(x)
    assert np.all(np.isnan(xs[1])) and np.all(np.isfinite(xs[[0, 2]]))
    np.testing.assert_allclose(xs[2], np.linalg.solve(t[2], b[2]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [True, False])
def test_cho_solve(rng, dtype, lower):
    n, k = 140, 3
    a = _spd(rng, (2, n, n), cond=1e4)
    c = np.linalg.cholesky(a)
    if not lower:
        c = np.swapaxes(c, -1, -2)
    b = rng.standard_normal((2, n, k))
    (x,), failed = blocked_triangular.cho_solve(
        as_mlx(c, dtype), as_mlx(b, dtype), lower=lower, blocks=REFERENCE
    )
    assert not np.any(np.asarray(failed))
    cm = as64(as_mlx(c, dtype))
    a_used = cm @ np.swapaxes(cm, -1, -2) if lower else np.swapaxes(cm, -1, -2) @ cm
    xs = as64(x)
    u = unit_roundoff(dtype)
    assert ratio(as64(as_mlx(b, dtype)) - a_used @ xs, norm(a_used) * norm(xs), u) <= SOLVE_RATIO


def test_graphs_are_lazy(rng):
    """mx.compile refuses any evaluation while tracing: the blocked graphs have none."""

    def synchronizing(x):
        return x * float(np.asarray(x).sum())

    with pytest.raises(ValueError, match="eval"):
        mx.compile(synchronizing)(mx.ones((2, 2)))

    n = 20  # three blocks of 8: compiling the unrolled reference building blocks is slow
    a = as_mlx(_spd(rng, (2, n, n)), mx.float32)
    b = as_mlx(rng.standard_normal((2, n, 2)), mx.float32)

    def factor_and_solve(a, b):
        (c,), failed = blocked_cholesky.cholesky(a, upper=False, blocks=REFERENCE, block=8)
        (x,), _ = blocked_triangular.cho_solve(c, b, lower=True, blocks=REFERENCE, block=8)
        return x, failed

    x, failed = mx.compile(factor_and_solve)(a, b)
    assert not np.any(np.asarray(failed))
    np.testing.assert_allclose(
        np.asarray(x), np.linalg.solve(as64(a), as64(b)), rtol=1e-3, atol=1e-4
    )


@pytest.mark.parametrize("block", [16, 64, 100, 256])
def test_block_sizes(rng, block):
    """Outer blocks smaller than, equal to, and larger than the building blocks' 64 (the
    larger ones factor and solve their diagonal blocks recursively with blocks of 64)."""
    n = 150
    spd = _spd(rng, (2, n, n))
    (factor,), _ = blocked_cholesky.cholesky(
        as_mlx(spd, mx.float64), upper=False, blocks=REFERENCE, block=block
    )
    np.testing.assert_allclose(as64(factor), np.linalg.cholesky(spd), rtol=0, atol=1e-13)
    a = rng.standard_normal((2, n, n))
    (packed, piv), _ = blocked_lu.lu_factor(as_mlx(a, mx.float64), blocks=REFERENCE, block=block)
    for i in range(2):
        lu_ref, piv_ref = scipy.linalg.lu_factor(a[i])
        np.testing.assert_array_equal(np.asarray(piv[i]), piv_ref)
        np.testing.assert_allclose(as64(packed[i]), lu_ref, rtol=0, atol=1e-11)
    t = _triangular(rng, (2, n, n), lower=False)
    b = rng.standard_normal((2, n, 5))
    (x,), _ = blocked_triangular.solve_triangular(
        as_mlx(t, mx.float64),
        as_mlx(b, mx.float64),
        lower=False,
        unit_diagonal=False,
        trans=1,
        blocks=REFERENCE,
        block=block,
    )
    expected = np.linalg.solve(np.swapaxes(t, -1, -2), b)
    np.testing.assert_allclose(as64(x), expected, rtol=1e-11, atol=1e-12)


def test_subtract_product_is_float32_accurate(rng):
    a = rng.standard_normal((2, 90, 64))
    b = rng.standard_normal((2, 64, 90))
    c = rng.standard_normal((2, 90, 90))
    am, bm, cm = (as_mlx(x, mx.float32) for x in (a, b, c))
    got = as64(blocked_common.subtract_product(cm, am, bm))
    expected = as64(cm) - as64(am) @ as64(bm)
    scale = np.abs(as64(cm)) + np.abs(as64(am)) @ np.abs(as64(bm))
    assert np.all(np.abs(got - expected) <= 64 * unit_roundoff(np.float32) * scale)


def test_predicates():
    big = mx.zeros((2, 65, 65))
    assert blocked_common.applies_square(big)
    assert not blocked_common.applies_square(mx.zeros((2, 64, 64)))
    assert not blocked_common.applies_square(mx.zeros((65, 65), dtype=mx.float64))
    assert not blocked_common.applies_square(mx.zeros((0, 65, 65)))
    assert not blocked_common.applies_square(mx.zeros((65, 66)))
    assert blocked_common.applies_matrix(mx.zeros((65, 3)))
    assert blocked_common.applies_rhs(big, mx.zeros((2, 65, 1)))
    assert not blocked_common.applies_rhs(big, mx.zeros((2, 65, 0)))


def _graded(rng, shape, cond) -> np.ndarray:
    """Float64 stack U diag(1..1/cond) Vᵀ with Haar-random U, V."""
    n = shape[-1]
    u, _ = np.linalg.qr(rng.standard_normal(shape))
    v, _ = np.linalg.qr(rng.standard_normal(shape))
    return (u * np.logspace(0, -np.log10(cond), n)) @ v


def _lapack_lu_ratio(a32: np.ndarray) -> float:
    m, n = a32.shape[-2:]
    worst = 0.0
    for one in a32.reshape(-1, m, n):
        p, lower, upper = scipy.linalg.lu(one)
        residual = p.astype(np.float64) @ lower.astype(np.float64) @ upper.astype(np.float64)
        r = ratio(residual - one, max(m, n) * norm(one), unit_roundoff(np.float32))
        worst = max(worst, r)
    return worst


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape", [(1, 1), (63, 63), (64, 64), (65, 65), (200, 200), (150, 70), (70, 150)]
)
def test_lu_accuracy_and_pivots(rng, dtype, shape):
    m, n = shape
    a = rng.standard_normal((2, m, n))
    am = as_mlx(a, dtype)
    (p, lower, upper), failed = blocked_lu.lu(am, blocks=REFERENCE)
    assert failed is None
    k = min(m, n)
    assert p.shape == (2, m, m) and lower.shape == (2, m, k) and upper.shape == (2, k, n)
    a_in = as64(am)
    u = unit_roundoff(dtype)
    lu_ratio = ratio(as64(p) @ as64(lower) @ as64(upper) - a_in, max(m, n) * norm(a_in), u)
    assert lu_ratio <= LU_RATIO
    assert np.all(np.abs(as64(lower)) <= 1)  # partial pivoting: |l_ij| <= 1
    (packed, piv), _ = blocked_lu.lu_factor(am, blocks=REFERENCE)
    assert packed.shape == (2, m, n) and piv.shape == (2, k) and piv.dtype == mx.int32
    if dtype == mx.float64:  # LAPACK's pivots (no near-ties in Gaussian matrices)
        expected = np.stack([scipy.linalg.lu_factor(one)[1] for one in a])
        np.testing.assert_array_equal(np.asarray(piv), expected)
    else:
        assert lu_ratio <= VS_LAPACK * max(_lapack_lu_ratio(np.asarray(am)), FLOOR)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [65, 200])
def test_solve_and_inv(rng, dtype, n):
    a = _graded(rng, (2, n, n), 1e5 if dtype == mx.float32 else 1e10)
    b = rng.standard_normal((2, n, 70))
    am, bm = as_mlx(a, dtype), as_mlx(b, dtype)
    (x,), failed = blocked_lu.solve(am, bm, blocks=REFERENCE)
    assert x.shape == (2, n, 70) and not np.any(np.asarray(failed))
    a_in, b_in, xs = as64(am), as64(bm), as64(x)
    u = unit_roundoff(dtype)
    assert ratio(b_in - a_in @ xs, norm(a_in) * norm(xs), u) <= SOLVE_RATIO
    kappa = np.max(np.linalg.cond(a_in))
    expected = np.linalg.solve(a_in, b_in)
    assert np.max(norm(xs - expected) / norm(expected)) <= FORWARD * np.sqrt(n) * kappa * u
    (ai,), failed = blocked_lu.inv(am, blocks=REFERENCE)
    assert not np.any(np.asarray(failed))
    ai = as64(ai)
    residual = np.eye(n) - ai @ a_in
    assert ratio(residual, n * norm(a_in) * norm(ai), u) <= INV_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans", [0, 1, 2])
def test_lu_solve(rng, dtype, trans):
    n = 130
    a = rng.standard_normal((2, n, n))
    b = rng.standard_normal((2, n, 3))
    am, bm = as_mlx(a, dtype), as_mlx(b, dtype)
    (packed, piv), _ = blocked_lu.lu_factor(am, blocks=REFERENCE)
    (x,), failed = blocked_lu.lu_solve(packed, piv, bm, trans=trans, blocks=REFERENCE)
    assert not np.any(np.asarray(failed))
    op = as64(am) if trans == 0 else np.swapaxes(as64(am), -1, -2)
    xs = as64(x)
    u = unit_roundoff(dtype)
    assert ratio(as64(bm) - op @ xs, norm(op) * norm(xs), u) <= SOLVE_RATIO
    if dtype == mx.float64:  # SciPy's packed LU and pivots give the same X
        for i in range(2):
            expected = scipy.linalg.lu_solve(scipy.linalg.lu_factor(a[i]), b[i], trans=trans)
            np.testing.assert_allclose(xs[i], expected, rtol=1e-9, atol=1e-10)


def test_det_and_slogdet(rng):
    n = 130
    a = rng.standard_normal((3, n, n)) / (2 * np.sqrt(n)) + np.eye(n)  # κ ~ 3, |det| ~ 1
    a[1, :, [0, 1]] = a[1, :, [1, 0]]  # one more interchange: sign flips
    for dtype in DTYPES:
        am = as_mlx(a, dtype)
        a_in = as64(am)
        u = unit_roundoff(dtype)
        sign, logabs = np.linalg.slogdet(a_in)
        (s, la), failed = blocked_lu.slogdet(am, blocks=REFERENCE)
        assert failed is None and s.shape == (3,)
        np.testing.assert_array_equal(np.asarray(s), sign)
        # logabsdet = sum log|u_ii|: absolute error about n·u per unit of κ (here κ ~ 5).
        np.testing.assert_allclose(as64(la), logabs, rtol=0, atol=FORWARD * n * u * 5)
        (d,), _ = blocked_lu.det(am, blocks=REFERENCE)
        np.testing.assert_allclose(as64(d), sign * np.exp(logabs), rtol=FORWARD * n * u * 5)


def test_singular_and_nan_stay_in_their_matrix(rng):
    n = 100
    a = rng.standard_normal((4, n, n)) / np.sqrt(n)  # |det| well inside float32's range
    a[1, :, 90] = 0.0  # exactly singular, found in the second panel
    a[2, 5, 7] = np.nan
    b = rng.standard_normal((4, n, 2))
    am, bm = as_mlx(a, mx.float32), as_mlx(b, mx.float32)
    (x,), failed = blocked_lu.solve(am, bm, blocks=REFERENCE)
    flags = np.asarray(failed)
    assert flags[1] and not flags[0] and not flags[3]
    xs = as64(x)
    assert np.all(np.isnan(xs[1])) and np.all(np.isnan(xs[2]))
    assert np.all(np.isfinite(xs[[0, 3]]))
    u = unit_roundoff(np.float32)
    good = as64(am)[[0, 3]]
    assert ratio(as64(bm)[[0, 3]] - good @ xs[[0, 3]], norm(good) * norm(xs[[0, 3]]), u) <= 30
    (ai,), failed = blocked_lu.inv(am, blocks=REFERENCE)
    assert np.asarray(failed)[1] and np.all(np.isnan(as64(ai)[1]))
    (packed, piv), _ = blocked_lu.lu_factor(am, blocks=REFERENCE)
    p1 = as64(packed)[1]
    assert np.all(np.isfinite(p1)) and np.any(np.diagonal(p1) == 0)  # getrf keeps it
    (d,), _ = blocked_lu.det(am, blocks=REFERENCE)
    assert as64(d)[1] == 0 and np.isnan(as64(d)[2])


def test_lu_solve_invalid_pivots_fail(rng):
    n = 70
    a = as_mlx(rng.standard_normal((2, n, n)), mx.float64)
    (packed, piv), _ = blocked_lu.lu_factor(a, blocks=REFERENCE)
    piv = np.array(piv)
    piv[0, 3] = n
    (x,), failed = blocked_lu.lu_solve(
        packed, mx.array(piv), mx.ones((2, n, 1), dtype=mx.float64), trans=0, blocks=REFERENCE
    )
    np.testing.assert_array_equal(np.asarray(failed), [True, False])
    assert np.all(np.isnan(as64(x)[0])) and np.all(np.isfinite(as64(x)[1]))


def test_lu_small_blocks_batch_axes(rng):
    n = 40
    a = rng.standard_normal((2, 3, n, n))
    (packed, piv), _ = blocked_lu.lu_factor(as_mlx(a, mx.float64), blocks=REFERENCE, block=8)
    assert packed.shape == (2, 3, n, n) and piv.shape == (2, 3, n)
    for idx in np.ndindex(2, 3):
        lu_ref, piv_ref = scipy.linalg.lu_factor(a[idx])
        np.testing.assert_array_equal(np.asarray(piv[idx]), piv_ref)
        np.testing.assert_allclose(as64(packed[idx]), lu_ref, rtol=1e-10, atol=1e-12)


def _lapack_pivots(rng, batch: int, m: int, k: int) -> np.ndarray:
    """Random valid LAPACK pivots: piv[j] in [j, m)."""
    return np.stack([[rng.integers(j, m) for j in range(k)] for _ in range(batch)])


def test_pivots_and_permutations_round_trip(rng):
    m, k = 37, 30
    piv = _lapack_pivots(rng, 4, m, k)
    perm = blocked_panel.permutation(mx.array(piv, dtype=mx.int32), m)
    expected = np.stack([replay_pivots(p, m) for p in piv])
    np.testing.assert_array_equal(np.asarray(perm), expected)
    np.testing.assert_array_equal(np.asarray(blocked_panel.pivots(perm, k)), piv)
    signs = np.asarray(blocked_lu.parity(perm))
    np.testing.assert_array_equal(signs, [np.linalg.det(np.eye(m)[p]) for p in expected])
    assert blocked_panel.pivots(perm, 0).shape == (4, 0)
    identity = blocked_panel.permutation(mx.zeros((2, 0), dtype=mx.int32), 5)
    np.testing.assert_array_equal(np.asarray(identity), [np.arange(5)] * 2)
    one = blocked_panel.permutation(mx.array([[3], [0]], dtype=mx.int32), 5)
    np.testing.assert_array_equal(np.asarray(one), [[3, 1, 2, 0, 4], np.arange(5)])


def test_inverse_permutation_is_the_argsort(rng):
    perm = np.stack([rng.permutation(n) for n in (50, 50, 50)]).astype(np.int32)
    inverse = np.asarray(blocked_panel.inverse_permutation(mx.array(perm)))
    assert inverse.dtype == np.int32
    np.testing.assert_array_equal(inverse, np.argsort(perm, axis=1))
    assert blocked_panel.inverse_permutation(mx.zeros((2, 0), dtype=mx.int32)).shape == (2, 0)


def test_lu_panel_nan_and_ties(rng):
    """A NaN column never picks an already chosen row; exact ties give a valid LU."""
    a = rng.standard_normal((2, 40, 6))
    a[0, :, 3] = np.nan  # every candidate NaN at step 3
    a[1] = np.round(a[1])  # integer entries: many exact ties
    packed, perm = blocked_panel.lu_panel(as_mlx(a, mx.float64))
    perm = np.asarray(perm)
    for row in perm:
        np.testing.assert_array_equal(np.sort(row), np.arange(40))
    lower = np.tril(as64(packed[1]), -1)[:, :6] + np.eye(40, 6)
    upper = np.triu(as64(packed[1])[:6])
    np.testing.assert_allclose(lower @ upper, a[1][perm[1]], atol=1e-12)
    assert np.all(np.abs(lower) <= 1)


def test_lu_graphs_are_lazy(rng):
    n = 12
    a = as_mlx(rng.standard_normal((2, n, n)), mx.float32)
    b = as_mlx(rng.standard_normal((2, n, 2)), mx.float32)

    def factor_and_solve(a, b):
        (packed, piv), _ = blocked_lu.lu_factor(a, blocks=REFERENCE, block=4)
        (x,), failed = blocked_lu.lu_solve(packed, piv, b, trans=0, blocks=REFERENCE, block=4)
        return x, failed

    x, failed = mx.compile(factor_and_solve)(a, b)
    assert not np.any(np.asarray(failed))
    expected = np.linalg.solve(as64(a), as64(b))
    np.testing.assert_allclose(as64(x), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "mode"),
    [
        ((1, 1), "reduced"),
        ((63, 63), "reduced"),
        ((65, 65), "complete"),
        ((150, 150), "reduced"),
        ((200, 70), "reduced"),
        ((200, 70), "complete"),
        ((70, 200), "reduced"),
    ],
)
def test_qr_accuracy(rng, dtype, shape, mode):
    m, n = shape
    a = rng.standard_normal((2, m, n))
    am = as_mlx(a, dtype)
    (q, r), failed = blocked_qr.qr(am, mode=mode, blocks=REFERENCE, block=64)
    k = min(m, n) if mode == "reduced" else m
    assert q.shape == (2, m, k) and r.shape == (2, k, n) and q.dtype == dtype
    assert not np.any(np.asarray(failed))
    qs, rs, a_in = as64(q), as64(r), as64(am)
    u = unit_roundoff(dtype)
    assert np.all(np.tril(rs, -1) == 0)
    ours = qr_ratio(a_in, qs, rs, u)
    assert ours <= QR_RATIO
    if dtype == mx.float64:  # LAPACK's reflectors (dlarfg signs): the same R
        expected = np.stack([scipy.linalg.qr(one, mode="economic")[1] for one in a])
        np.testing.assert_allclose(rs[:, : min(m, n)], expected, rtol=0, atol=1e-12 * np.sqrt(m))
    else:
        lapack = 0.0
        for one in np.asarray(am):
            lq, lr = scipy.linalg.qr(one, mode="economic")
            lapack = max(lapack, qr_ratio(one.astype(np.float64), lq, lr, u))
        assert ours <= VS_LAPACK * max(lapack, FLOOR)


def test_qr_graded_and_rank_deficient_float32(rng):
    m, n = 160, 130
    graded = _graded(rng, (1, m, m), 1e7)[:, :, :n]
    deficient = rng.standard_normal((1, m, 40)) @ rng.standard_normal((1, 40, n))
    deficient[:, :, 5] = 0.0  # a zero column: a reflector that is the identity
    a = np.concatenate([graded, deficient])
    am = as_mlx(a, mx.float32)
    (q, r), _ = blocked_qr.qr(am, mode="reduced", blocks=REFERENCE)
    assert qr_ratio(as64(am), as64(q), as64(r), unit_roundoff(np.float32)) <= QR_RATIO


def test_qr_nan_stays_in_its_matrix(rng):
    a = rng.standard_normal((3, 100, 80))
    a[1, 50, 70] = np.nan
    a[2, 0, 0] = np.inf
    (q, r), failed = blocked_qr.qr(as_mlx(a, mx.float32), mode="reduced", blocks=REFERENCE)
    np.testing.assert_array_equal(np.asarray(failed), [False, True, True])
    qs, rs = as64(q), as64(r)
    assert np.all(np.isnan(qs[1:])) and np.all(np.isnan(rs[1:]))
    assert np.all(np.isfinite(qs[0])) and np.all(np.isfinite(rs[0]))


def test_qr_batch_axes_and_lazy(rng):
    a = as_mlx(rng.standard_normal((2, 3, 9, 6)), mx.float32)

    def factor(a):
        return blocked_qr.qr(a, mode="reduced", blocks=REFERENCE, block=4)[0]

    q, r = mx.compile(factor)(a)
    assert q.shape == (2, 3, 9, 6) and r.shape == (2, 3, 6, 6)
    (q1, r1), _ = blocked_qr.qr(a[1, 2], mode="reduced", blocks=REFERENCE, block=4)
    np.testing.assert_allclose(as64(q[1, 2]), as64(q1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(as64(r[1, 2]), as64(r1), rtol=0, atol=1e-5)
    assert qr_ratio(as64(a), as64(q), as64(r), unit_roundoff(np.float32)) <= QR_RATIO


def test_rules_serve_the_public_functions(rng, monkeypatch):
    """blocked_rules.RULES as GPU_RULES (reference building blocks, the GPU backend
    pretended): every public function gets the right answer through them, failures
    included."""
    monkeypatch.setattr(_dispatch, "backend", lambda stream=None: "gpu")
    used = set()
    for op, (applies, impl) in blocked_rules.RULES.items():

        def traced(*args, _op=op, _impl=impl, **kwargs):
            used.add(_op)
            return _impl(*args, **kwargs)

        rule = (applies, functools.partial(traced, blocks=REFERENCE))
        monkeypatch.setitem(_dispatch.GPU_RULES, op, [rule])
    n = 100
    a = rng.standard_normal((2, n, n)).astype(np.float32)
    spd = (a @ np.swapaxes(a, -1, -2) / n + np.eye(n)).astype(np.float32)
    b = rng.standard_normal((2, n, 3)).astype(np.float32)
    am, sm, bm = mx.array(a), mx.array(spd), mx.array(b)
    a64, spd64, b64 = (x.astype(np.float64) for x in (a, spd, b))
    close = functools.partial(np.testing.assert_allclose, rtol=2e-3, atol=2e-4)
    factor = la.cholesky(sm)
    close(np.asarray(factor), np.linalg.cholesky(spd64))
    close(np.asarray(la.cholesky(sm, upper=True)), np.swapaxes(np.linalg.cholesky(spd64), 1, 2))
    close(np.asarray(la.cho_solve((factor, True), bm)), np.linalg.solve(spd64, b64))
    close(np.asarray(la.solve(am, bm)), np.linalg.solve(a64, b64))
    close(np.asarray(la.inv(am)), np.linalg.inv(a64))
    close(np.asarray(la.det(am / 3)), np.linalg.det(a64 / 3))
    sign, logabs = la.slogdet(am)
    np.testing.assert_array_equal(np.asarray(sign), np.linalg.slogdet(a64)[0])
    close(np.asarray(logabs), np.linalg.slogdet(a64)[1])
    packed, piv = la.lu_factor(am)
    np.testing.assert_array_equal(np.asarray(piv), [scipy.linalg.lu_factor(m)[1] for m in a64])
    close(
        np.asarray(la.lu_solve((packed, piv), bm, trans=1)),
        np.linalg.solve(a64.transpose(0, 2, 1), b64),
    )
    p, lower, upper = la.lu(am)
    close(np.asarray(p) @ np.asarray(lower) @ np.asarray(upper), a64)
    t = np.triu(a64) + 10 * np.eye(n)
    close(
        np.asarray(la.solve_triangular(mx.array(t.astype(np.float32)), bm)), np.linalg.solve(t, b64)
    )
    q, r = la.qr(am)
    close(np.asarray(q) @ np.asarray(r), a64)
    assert used == set(blocked_rules.RULES)
    bad = spd.copy()
    bad[1, 80, 80] = -1.0
    with la.errstate(linalg="raise"), pytest.raises(la.LinAlgError, match=r"index \(1,\)"):
        la.cholesky(mx.array(bad))


@pytest.mark.parametrize("op", sorted(blocked_rules.RULES))
def test_dispatch_takes_the_blocked_path_from_the_crossover_on(op):
    """On the GPU backend, float32 matrices of order CROSSOVER[op] and above take the blocked
    graph; one order less keeps the CPU (LAPACK) path; float64 never takes it."""
    crossover = blocked_rules.CROSSOVER[op]
    _, blocked = blocked_rules.RULES[op]

    def picked(n, dtype=mx.float32):
        a = mx.zeros((n, n), dtype=dtype)
        rhs = (mx.zeros((n, 2), dtype=dtype),) if op in RHS_OPS else ()
        keywords = {"mode": "reduced"} if op == "qr" else {}
        return _dispatch.implementation(op, mx.gpu, a, *rhs, **keywords)

    assert inspect.unwrap(picked(crossover)) is blocked  # compiled, run on the given stream
    assert picked(crossover - 1) is getattr(_dispatch.lapack, op)
    assert picked(crossover, mx.float64) is getattr(_dispatch.lapack, op)


RHS_OPS = ("cho_solve", "lu_solve", "solve", "solve_triangular")
