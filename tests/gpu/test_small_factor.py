"""GPU tests of the batched small-matrix kernels cholesky_small, lu_small, solve_small,
lu_solve_small and trsm_small.

Each kernel is compared with its MLX-op reference (``mlx_linalg._gpu.reference``, run on
the CPU stream) over many shapes; the public functions, dispatched to the kernels on the
GPU, are held to DESIGN.md's accuracy thresholds in float64 on Gaussian and graded inputs;
failures (not positive definite, singular) and NaN/Inf stay in their own matrix.
"""

import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg as la
from mlx_linalg import _dispatch, _kernels
from mlx_linalg._gpu import reference as ref
from mlx_linalg._gpu import small_factor as sf

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
CHOLESKY_RATIO = 30
LU_RATIO = 30
SOLVE_RATIO = 30
INV_RATIO = 30
# Kernel vs reference: the same algorithm, differing in rounding only (fused multiply-adds,
# reciprocal vs division), so entries agree to a few n·u of the result's scale.
AGREE = 20
SIZES = [1, 2, 3, 5, 8, 9, 16, 17, 31, 32, 33, 47, 63, 64]
BATCH = 5


def _fro(x) -> np.ndarray:
    return np.linalg.norm(np.asarray(x, dtype=np.float64), axis=(-2, -1))


