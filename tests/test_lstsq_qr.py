"""lstsq(driver="gels"): QR-based least squares (LAPACK xGELS semantics), issue #7.

Against NumPy's float64 lstsq with DESIGN.md's metrics: the lstsq ratio, a forward-error
guard from the least-squares perturbation bound, residuals; tall, square and wide systems,
vector and matrix right-hand sides, batches (broadcast too), float32, float64, complex64,
ill-conditioned full-rank input; numerically rank-deficient input gives NaN or
LinAlgError; bad drivers and empty shapes; gradients against finite differences; and
(marked ``gpu``) the GPU path against float64 on the CPU.
"""

import mlx.core as mx
import numpy as np
import pytest
from matrices import (
    DTYPES,
    LSTSQ_RATIO,
    as64,
    as_mlx,
    ct,
    norm,
    random_matrix,
    ratio,
    unit_roundoff,
)

import mlx_linalg as la
from mlx_linalg import _dispatch
from mlx_linalg._gpu import blocked_rules
from mlx_linalg._gpu.blocked_common import REFERENCE

# Forward error ‖x − x*‖/‖x*‖ <= FORWARD_C · max(M, N) · u · (κ + κ² ‖r‖ / (σ₁ ‖x*‖)), the
# least-squares perturbation bound (Golub and Van Loan, Matrix Computations, Thm. 5.3.1);
# the largest seen is 0.74 of max(M, N) · u · (...) (float64, cond 1, 20 x 20).
FORWARD_C = 4
GPU_FORWARD_C = 8  # the GPU's float32 products are split TF32 products (DESIGN.md)
FD_EPS = 1e-6  # finite-difference step in float64
FD_RTOL = 1e-6  # Richardson-extrapolated central differences: ~ε⁴ + u/ε

SHAPES = [(40, 12), (20, 20), (12, 40), (1, 1), (3, 9, 4), (2, 4, 9), (2, 3, 6, 6)]


def _reference(a64: np.ndarray, b64: np.ndarray) -> np.ndarray:
    """Float64/complex128 minimum-norm least-squares solutions of a stack (NumPy gelsd)."""
    flat_a = a64.reshape((-1,) + a64.shape[-2:])
    flat_b = np.broadcast_to(b64, a64.shape[:-2] + b64.shape[-2:]).reshape((-1,) + b64.shape[-2:])
    x = [np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(flat_a, flat_b, strict=True)]
    return np.stack(x).reshape(a64.shape[:-2] + (a64.shape[-1], b64.shape[-1]))


def _check_solution(a, b, x, dtype, c=FORWARD_C):
    """The lstsq ratio and the forward-error guard (constant ``c``) of (..., M, N) a,
    (..., M, K) b and x."""
    a64, b64, x64 = as64(a), as64(b), as64(x)
    m, n = a64.shape[-2:]
    u = unit_roundoff(dtype)
    r = b64 - a64 @ x64
    # ‖rᴴA‖ / (‖A‖ (‖r‖ + ‖A‖‖x‖) max(M, N) u): DESIGN.md's ratio, with conformance's
    # denominator that stays finite for consistent systems.
    scale = norm(a64) * (norm(r) + norm(a64) * norm(x64)) * max(m, n)
    assert ratio(ct(r) @ a64, scale, u) <= LSTSQ_RATIO
    expected = _reference(a64, b64)
    s = np.linalg.svd(a64, compute_uv=False)
    kappa = s[..., 0] / s[..., -1]
    size = np.maximum(norm(expected), np.finfo(np.float64).tiny)
    r_star = norm(b64 - a64 @ expected)
    bound = c * max(m, n) * u * (kappa + kappa**2 * r_star / (s[..., 0] * size))
    assert np.all(norm(x64 - expected) / size <= bound)
    return expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_gels_matches_numpy(rng, dtype, shape):
    a = random_matrix(rng, shape, dtype, cond=1e2)
    b = random_matrix(rng, shape[:-1] + (3,), dtype)
    x, residuals, rank, s = la.lstsq(a, b, driver="gels")
    m, n = shape[-2:]
    batch = shape[:-2]
    assert x.shape == batch + (n, 3) and x.dtype == dtype
    assert rank.shape == batch and rank.dtype == mx.int32
    assert np.all(np.asarray(rank) == min(m, n))
    assert s.shape == batch + (0,) and s.dtype == (mx.float32 if dtype == mx.complex64 else dtype)
    _check_solution(a, b, x, dtype)
    if m > n:
        r = as64(b) - as64(a) @ as64(x)
        np.testing.assert_allclose(as64(residuals), (np.abs(r) ** 2).sum(-2), rtol=1e-4)
        assert residuals.dtype == s.dtype
    else:
        assert residuals.shape == batch + (0,)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(30, 8), (8, 8), (8, 30)])
