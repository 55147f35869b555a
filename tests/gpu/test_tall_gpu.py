"""GPU tests of the dispatched tall-skinny QR and SVD (mlx_linalg._gpu.tall_rules): the public
functions on the GPU with MLX's default TF32 setting (``MLX_ENABLE_TF32`` unset: every product
must still be float32-accurate), up to 65536 x 64 SVD and 16384 x 256 QR.

The checks of tests/test_tall_rules.py through ``mlx_linalg.qr`` / ``svd`` / ``svdvals`` and
what is built on them: DESIGN.md's ratios, singular values against SciPy's float64 ones,
10x float32 LAPACK, κ = 1, 1e3 and 1e6 (the Householder fallback), rank-deficient, zero and
NaN/Inf matrices in a batch, full_matrices both ways, wide input, agreement with the CPU path,
and ``mx.compile`` (the fallback's host read sends it to the lazy CPU form). The thresholds
are pinned to permissive values (every shape here takes the tall rule, whatever the measured
ones are) and each test first asserts that the dispatch picks it. Run by tools/gpu-check.sh.
Not yet run on a GPU (rehearsed on the CPU with the REFERENCE building blocks and the
Jacobi references: all pass).
"""

import math

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from matrices import (
    QR_RATIO,
    SVD_RATIO,
    as64,
    assert_float32_svd,
    graded_float32,
    gram_error,
    hard_batch,
    norm,
    qr_ratio,
    ratio,
    svd_ratios,
)

import mlx_linalg as la
from mlx_linalg import _dispatch
from mlx_linalg._gpu import tall_rules

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
FORWARD = 10
VS_LAPACK = 10
FLOOR = 1.0



PERMISSIVE = {
    "QR_TALL_RATIO": 8,
    "QR_MAX_COLS": 1024,
    "QR_MIN_WORK": 0,
    "SVD_TALL_RATIO": 2,
    "SVD_MIN_WORK": 0,
    "SVD_FULL_MAX_ROWS": 16384,
}


@pytest.fixture(autouse=True)
def permissive_thresholds(monkeypatch):
    """The tall rules for every shape here, whatever thresholds tools/bench_tall.py set (the
    tests check the path's results, not where it pays off): no least work, the first-guess
    ratios and limits."""
    for name, value in PERMISSIVE.items():
        monkeypatch.setattr(tall_rules, name, value)


def _assert_tall_rule(op: str, x: mx.array, **keywords) -> None:
    """The dispatch picks the tall rule for ``x``."""
    impl = _dispatch.implementation(op, mx.gpu, x, **keywords)
    assert getattr(impl, "__wrapped__", None) is getattr(tall_rules, op), (op, x.shape)


@pytest.mark.parametrize(
    ("shape", "cond"),
    [
        ((1000, 1), 1.0),
        ((300, 16), 1e3),
        ((2, 3, 2048, 32), 1e3),
        ((4096, 64), 1.0),
        ((4096, 64), 1e6),
        ((65536, 64), 1e3),
        ((16384, 256), 1.0),
        ((16384, 256), 1e3),
    ],
)
def test_tall_qr_gpu(rng, shape, cond):
    a = graded_float32(rng, shape, cond)
    x = mx.array(a)
    _assert_tall_rule("qr", x, mode="reduced")
    q, r = la.qr(x)
    qn, rn = as64(q), as64(r)
    assert qn.shape == shape and rn.shape == (*shape[:-2], shape[-1], shape[-1])
    got = qr_ratio(a.astype(np.float64), qn, rn, U32)
    assert got <= QR_RATIO
    flat = a.reshape(-1, *shape[-2:])
    pairs = [scipy.linalg.qr(m, mode="economic") for m in flat]
    lapack = qr_ratio(
        flat.astype(np.float64),
        np.array([p[0] for p in pairs], dtype=np.float64),
        np.array([p[1] for p in pairs], dtype=np.float64),
        U32,
    )
    assert got <= VS_LAPACK * max(lapack, FLOOR)
    assert np.all(np.diagonal(rn, axis1=-2, axis2=-1) >= 0) and np.all(np.tril(rn, -1) == 0)


def _check_svd(a: np.ndarray, full: bool) -> None:
    x = mx.array(a)
    _assert_tall_rule("svd", x, full_matrices=full)
    u, s, vh = (as64(t) for t in la.svd(x, full_matrices=full))
    m, n = a.shape[-2:]
    k = min(m, n)
    assert u.shape[-2:] == (m, m if full else k) and vh.shape[-2:] == (n if full else k, n)
    _, bound = assert_float32_svd(a, u, s, vh, vs_lapack=VS_LAPACK, floor=FLOOR, forward=FORWARD)
    _assert_tall_rule("svdvals", x)
    np.testing.assert_allclose(as64(la.svdvals(x)), s, rtol=0, atol=float(bound.max()))