def _gaussian(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _spd(batch: int, n: int, seed: int, cond: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if cond is None:
        a = rng.standard_normal((batch, n, n))
        return (a @ np.swapaxes(a, -1, -2) / n + np.eye(n)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((batch, n, n)))
    return (
        (q * np.logspace(0, -np.log10(cond), n)[None, None, :]) @ np.swapaxes(q, -1, -2)
    ).astype(np.float32)


def _graded(batch: int, n: int, cond: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((batch, n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((batch, n, n)))
    return ((u * np.logspace(0, -np.log10(cond), n)[None, None, :]) @ v).astype(np.float32)


def _well_conditioned(batch: int, n: int, seed: int) -> np.ndarray:
    """G/sqrt(n) + 2I: eigenvalues in the disc |z - 2| <= 1, condition number ~5."""
    g = np.random.default_rng(seed).standard_normal((batch, n, n)) / np.sqrt(n)
    return (g + 2 * np.eye(n)).astype(np.float32)


def _on_cpu(fn, *args, **kwargs):
    with mx.stream(mx.cpu):
        out = fn(*args, **kwargs)
        mx.eval(out)
    return out


def _agree(kernel, reference, n: int, scale: np.ndarray | float = 1.0) -> None:
    k = np.asarray(kernel, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(k), np.isnan(r))
    bound = AGREE * max(n, 1) * U32 * np.maximum(np.asarray(scale), np.finfo(np.float32).tiny)
    err = np.abs(np.nan_to_num(k) - np.nan_to_num(r))
    assert np.all(err <= bound), f"max error {err.max():.3g}, bound {np.min(bound):.3g}"


def _row_scale(x: np.ndarray) -> np.ndarray:
    """Per-matrix max |entry|, broadcastable against the stack."""
    return np.max(
        np.abs(np.nan_to_num(np.asarray(x, dtype=np.float64))), axis=(-2, -1), keepdims=True
    )


# --- kernels against their references -------------------------------------------------


@pytest.fixture(params=[False, True], ids=["threadgroup", "simd"])
def variant(request, monkeypatch):
    """Both factorization variants: in threadgroup memory, and in one simdgroup's registers."""
    monkeypatch.setattr(sf, "SIMD_FACTOR", dict.fromkeys(sf.SIMD_FACTOR, request.param))
    return request.param


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_kernel_matches_reference(n, upper, variant):
    a = mx.array(_spd(BATCH, n, seed=n))
    (factor,), failed = sf.cholesky(a, upper=upper)
    expected, ref_failed = _on_cpu(ref.cholesky_small, a, upper=upper)
    _agree(factor, expected, n, _row_scale(expected))
    assert not np.asarray(failed).any() and not np.asarray(ref_failed).any()


@pytest.mark.parametrize("m, n", [(n, n) for n in SIZES] + [(7, 3), (3, 7), (64, 20), (20, 64)])
def test_lu_kernel_matches_reference(m, n, variant):
    a = mx.array(_gaussian((BATCH, m, n), seed=100 + m * n))
    (packed, piv), failed = sf.lu_factor(a)
    exp_packed, exp_piv, _ = _on_cpu(ref.lu_small, a)
    assert failed is None
    np.testing.assert_array_equal(np.asarray(piv), np.asarray(exp_piv))
    _agree(packed, exp_packed, max(m, n), _row_scale(exp_packed))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("k", [1, 3, 40])
def test_solve_kernel_matches_reference(n, k, variant):
    a = mx.array(_well_conditioned(BATCH, n, seed=200 + n))
    b = mx.array(_gaussian((BATCH, n, k), seed=300 + n))
    (x,), failed = sf.solve(a, b)
    expected, info = _on_cpu(ref.solve_small, a, b)
    _agree(x, expected, n, _row_scale(expected))
    assert not np.asarray(failed).any()


@pytest.mark.parametrize("n", [1, 5, 32, 33, 64])
def test_inv_kernel_matches_reference(n, variant):
    a = mx.array(_well_conditioned(BATCH, n, seed=400 + n))
    (x,), failed = sf.inv(a)
    expected, _ = _on_cpu(ref.solve_small, a, a, eye=True)
    _agree(x, expected, n, _row_scale(expected))


@pytest.mark.parametrize("n", [1, 4, 31, 32, 33, 64])
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("trans", [0, 1])
@pytest.mark.parametrize("unit", [False, True])
def test_trsm_kernel_matches_reference(n, lower, trans, unit):
    rng = np.random.default_rng(500 + n)
    a = rng.standard_normal((BATCH, n, n)) / np.sqrt(n) + 2 * np.eye(n)
    a = mx.array(a.astype(np.float32))
    b = mx.array(_gaussian((BATCH, n, 35), seed=600 + n))
    (x,), failed = sf.solve_triangular(a, b, lower=lower, unit_diagonal=unit, trans=trans)
    expected, _ = _on_cpu(ref.trsm_small, a, b, lower=lower, trans=bool(trans), unit=unit)
    _agree(x, expected, n, _row_scale(expected))
    assert not np.asarray(failed).any()


@pytest.mark.parametrize("n", [1, 6, 32, 64])
@pytest.mark.parametrize("trans", [0, 1])
def test_lu_solve_kernel_matches_reference(n, trans):
    a = mx.array(_well_conditioned(BATCH, n, seed=700 + n))
    b = mx.array(_gaussian((BATCH, n, 33), seed=800 + n))
    packed, piv, _ = _on_cpu(ref.lu_small, a)
    (x,), failed = sf.lu_solve(packed, piv, b, trans=trans)
    expected, _ = _on_cpu(ref.lu_solve_small, packed, piv, b, trans=bool(trans))
    _agree(x, expected, n, _row_scale(expected))
    assert not np.asarray(failed).any()


def test_batches_split_across_launches(monkeypatch, variant):
    # A grid limit of 5 threadgroups forces 3 launches for 12 matrices.
    monkeypatch.setattr(_kernels, "MAX_GRID", 5 * (32 if variant else 128))
    a = _spd(12, 20, seed=1)
    (factor,), _ = sf.cholesky(mx.array(a), upper=False)
    np.testing.assert_allclose(np.asarray(factor), np.linalg.cholesky(a), atol=1e-5)


# --- the public functions on the GPU: dispatch and DESIGN.md thresholds -----------------


@pytest.mark.parametrize(
    "op, args",
    [
        ("cholesky", (mx.zeros((3, 8, 8)),)),
        ("lu_factor", (mx.zeros((3, 8, 5)),)),
        ("solve", (mx.zeros((3, 8, 8)), mx.zeros((3, 8, 2)))),
        ("solve_triangular", (mx.zeros((3, 64, 64)), mx.zeros((3, 64, 2)))),
    ],
)
def test_dispatch_picks_the_kernels(op, args):
    assert _dispatch.implementation(op, mx.gpu, *args).__module__ == sf.__name__
    assert _dispatch.implementation(op, mx.cpu, *args).__module__ != sf.__name__


def test_large_or_float64_stays_off_the_kernels():
    assert not sf.applies_square(mx.zeros((2, 65, 65)))
    assert not sf.applies_square(mx.zeros((2, 8, 8), dtype=mx.float64, stream=mx.cpu))
    assert not sf.applies_square(mx.zeros((0, 8, 8)))
    assert not sf.applies_rhs(mx.zeros((2, 8, 8)), mx.zeros((2, 8, 0)))


@pytest.mark.parametrize("n", [2, 8, 32, 64])
@pytest.mark.parametrize("cond", [None, 1e3, 1e6])
def test_cholesky_accuracy(n, cond):
    a = _spd(BATCH, n, seed=n, cond=cond)
    lower = np.asarray(la.cholesky(mx.array(a), stream=mx.gpu), dtype=np.float64)
    residual = _fro(lower @ np.swapaxes(lower, -1, -2) - a)
    assert np.max(residual / (n * _fro(a) * U32)) <= CHOLESKY_RATIO
    assert np.all(np.triu(lower, 1) == 0)


@pytest.mark.parametrize("n", [3, 16, 32, 64])
@pytest.mark.parametrize("cond", [None, 1e4, 1e7])
def test_lu_accuracy(n, cond):
    a = _gaussian((BATCH, n, n), n) if cond is None else _graded(BATCH, n, cond, n)
    p, lower, upper = (np.asarray(x, dtype=np.float64) for x in la.lu(mx.array(a), stream=mx.gpu))
    residual = _fro(np.swapaxes(p, -1, -2) @ a - lower @ upper)
    assert np.max(residual / (n * _fro(a) * U32)) <= LU_RATIO
    assert np.all(np.abs(np.tril(lower, -1)) <= 1)  # partial pivoting bounds the multipliers


@pytest.mark.parametrize("n", [1, 7, 32, 64])
@pytest.mark.parametrize("cond", [None, 1e4, 1e6])
def test_solve_and_inv_accuracy(n, cond):
    a = _gaussian((BATCH, n, n), n) if cond is None else _graded(BATCH, n, cond, n)
    b = _gaussian((BATCH, n, 4), n + 1)
    x = np.asarray(la.solve(mx.array(a), mx.array(b), stream=mx.gpu), dtype=np.float64)
    a64 = a.astype(np.float64)
    solve_ratio = _fro(b - a64 @ x) / (_fro(a64) * _fro(x) * U32)
    assert np.max(solve_ratio) <= SOLVE_RATIO
    xi = np.asarray(la.inv(mx.array(a), stream=mx.gpu), dtype=np.float64)
    inv_ratio = _fro(np.eye(n) - xi @ a64) / (n * _fro(a64) * _fro(xi) * U32)
    assert np.max(inv_ratio) <= INV_RATIO


@pytest.mark.parametrize("n", [1, 9, 20, 64])
def test_det_slogdet_match_lapack(n):
    a = _gaussian((BATCH, n, n), n + 7)
    a[1] = 0  # singular: det 0, sign 0, log|det| -inf
    sign, logdet = la.slogdet(mx.array(a), stream=mx.gpu)
    exp_sign, exp_log = np.linalg.slogdet(a.astype(np.float64))
    np.testing.assert_array_equal(np.asarray(sign), exp_sign)
    np.testing.assert_allclose(np.asarray(logdet), exp_log, rtol=1e-4, atol=1e-4)
    if n <= 20:  # a Gaussian 64x64 determinant (~1e43) overflows float32, as in LAPACK
        d = np.asarray(la.det(mx.array(a), stream=mx.gpu))
        np.testing.assert_allclose(d, np.linalg.det(a.astype(np.float64)), rtol=2e-3, atol=0)


@pytest.mark.parametrize("lower", [False, True])
def test_cho_solve_and_lu_solve_accuracy(lower):
    n = 40
    a = _spd(BATCH, n, seed=3)
    b = _gaussian((BATCH, n, 5), 4)
    c = la.cho_factor(mx.array(a), lower=lower, stream=mx.gpu)
    x = np.asarray(la.cho_solve(c, mx.array(b), stream=mx.gpu), dtype=np.float64)
    assert np.max(_fro(b - a @ x) / (_fro(a) * _fro(x) * U32)) <= SOLVE_RATIO
    g = _gaussian((BATCH, n, n), 5) + 3 * np.eye(n, dtype=np.float32)
    factored = la.lu_factor(mx.array(g), stream=mx.gpu)
    for trans in (0, 1):
        x = np.asarray(
            la.lu_solve(factored, mx.array(b), trans=trans, stream=mx.gpu), dtype=np.float64
        )
        op = g if trans == 0 else np.swapaxes(g, -1, -2)
        assert np.max(_fro(b - op @ x) / (_fro(g) * _fro(x) * U32)) <= SOLVE_RATIO


def test_gpu_matches_cpu_for_vectors_and_broadcasting():
    a = _gaussian((2, 1, 6, 6), 1) + 3 * np.eye(6, dtype=np.float32)
    b = _gaussian((3, 6, 2), 2)
    gpu = np.asarray(la.solve(mx.array(a), mx.array(b), stream=mx.gpu))
    cpu = np.asarray(la.solve(mx.array(a), mx.array(b), stream=mx.cpu))
    assert gpu.shape == cpu.shape == (2, 3, 6, 2)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)
    v = _gaussian((6,), 3)
    gpu_v = np.asarray(
        la.solve_triangular(mx.array(a[0, 0]), mx.array(v), lower=True, stream=mx.gpu)
    )
    cpu_v = np.asarray(
        la.solve_triangular(mx.array(a[0, 0]), mx.array(v), lower=True, stream=mx.cpu)
    )
    assert gpu_v.shape == (6,)
    np.testing.assert_allclose(gpu_v, cpu_v, rtol=1e-4, atol=1e-5)


def test_transposed_and_strided_inputs():
    a = _spd(4, 12, seed=9)
    at = mx.swapaxes(mx.array(a), -1, -2)  # a transposed view; symmetric: the same matrices
    big = np.zeros((4, 24, 24), dtype=np.float32)
    big[:, ::2, ::2] = a
    strided = mx.array(big)[:, ::2, ::2]
    expected = np.linalg.cholesky(a)
    for x in (at, strided):
        np.testing.assert_allclose(np.asarray(la.cholesky(x, stream=mx.gpu)), expected, atol=2e-5)


# --- failures and non-finite input stay in their own matrix ------------------------------


def test_not_positive_definite_fails_only_its_matrix(variant):
    a = _spd(4, 16, seed=11)
    a[2, 5, 5] = -100.0
    (factor,), failed = sf.cholesky(mx.array(a), upper=False)
    factor = np.asarray(factor)
    np.testing.assert_array_equal(np.asarray(failed), [False, False, True, False])
    assert np.isnan(factor[2]).all()
    np.testing.assert_allclose(factor[[0, 1, 3]], np.linalg.cholesky(a[[0, 1, 3]]), atol=2e-5)
    with pytest.raises(la.LinAlgError, match=r"batch index \(2,\)"), la.errstate(linalg="raise"):
        la.cholesky(mx.array(a), stream=mx.gpu)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_entries_stay_in_their_matrix(bad, variant):
    n = 20
    a = _gaussian((4, n, n), 12) + 3 * np.eye(n, dtype=np.float32)
    spd = _spd(4, n, seed=13)
    b = _gaussian((4, n, 3), 14)
    clean = [
        np.asarray(x)
        for x in (
            sf.cholesky(mx.array(spd), upper=False)[0][0],
            sf.solve(mx.array(a), mx.array(b))[0][0],
            sf.lu_factor(mx.array(a))[0][0],
            sf.inv(mx.array(a))[0][0],
            sf.solve_triangular(mx.array(a), mx.array(b), lower=True, unit_diagonal=False, trans=0)[
                0
            ][0],
        )
    ]
    a[1, 4, 3] = bad  # in the lower triangle, which every one of these ops reads
    spd[1, 4, 3] = bad
    dirty = [
        np.asarray(x)
        for x in (
            sf.cholesky(mx.array(spd), upper=False)[0][0],
            sf.solve(mx.array(a), mx.array(b))[0][0],
            sf.lu_factor(mx.array(a))[0][0],
            sf.inv(mx.array(a))[0][0],
            sf.solve_triangular(mx.array(a), mx.array(b), lower=True, unit_diagonal=False, trans=0)[
                0
            ][0],
        )
    ]
    for before, after in zip(clean, dirty, strict=True):
        np.testing.assert_array_equal(before[[0, 2, 3]], after[[0, 2, 3]])
        # NaN always propagates; an Inf pivot can give finite garbage, as in LAPACK.
        assert not np.isfinite(after[1]).all() or bad == np.inf
        assert not np.array_equal(before[1], after[1])
    assert np.isnan(dirty[0][1]).all()  # the Cholesky of a non-finite matrix fails whole


def test_singular_systems_fail_only_their_matrix(variant):
    n = 10
    a = _gaussian((3, n, n), 15) + 3 * np.eye(n, dtype=np.float32)
    a[0, :, 2] = 0  # exactly singular
    b = _gaussian((3, n, 2), 16)
    (x,), failed = sf.solve(mx.array(a), mx.array(b))
    np.testing.assert_array_equal(np.asarray(failed), [True, False, False])
    assert np.isnan(np.asarray(x)[0]).all()
    np.testing.assert_allclose(
        np.asarray(x)[1:], np.linalg.solve(a[1:], b[1:]), rtol=1e-4, atol=1e-5
    )
    t = np.triu(a[1:])
    t[0, 4, 4] = 0
    (xt,), failed_t = sf.solve_triangular(
        mx.array(t), mx.array(b[1:]), lower=False, unit_diagonal=False, trans=0
    )
    np.testing.assert_array_equal(np.asarray(failed_t), [True, False])
    assert np.isnan(np.asarray(xt)[0]).all() and np.isfinite(np.asarray(xt)[1]).all()
    (packed, piv), _ = sf.lu_factor(mx.array(a))
    assert np.asarray(packed)[0, 2, 2] == 0  # getrf keeps a zero pivot, no failure