def test_gels_of_a_vector_b_matches_gelsd(rng, dtype, shape):
    a = random_matrix(rng, shape, dtype)
    b = random_matrix(rng, shape[:1] + (1,), dtype)[:, 0]
    ours = la.lstsq(a, b, driver="gels")
    theirs = la.lstsq(a, b, driver="gelsd")
    assert ours.solution.shape == theirs.solution.shape == (shape[1],)
    assert ours.residuals.shape == theirs.residuals.shape
    _check_solution(a, b[:, None], ours.solution[:, None], dtype)
    u = unit_roundoff(dtype)
    np.testing.assert_allclose(
        as64(ours.residuals), as64(theirs.residuals), rtol=100 * u, atol=100 * u
    )


@pytest.mark.parametrize(
    ("dtype", "cond"), [(mx.float32, 1e4), (mx.complex64, 1e4), (mx.float64, 1e10)]
)
@pytest.mark.parametrize("shape", [(40, 12), (16, 16), (12, 40), (4, 10, 6)])
def test_ill_conditioned_full_rank_input_is_solved_not_flagged(rng, dtype, cond, shape):
    a = random_matrix(rng, shape, dtype, cond=cond)
    b = random_matrix(rng, shape[:-1] + (2,), dtype)
    x, _, rank, _ = la.lstsq(a, b, driver="gels")
    assert np.isfinite(as64(x)).all()
    assert np.all(np.asarray(rank) == min(shape[-2:]))
    _check_solution(a, b, x, dtype)


