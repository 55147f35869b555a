"""GPU tests of the dispatched large-matrix SVD (mlx_linalg._gpu.qdwh_svd: QDWH polar, then
the two-stage eigh of H) through ``mlx_linalg.svd`` / ``svdvals`` and what is built on them,
with MLX's default TF32 setting: DESIGN.md's ratios, singular values against SciPy's
float64 ones, 10x float32 LAPACK, κ = 1, 10³ and 10⁶, repeated singular values, scaling
near float32's overflow and underflow, rank-deficient, zero and NaN/Inf matrices in a
batch, full_matrices both ways, tall and wide input, agreement with the CPU path and
``mx.compile``. Most tests lower the crossover to 256 (they check the route's results, not
where it pays off; SciPy's float64 references stay quick); one runs at the dispatched
crossover. Each test first asserts that the dispatch picks the route. Run by
tools/gpu-check.sh.
"""

import inspect
import math

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from matrices import SVD_RATIO, as64, assert_float32_svd, graded_float32, hard_batch, svd_ratios

import mlx_linalg as la
from mlx_linalg import _dispatch
from mlx_linalg._gpu import polar, qdwh_svd, tall_skinny

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
FORWARD = 10  # singular values within FORWARD·√max(m, n)·u·σ₁ of SciPy's float64 ones
VS_LAPACK = 10
FLOOR = 1.0
TEST_ORDER = 256


@pytest.fixture
def low_crossover(monkeypatch):
    monkeypatch.setitem(qdwh_svd.CROSSOVER, "svd", TEST_ORDER)
    monkeypatch.setitem(qdwh_svd.CROSSOVER, "svdvals", TEST_ORDER)


def _assert_route(op: str, x: mx.array, **keywords) -> None:
    impl = _dispatch.implementation(op, mx.gpu, x, **keywords)
    assert inspect.unwrap(impl) is getattr(qdwh_svd, op), (op, x.shape)


def _check_svd(a: np.ndarray, full: bool = False) -> np.ndarray:
    """la.svd and la.svdvals of ``a`` by the route against DESIGN.md's ratios, LAPACK's
    and SciPy's float64 singular values (``matrices.assert_float32_svd``); returns S."""
    x = mx.array(a)
    _assert_route("svd", x, full_matrices=full)
    u, s, vh = (as64(t) for t in la.svd(x, full_matrices=full))
    m, n = a.shape[-2:]
    k = min(m, n)
    assert u.shape[-2:] == (m, k) and s.shape[-1] == k and vh.shape[-2:] == (k, n)
    s_ref, bound = assert_float32_svd(
        a, u, s, vh, vs_lapack=VS_LAPACK, floor=FLOOR, forward=FORWARD
    )
    if qdwh_svd.svdvals_applies(x):  # (its crossover may lie above svd's)
        _assert_route("svdvals", x)
    assert np.all(np.abs(as64(la.svdvals(x)) - s_ref) <= bound)
    return s


@pytest.mark.parametrize("cond", [1.0, 1e3, 1e6])
@pytest.mark.parametrize("shape", [(300, 300), (2, 300, 300), (600, 300), (300, 700)])
def test_svd_gpu(rng, low_crossover, shape, cond):
    _check_svd(graded_float32(rng, shape, cond))


def test_full_matrices_of_a_square_matrix_gpu(rng, low_crossover):
    _check_svd(graded_float32(rng, (400, 400), 1e3), full=True)