@pytest.mark.parametrize(
    "shape", [(1000, 1), (300, 16), (16, 300), (2, 3, 500, 40), (4096, 64), (64, 4096)]
)
@pytest.mark.parametrize("cond", [1.0, 1e3, 1e6])
@pytest.mark.parametrize("full", [False, True])
def test_tall_svd_gpu(rng, shape, cond, full):
    _check_svd(graded_float32(rng, shape, cond), full)


@pytest.mark.parametrize("cond", [1.0, 1e3])
def test_tall_svd_gpu_65536x64(rng, cond):
    _check_svd(graded_float32(rng, (65536, 64), cond), False)


@pytest.mark.parametrize("full", [False, True])
def test_tall_svd_gpu_hard_matrices(rng, full):
    """Rank 3, a zero column, the zero matrix and NaN/Inf matrices in one batch: the finite
    ones meet the thresholds, the others are NaN alone."""
    m, n = 2000, 48
    a, good = hard_batch(rng, m, n)
    x = mx.array(a)
    u, s, vh = (as64(t) for t in la.svd(x, full_matrices=full))
    assert all(np.all(np.isnan(t[3:])) for t in (u, s, vh))
    assert all(np.all(np.isfinite(t[:3])) for t in (u, s, vh))
    assert max(svd_ratios(good.astype(np.float64), u[:3], s[:3], vh[:3], U32)) <= SVD_RATIO
    s_ref = np.linalg.svd(good.astype(np.float64), compute_uv=False)
    assert np.all(np.abs(s[:3] - s_ref) <= FORWARD * math.sqrt(m) * U32 * s_ref[:, :1])
    q, r = la.qr(x)
    qn, rn = as64(q), as64(r)
    assert np.all(np.isnan(qn[3:])) and np.all(np.isfinite(qn[:3]))
    assert qr_ratio(good.astype(np.float64), qn[:3], rn[:3], U32) <= QR_RATIO


def test_functions_built_on_svd_gpu(rng):
    """pinv, matrix_rank, cond, matrix_norm, orth, null_space and lstsq (gels) on the GPU,
    through the tall rules."""
    a = graded_float32(rng, (2, 4096, 24), 1e2)
    a[1, :, 23] = a[1, :, 0]  # rank 23
    x = mx.array(a)
    a64 = a.astype(np.float64)
    s_ref = np.linalg.svd(a64, compute_uv=False)
    tol = FORWARD * math.sqrt(4096) * U32
    pinv_ref = np.linalg.pinv(a64)
    lapack = norm(np.array([scipy.linalg.pinv(t) for t in a]) - pinv_ref) / norm(pinv_ref)
    ours = norm(as64(la.pinv(x)) - pinv_ref) / norm(pinv_ref)
    assert np.all(ours <= VS_LAPACK * np.maximum(lapack, tol))
    assert np.asarray(la.matrix_rank(x)).tolist() == [24, 23]
    np.testing.assert_allclose(as64(la.cond(x[0])), np.linalg.cond(a64[0]), rtol=1e-4)
    for order in (2, -2, "nuc"):
        expected = np.linalg.norm(a64, ord=order, axis=(-2, -1))
        got = as64(la.matrix_norm(x, ord=order))
        np.testing.assert_allclose(got, expected, rtol=0, atol=24 * tol * s_ref.max())
    basis = as64(la.orth(x[:1]))
    assert basis.shape == (1, 4096, 24) and ratio(gram_error(basis), 4096, U32) <= SVD_RATIO
    null = as64(la.null_space(x[1:]))
    assert null.shape == (1, 24, 1) and np.linalg.norm(a64[1] @ null[0]) <= tol * s_ref[1, 0]
    b = rng.standard_normal((4096, 2)).astype(np.float32)
    solution = as64(la.lstsq(x[0], mx.array(b), driver="gels").solution)
    expected = np.linalg.lstsq(a64[0], b.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(solution, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_tall_gpu_agrees_with_cpu_and_under_compile(rng):
    a = graded_float32(rng, (2, 8192, 32), 1e3)
    x = mx.array(a)
    s_gpu = as64(la.svdvals(x))
    s_cpu = as64(la.svdvals(x, stream=mx.cpu))
    bound = FORWARD * math.sqrt(8192) * U32 * s_cpu[:, :1]
    assert np.all(np.abs(s_gpu - s_cpu) <= bound)
    s_compiled = as64(mx.compile(la.svdvals)(x))
    assert np.all(np.abs(s_compiled - s_cpu) <= bound)
    q, r = mx.compile(lambda y: tuple(la.qr(y)))(x)
    assert qr_ratio(a.astype(np.float64), as64(q), as64(r), U32) <= QR_RATIO