def test_a_batch_equals_the_loop_over_it_and_b_broadcasts(rng):
    a = random_matrix(rng, (2, 3, 10, 4), mx.float32)
    b = random_matrix(rng, (3, 10, 2), mx.float32)  # broadcast against a's batch (2, 3)
    x, residuals, rank, s = la.lstsq(a, b, driver="gels")
    assert x.shape == (2, 3, 4, 2) and residuals.shape == (2, 3, 2) and s.shape == (2, 3, 0)
    for i in range(2):
        for j in range(3):
            xi, ri, _, _ = la.lstsq(a[i, j], b[j], driver="gels")
            np.testing.assert_allclose(np.asarray(x[i, j]), np.asarray(xi), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(np.asarray(residuals[i, j]), np.asarray(ri), rtol=1e-5)


def test_float16_input_is_computed_in_float32_and_returned_in_float16(rng):
    a = random_matrix(rng, (12, 4), mx.float32)
    b = random_matrix(rng, (12, 2), mx.float32)
    x, residuals, rank, s = la.lstsq(a.astype(mx.float16), b.astype(mx.float16), driver="gels")
    assert x.dtype == residuals.dtype == s.dtype == mx.float16 and rank.dtype == mx.int32
    expected = la.lstsq(
        a.astype(mx.float16).astype(mx.float32),
        b.astype(mx.float16).astype(mx.float32),
        driver="gels",
    ).solution
    np.testing.assert_allclose(
        np.asarray(x.astype(mx.float32)), np.asarray(expected), rtol=2e-3, atol=2e-3
    )


# ------------------------------------------------------------------ rank deficiency


def _rank_deficient(rng, kind: str, dtype) -> np.ndarray:
    """A float64 (or complex128) matrix of exactly deficient rank."""
    a = as64(random_matrix(rng, (12, 4), dtype))
    if kind == "repeated column":
        a[:, 3] = a[:, 0]
    elif kind == "dependent column":
        a[:, 2] = a[:, 0] - 2 * a[:, 1]
    elif kind == "zero column":
        a[:, 1] = 0
    elif kind == "zero matrix":
        a[:] = 0
    elif kind == "dependent rows (wide)":
        a = ct(a).copy()
        a[3] = 3 * a[1]
    return a


RANK_DEFICIENT_KINDS = [
    "repeated column",
    "dependent column",
    "zero column",
    "zero matrix",
    "dependent rows (wide)",
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", RANK_DEFICIENT_KINDS)
def test_rank_deficient_matrix_of_a_batch_comes_back_nan(rng, dtype, kind):
    bad = _rank_deficient(rng, kind, dtype)
    good = as64(random_matrix(rng, bad.shape, dtype))
    a = as_mlx(np.stack([good, bad, good[::-1]]), dtype)
    b = random_matrix(rng, (3, bad.shape[0], 2), dtype)
    x, residuals, rank, s = la.lstsq(a, b, driver="gels")
    x = as64(x)
    assert np.isnan(x[1]).all()
    assert np.isfinite(x[[0, 2]]).all()
    if bad.shape[0] > bad.shape[1]:
        assert np.isnan(as64(residuals[1])).all() and np.isfinite(as64(residuals[0])).all()
    assert np.all(np.asarray(rank) == min(bad.shape))  # full rank or flagged
    _check_solution(a[::2], b[::2], x[::2], dtype)
    gelsd = la.lstsq(a[1], b[1], driver="gelsd")  # the documented path for such input
    assert int(gelsd.rank) < min(bad.shape) and np.isfinite(as64(gelsd.solution)).all()


@pytest.mark.parametrize("kind", RANK_DEFICIENT_KINDS)
def test_rank_deficient_matrix_raises_naming_its_index_and_gelsd(rng, kind):
    bad = _rank_deficient(rng, kind, mx.float32)
    good = as64(random_matrix(rng, bad.shape, mx.float32))
    a = as_mlx(np.stack([np.stack([good, good]), np.stack([good, bad])]), mx.float32)
    b = random_matrix(rng, (bad.shape[0],), mx.float32)
    with la.errstate(linalg="raise"), pytest.raises(la.LinAlgError) as info:
        la.lstsq(a, b, driver="gels")
    message = str(info.value)
    assert message.startswith("[mlx_linalg.lstsq]")
    assert "rank deficient" in message and "driver='gelsd'" in message
    assert "(1, 1)" in message and info.value.indices == ((1, 1),)
    with la.errstate(linalg="raise"):  # a full-rank batch does not raise
        x = la.lstsq(a[0], b, driver="gels").solution
    assert np.isfinite(np.asarray(x)).all()


def test_rcond_sets_the_rank_cutoff_on_the_diagonal_of_r():
    # Diagonal columns: R's diagonal is (1, 1e-3) up to signs, whatever the QR.
    a = mx.array([[1.0, 0.0], [0.0, 1e-3], [0.0, 0.0]], dtype=mx.float64)
    b = mx.array([1.0, 1.0, 1.0], dtype=mx.float64)
    x = la.lstsq(a, b, driver="gels").solution  # default cutoff 3 eps
    np.testing.assert_allclose(np.asarray(x), [1.0, 1e3], rtol=1e-12)
    assert np.isfinite(np.asarray(la.lstsq(a, b, 1e-4, driver="gels").solution)).all()
    assert np.isnan(np.asarray(la.lstsq(a, b, 1e-2, driver="gels").solution)).all()
    # rcond = 0: only an exact zero on the diagonal is a failure (LAPACK xGELS's own test).
    tiny = mx.array([[1.0, 0.0], [0.0, 1e-300]], dtype=mx.float64)
    x = la.lstsq(tiny, mx.array([0.0, 1e-300], dtype=mx.float64), 0.0, driver="gels").solution
    np.testing.assert_allclose(np.asarray(x), [0.0, 1.0])
    assert np.isnan(np.asarray(la.lstsq(a * 0, b, 0.0, driver="gels").solution)).all()


def test_nonfinite_input_affects_only_its_own_batch_entry(rng):
    a = np.asarray(random_matrix(rng, (3, 8, 3), mx.float32))
    a[1, 2, 1] = np.nan
    a[2, 0, 0] = np.inf
    x = np.asarray(la.lstsq(mx.array(a), mx.ones((8,)), driver="gels").solution)
    assert np.isfinite(x[0]).all() and not np.isfinite(x[1:]).all(axis=-1).any()


# ------------------------------------------------------------------ arguments, empty


@pytest.mark.parametrize("driver", ["qr", "GELS", "gelsy", None, 1])
def test_a_bad_driver_names_the_accepted_values(driver):
    a = mx.ones((3, 2))
    with pytest.raises(ValueError, match=r"^\[mlx_linalg\.lstsq\]") as info:
        la.lstsq(a, mx.ones((3,)), driver=driver)
    assert "'gelsd', 'gels'" in str(info.value) and repr(driver) in str(info.value)


def test_the_default_driver_is_gelsd(rng):
    a = random_matrix(rng, (10, 4), mx.float64)
    b = random_matrix(rng, (10, 2), mx.float64)
    default, gelsd = la.lstsq(a, b), la.lstsq(a, b, driver="gelsd")
    assert default.s.shape == (4,)
    for ours, theirs in zip(default, gelsd, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((0, 0), (0, 2)),
        ((0, 3), (0, 2)),
        ((5, 0), (5, 2)),
        ((5, 0), (5,)),
        ((0, 4, 3), (0, 4, 1)),
        ((2, 0, 3), (2, 0, 1)),
        ((2, 5, 3), (2, 5, 0)),
        ((2, 3, 5), (2, 3, 0)),
    ],
)
def test_empty_shapes_agree_with_gelsd(rng, a_shape, b_shape):
    a = mx.array(rng.standard_normal(a_shape).astype(np.float32))
    b = mx.array(rng.standard_normal(b_shape).astype(np.float32))
    x, residuals, rank, s = la.lstsq(a, b, driver="gels")
    ex, eres, _, _ = la.lstsq(a, b, driver="gelsd")
    assert x.shape == ex.shape and residuals.shape == eres.shape
    assert s.shape == a_shape[:-2] + (0,)
    np.testing.assert_array_equal(np.asarray(rank), np.full(a_shape[:-2], min(a_shape[-2:])))
    np.testing.assert_allclose(np.asarray(x), np.asarray(ex))
    np.testing.assert_allclose(np.asarray(residuals), np.asarray(eres), rtol=1e-6)


def test_empty_right_hand_sides_still_check_the_rank(rng):
    a = np.asarray(random_matrix(rng, (2, 6, 3), mx.float32))
    a[1, :, 2] = a[1, :, 0]
    with la.errstate(linalg="raise"), pytest.raises(la.LinAlgError, match=r"index \(1,\)"):
        la.lstsq(mx.array(a), mx.zeros((2, 6, 0)), driver="gels")


# ---------------------------------------------------------------------- gradients


def _central(loss, x, d, h):
    plus = loss(mx.array(x + h * d, dtype=mx.float64)).item()
    minus = loss(mx.array(x - h * d, dtype=mx.float64)).item()
    return (plus - minus) / (2 * h)


def _check_fd(loss, x: np.ndarray, seed: int = 1):
    """``⟨∇loss(x), D⟩`` against Richardson-extrapolated central differences along D."""
    grad = np.asarray(mx.grad(loss)(mx.array(x, dtype=mx.float64)))
    assert grad.shape == x.shape and np.isfinite(grad).all()
    rng = np.random.default_rng(seed)
    for _ in range(2):
        d = rng.standard_normal(x.shape)
        numeric = (4 * _central(loss, x, d, FD_EPS / 2) - _central(loss, x, d, FD_EPS)) / 3
        analytic = float(np.sum(grad * d))
        assert abs(numeric - analytic) <= FD_RTOL * max(1.0, abs(numeric)), (numeric, analytic)


def _loss_of_a(b: np.ndarray):
    bm = mx.array(b, dtype=mx.float64)

    def loss(x):
        result = la.lstsq(x, bm, driver="gels")
        return (result.solution**2).sum() + result.residuals.sum()

    return loss


@pytest.mark.parametrize(
    ("a_shape", "b_shape"), [((6, 3), (6, 2)), ((4, 4), (4,)), ((3, 5), (3, 2))]
)
def test_gradient_with_respect_to_a_matches_finite_differences(rng, a_shape, b_shape):
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    _check_fd(_loss_of_a(b), a)
    # Where the rank is full, the QR and SVD drivers are the same function of a.
    bm = mx.array(b, dtype=mx.float64)

    def gelsd(x):
        result = la.lstsq(x, bm)
        return (result.solution**2).sum() + result.residuals.sum()

    am = mx.array(a, dtype=mx.float64)
    np.testing.assert_allclose(
        np.asarray(mx.grad(_loss_of_a(b))(am)),
        np.asarray(mx.grad(gelsd)(am)),
        rtol=1e-9,
        atol=1e-12,
    )


@pytest.mark.parametrize("a_shape", [(6, 3), (3, 5)])
def test_gradient_with_respect_to_b_matches_finite_differences(rng, a_shape):
    a = mx.array(rng.standard_normal(a_shape), dtype=mx.float64)
    weights = mx.array(rng.standard_normal((a_shape[1], 2)), dtype=mx.float64)

    def loss(b):
        result = la.lstsq(a, b, driver="gels")
        return (result.solution * weights).sum() + result.residuals.sum()

    _check_fd(loss, rng.standard_normal((a_shape[0], 2)))


def test_complex_gradient_matches_gelsd(rng):
    a = random_matrix(rng, (6, 3), mx.complex64)
    b = random_matrix(rng, (6, 2), mx.complex64)

    def loss(driver):
        return lambda x: (mx.abs(la.lstsq(x, b, driver=driver).solution) ** 2).sum()

    ours, theirs = (np.asarray(mx.grad(loss(d))(a)) for d in ("gels", "gelsd"))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_vmap_and_compile_agree_with_the_eager_result(rng):
    a = random_matrix(rng, (3, 8, 4), mx.float32)
    b = random_matrix(rng, (8,), mx.float32)

    def solve(x):
        return la.lstsq(x, b, driver="gels").solution

    eager = np.asarray(solve(a))
    np.testing.assert_allclose(np.asarray(mx.vmap(solve)(a)), eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(mx.compile(solve)(a)), eager, rtol=1e-5, atol=1e-6)


def test_the_gpu_route_is_lazy_and_right_through_the_blocked_graphs(rng, monkeypatch):
    """With the GPU backend pretended and qr / solve_triangular routed to the blocked graphs
    (the MLX-op reference blocks, the GPU kernels' contracts), gels is right, flags a
    rank-deficient matrix, and runs inside ``mx.compile``, which refuses any host
    synchronization: the GPU path is a lazy graph."""
    monkeypatch.setattr(_dispatch, "backend", lambda stream=None: "gpu")
    used = set()
    for op in ("qr", "solve_triangular"):
        applies, impl = blocked_rules.RULES[op]

        def traced(*args, _op=op, _impl=impl, **kwargs):
            used.add(_op)
            return _impl(*args, blocks=REFERENCE, **kwargs)

        monkeypatch.setitem(_dispatch.GPU_RULES, op, [(applies, traced)])

    def solve(x, y):
        return la.lstsq(x, y, driver="gels").solution

    for shape in [(2, 80, 66), (66, 80)]:  # two column panels of the blocked QR (block 64)
        a = random_matrix(rng, shape, mx.float32, cond=1e2)
        b = random_matrix(rng, shape[:-1] + (2,), mx.float32)
        _check_solution(a, b, mx.compile(solve)(a, b), mx.float32)
        bad = np.asarray(a).copy()
        if shape[-2] >= shape[-1]:
            bad[..., :, 65] = bad[..., :, 1]  # a repeated column
        else:
            bad[..., 65, :] = 0  # a zero row
        assert np.isnan(np.asarray(solve(mx.array(bad), b))).all()
    assert used == {"qr", "solve_triangular"}


# ---------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not mx.is_available(mx.gpu), reason="needs an MLX GPU backend")
@pytest.mark.parametrize(
    ("shape", "all_gpu"),
    [
        ((200, 32, 16), True),  # small-kernel QR and triangular solve
        ((16, 48), True),  # wide: small-kernel QR of aᴴ, transposed solve
        ((300, 200), False),  # LAPACK QR and triangular solve, products on the GPU
        ((1100, 600), True),  # blocked QR and blocked triangular solve
        ((600, 1100), True),
    ],
)
def test_float32_on_the_gpu_matches_float64(rng, shape, all_gpu):
    a = random_matrix(rng, shape, mx.float32, cond=1e3)
    b = random_matrix(rng, shape[:-1] + (2,), mx.float32)
    m, n = shape[-2:]
    bad = np.asarray(a).copy()
    if m >= n:
        bad[..., :, -1] = bad[..., :, 0]  # a repeated column
    else:
        bad[..., -1, :] = bad[..., 0, :]  # a repeated row

    def solve(x, y):
        with mx.stream(mx.gpu):
            return la.lstsq(x, y, driver="gels", stream=mx.gpu)

    x, residuals, _, _ = solve(a, b)
    _check_solution(a, b, x, mx.float32, c=GPU_FORWARD_C)
    if m > n:
        r = as64(b) - as64(a) @ as64(x)
        np.testing.assert_allclose(as64(residuals), (np.abs(r) ** 2).sum(-2), rtol=1e-3)
    assert np.isnan(np.asarray(solve(mx.array(bad), b).solution)).all()
    if all_gpu:  # every step on the GPU: a lazy graph, which mx.compile accepts
        compiled = mx.compile(lambda x, y: solve(x, y).solution)(a, b)
        _check_solution(a, b, compiled, mx.float32, c=GPU_FORWARD_C)


@pytest.mark.gpu
@pytest.mark.skipif(not mx.is_available(mx.gpu), reason="needs an MLX GPU backend")
@pytest.mark.parametrize("shape", [(3, 32, 16), (16, 40), (300, 200)])
def test_float32_gpu_gradient_matches_float64_cpu(rng, shape):
    a = np.asarray(random_matrix(rng, shape, mx.float64, cond=1e2))
    b = np.asarray(random_matrix(rng, shape[:-1] + (2,), mx.float64))

    def grad(dtype, device):
        bm = mx.array(b, dtype=dtype)

        def loss(x):
            result = la.lstsq(x, bm, driver="gels", stream=device)
            return (result.solution**2).sum() + result.residuals.sum()

        with mx.stream(device):
            return np.asarray(mx.grad(loss)(mx.array(a, dtype=dtype)))

    reference, gpu = grad(mx.float64, mx.cpu), grad(mx.float32, mx.gpu)
    scale = np.abs(reference).max()
    np.testing.assert_allclose(gpu, reference, rtol=2e-3, atol=2e-3 * scale)