def test_repeated_and_clustered_singular_values_gpu(rng, low_crossover):
    """An orthogonal matrix (all σ = 1), and three tight clusters of singular values."""
    n = 300
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    sigma = np.repeat([1.0, 1e-2, 1e-4], n // 3) * (1 + 1e-7 * rng.standard_normal(n))
    a = np.stack([q, (q * sigma) @ v.T]).astype(np.float32)
    s = _check_svd(a)
    np.testing.assert_allclose(s[0], 1.0, rtol=0, atol=FORWARD * math.sqrt(n) * U32)


@pytest.mark.parametrize("scale", [1e35, 1e-35])
def test_scaling_near_overflow_and_underflow_gpu(rng, low_crossover, scale):
    a = graded_float32(rng, (300, 300), 1e2).astype(np.float64) * scale
    _check_svd(a.astype(np.float32))


def test_hard_matrices_in_a_batch_gpu(rng, low_crossover):
    """Rank 3, a zero column, the zero matrix, and NaN/Inf matrices: the finite ones meet
    the thresholds (U orthonormal also in the null directions), the others are NaN alone."""
    m, n = 400, 300
    a, good = hard_batch(rng, m, n)
    x = mx.array(a)
    _assert_route("svd", x)
    u, s, vh = (as64(t) for t in la.svd(x, full_matrices=False))
    assert all(np.all(np.isnan(t[3:])) for t in (u, s, vh))
    assert all(np.all(np.isfinite(t[:3])) for t in (u, s, vh))
    assert max(svd_ratios(good.astype(np.float64), u[:3], s[:3], vh[:3], U32)) <= SVD_RATIO
    s_ref = np.linalg.svd(good.astype(np.float64), compute_uv=False)
    bound = FORWARD * math.sqrt(m) * U32 * np.maximum(s_ref[:, :1], np.finfo(np.float32).tiny)
    assert np.all(np.abs(s[:3] - s_ref) <= bound)
    s_only = as64(la.svdvals(x))
    assert np.all(np.isnan(s_only[3:])) and np.all(np.abs(s_only[:3] - s_ref) <= bound)


def test_functions_built_on_svd_gpu(rng, low_crossover):
    """pinv, matrix_rank, cond and matrix_norm(2, -2, 'nuc') through the route."""
    n = 300
    a = graded_float32(rng, (2, n, n), 1e2)
    a[1, :, n - 1] = a[1, :, 0]  # rank n - 1
    x = mx.array(a)
    a64 = a.astype(np.float64)
    s_ref = np.linalg.svd(a64, compute_uv=False)
    tol = FORWARD * math.sqrt(n) * U32
    pinv_ref = np.linalg.pinv(a64[0])
    pinv_error = np.linalg.norm(as64(la.pinv(x[0])) - pinv_ref) / np.linalg.norm(pinv_ref)
    lapack = np.linalg.norm(scipy.linalg.pinv(a[0]) - pinv_ref) / np.linalg.norm(pinv_ref)
    assert pinv_error <= VS_LAPACK * max(lapack, tol)
    assert np.asarray(la.matrix_rank(x)).tolist() == [n, n - 1]
    np.testing.assert_allclose(as64(la.cond(x[0])), np.linalg.cond(a64[0]), rtol=1e-3)
    for order in (2, -2, "nuc"):
        expected = np.linalg.norm(a64, ord=order, axis=(-2, -1))
        got = as64(la.matrix_norm(x, ord=order))
        np.testing.assert_allclose(got, expected, rtol=0, atol=n * tol * s_ref.max())


def test_at_the_dispatched_crossover_agrees_with_the_cpu_path_gpu(rng):
    """At svd's real crossover, twice (as a loop calls it), against the CPU path; and under
    ``mx.compile`` (the SVD route synchronizes, so the lazy CPU form runs)."""
    n = qdwh_svd.CROSSOVER["svd"]
    a = graded_float32(rng, (n, n), 1e3)
    for _ in range(2):
        s = _check_svd(a)
    s_cpu = as64(la.svdvals(mx.array(a), stream=mx.cpu))
    assert np.all(np.abs(s - s_cpu) <= FORWARD * math.sqrt(n) * U32 * s_cpu[0])
    s_compiled = as64(mx.compile(lambda x: la.svd(x, full_matrices=False)[1])(mx.array(a)))
    assert np.all(np.abs(s_compiled - s_cpu) <= FORWARD * math.sqrt(n) * U32 * s_cpu[0])


# ‖I − UᵀU‖_F/(n u) of the polar factor and of the SVD's U at n = 4096 (seed 0 Gaussian):
# 0.36 and 0.35 on an H200 with the split products of K > 256 summed from chunks, 6.4 with
# whole ones (docs/kernels-spectral-blocks.md, "Long products, summed from chunks").
LONG_PRODUCT_ORTHOGONALITY = 2


def test_long_products_keep_u_orthogonal_at_4096_gpu():
    """QDWH's polar factor and the dispatched SVD's U of a 4096 x 4096 Gaussian matrix are
    orthogonal to LONG_PRODUCT_ORTHOGONALITY n u, far inside the SVD ratio's 10x LAPACK:
    the iterations' products of inner dimension n must not accumulate it at once."""
    n = 4096
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    x = mx.array(a)
    _assert_route("svd", x, full_matrices=False)
    u_p, _, info = polar.qdwh(x[None], tall_skinny.KERNELS)
    u, _, _ = la.svd(x, full_matrices=False)
    assert np.asarray(info)[0] > 0  # converged
    for q in (np.asarray(u_p[0]).astype(np.float64), as64(u)):
        assert np.linalg.norm(np.eye(n) - q.T @ q) <= LONG_PRODUCT_ORTHOGONALITY * n * U32

