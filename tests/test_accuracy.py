"""Accuracy of every decomposition and solver against DESIGN.md's LAPACK-style metrics."""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from matrices import (
    CHOLESKY_RATIO,
    DTYPES,
    EIGH_RATIO,
    INV_RATIO,
    LSTSQ_RATIO,
    LU_RATIO,
    QR_RATIO,
    SOLVE_RATIO,
    SVD_RATIO,
    as64,
    ct,
    eye_like,
    norm,
    random_hermitian,
    random_matrix,
    random_spd,
    ratio,
    unit_roundoff,
)

import mlx_linalg as la

# (64, 64) and up, and the (96, 64) rectangles, take the per-matrix SciPy path on the CPU.
SHAPES = [(1, 1), (5, 5), (33, 33), (64, 64), (3, 17, 17), (2, 80, 80)]
RECT_SHAPES = [(40, 12), (12, 40), (2, 9, 4), (2, 4, 9), (96, 64), (64, 96)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cholesky(rng, dtype, shape):
    a = random_spd(rng, shape, dtype)
    u = unit_roundoff(dtype)
    n = shape[-1]
    L = as64(la.cholesky(a))
    assert la.cholesky(a).dtype == dtype
    assert np.all(np.triu(L, 1) == 0)
    assert ratio(L @ ct(L) - as64(a), n * norm(as64(a)), u) <= CHOLESKY_RATIO
    U = as64(la.cholesky(a, upper=True))
    assert np.all(np.tril(U, -1) == 0)
    assert ratio(ct(U) @ U - as64(a), n * norm(as64(a)), u) <= CHOLESKY_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["reduced", "complete"])
@pytest.mark.parametrize("shape", SHAPES + RECT_SHAPES)
def test_qr(rng, dtype, mode, shape):
    a = random_matrix(rng, shape, dtype)
    m, n = shape[-2:]
    k = min(m, n) if mode == "reduced" else m
    q, r = la.qr(a, mode=mode)
    assert q.shape == shape[:-2] + (m, k) and r.shape == shape[:-2] + (k, n)
    assert q.dtype == dtype and r.dtype == dtype
    q, r, a64 = as64(q), as64(r), as64(a)
    u = unit_roundoff(dtype)
    assert np.all(np.tril(r, -1) == 0)
    assert ratio(q @ r - a64, m * norm(a64), u) <= QR_RATIO
    assert ratio(ct(q) @ q - eye_like(q, k), m, u) <= QR_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + RECT_SHAPES)
def test_lu(rng, dtype, shape):
    a = random_matrix(rng, shape, dtype)
    p, lower, upper = (as64(t) for t in la.lu(a))
    a64 = as64(a)
    u = unit_roundoff(dtype)
    n = max(shape[-2:])
    assert np.all(np.triu(lower, 1) == 0) and np.allclose(np.diagonal(lower, 0, -2, -1), 1)
    assert np.all(np.tril(upper, -1) == 0)
    assert ratio(p @ lower @ upper - a64, n * norm(a64), u) <= LU_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_lu_factor_and_solve(rng, dtype, shape):
    a = random_matrix(rng, shape, dtype, cond=1e3)
    b = random_matrix(rng, shape[:-1] + (3,), dtype)
    packed, piv = la.lu_factor(a)
    assert piv.dtype == mx.int32 and piv.shape == shape[:-1]
    ref_lu, ref_piv = scipy.linalg.lu_factor(np.asarray(a))
    np.testing.assert_array_equal(np.asarray(piv), ref_piv)
    u = unit_roundoff(dtype)
    for trans, op in [(0, lambda m: m), (1, lambda m: np.swapaxes(m, -1, -2)), (2, ct)]:
        x = as64(la.lu_solve((packed, piv), b, trans=trans))
        a64 = op(as64(a))
        assert ratio(as64(b) - a64 @ x, norm(a64) * norm(x), u) <= SOLVE_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_solve_and_inv(rng, dtype, shape):
    a = random_matrix(rng, shape, dtype, cond=1e3)
    b = random_matrix(rng, shape[:-1] + (4,), dtype)
    u = unit_roundoff(dtype)
    n = shape[-1]
    a64 = as64(a)
    x = as64(la.solve(a, b))
    assert ratio(as64(b) - a64 @ x, norm(a64) * norm(x), u) <= SOLVE_RATIO
    ai = as64(la.inv(a))
    assert ratio(eye_like(a64, n) - ai @ a64, n * norm(a64) * norm(ai), u) <= INV_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_det_and_slogdet(rng, dtype, shape):
    a = random_matrix(rng, shape, dtype) / np.sqrt(shape[-1])  # keep det in float32 range
    ref = np.linalg.det(as64(a))
    tol = 50 * shape[-1] * unit_roundoff(dtype)
    np.testing.assert_allclose(as64(la.det(a)), ref, rtol=tol, atol=0)
    sign, logabsdet = la.slogdet(a)
    assert logabsdet.dtype == (mx.float32 if dtype == mx.complex64 else dtype)
    ref_sign, ref_log = np.linalg.slogdet(as64(a))
    np.testing.assert_allclose(as64(sign), ref_sign, rtol=tol, atol=tol)
    np.testing.assert_allclose(as64(logabsdet), ref_log, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("unit_diagonal", [True, False])
@pytest.mark.parametrize("trans", [0, 1, 2])
def test_solve_triangular(rng, dtype, lower, unit_diagonal, trans):
    n = 20
    full = np.asarray(random_matrix(rng, (3, n, n), dtype)) + 4 * np.eye(n)
    tri = np.tril(full) if lower else np.triu(full)
    if unit_diagonal:
        np.einsum("...ii->...i", tri)[...] = 1
    b = random_matrix(rng, (3, n, 2), dtype)
    x = as64(
        la.solve_triangular(
            mx.array(full, dtype=dtype), b, trans=trans, lower=lower, unit_diagonal=unit_diagonal
        )
    )
    op = {0: lambda m: m, 1: lambda m: np.swapaxes(m, -1, -2), 2: ct}[trans]
    a64 = op(as64(tri))
    assert ratio(as64(b) - a64 @ x, norm(a64) * norm(x), unit_roundoff(dtype)) <= SOLVE_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [True, False])
def test_cho_factor_and_solve(rng, dtype, lower):
    a = random_spd(rng, (2, 30, 30), dtype)
    c, flag = la.cho_factor(a, lower=lower)
    assert flag is lower
    c64 = as64(c)
    assert np.all((np.triu(c64, 1) if lower else np.tril(c64, -1)) == 0)
    b = random_matrix(rng, (2, 30, 3), dtype)
    x = as64(la.cho_solve((c, lower), b))
    a64 = as64(a)
    assert ratio(as64(b) - a64 @ x, norm(a64) * norm(x), unit_roundoff(dtype)) <= SOLVE_RATIO


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_eigh(rng, dtype, shape):
    a = random_hermitian(rng, shape, dtype)
    w, v = la.eigh(a)
    real = mx.float32 if dtype == mx.complex64 else dtype
    assert w.dtype == real and v.dtype == dtype
    w64, v64, a64 = as64(w), as64(v), as64(a)
    n = shape[-1]
    u = unit_roundoff(dtype)
    assert np.all(np.diff(w64, axis=-1) >= 0)
    recon = (v64 * w64[..., None, :]) @ ct(v64)
    assert ratio(a64 - recon, n * norm(a64), u) <= EIGH_RATIO
    assert ratio(ct(v64) @ v64 - eye_like(v64, n), n, u) <= EIGH_RATIO
    np.testing.assert_allclose(as64(la.eigvalsh(a)), w64, atol=n * u * np.abs(w64).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("full_matrices", [True, False])
@pytest.mark.parametrize("shape", SHAPES + RECT_SHAPES)
def test_svd(rng, dtype, full_matrices, shape):
    a = random_matrix(rng, shape, dtype)
    m, n = shape[-2:]
    k = min(m, n)
    U, S, Vh = la.svd(a, full_matrices=full_matrices)
    ku, kv = (m, n) if full_matrices else (k, k)
    assert U.shape == shape[:-2] + (m, ku) and Vh.shape == shape[:-2] + (kv, n)
    U, S, Vh, a64 = as64(U), as64(S), as64(Vh), as64(a)
    u = unit_roundoff(dtype)
    assert np.all(S >= 0) and np.all(np.diff(S, axis=-1) <= 0)
    recon = (U[..., :, :k] * S[..., None, :]) @ Vh[..., :k, :]
    assert ratio(a64 - recon, max(m, n) * norm(a64), u) <= SVD_RATIO
    assert ratio(ct(U) @ U - eye_like(U, ku), m, u) <= SVD_RATIO
    assert ratio(Vh @ ct(Vh) - eye_like(Vh, kv), n, u) <= SVD_RATIO
    np.testing.assert_allclose(as64(la.svdvals(a)), S, atol=k * u * S.max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(30, 8), (8, 30), (2, 20, 20)])
def test_lstsq(rng, dtype, shape):
    a = random_matrix(rng, shape, dtype, cond=1e2)
    b = random_matrix(rng, shape[:-1] + (3,), dtype)
    x, residuals, rank, s = la.lstsq(a, b)
    m, n = shape[-2:]
    a64, x64, b64 = as64(a), as64(x), as64(b)
    r = b64 - a64 @ x64
    u = unit_roundoff(dtype)
    scale = norm(a64) * norm(r) * max(m, n)
    if m > n:
        assert ratio(ct(r) @ a64, scale, u) <= LSTSQ_RATIO
        np.testing.assert_allclose(as64(residuals), (np.abs(r) ** 2).sum(-2), rtol=1e-3)
    else:
        assert residuals.shape == shape[:-2] + (0,)
        assert ratio(r, norm(a64) * norm(x64), u) <= SOLVE_RATIO
    assert np.all(np.asarray(rank) == min(m, n))
    np.testing.assert_allclose(as64(s), np.linalg.svd(a64, compute_uv=False), rtol=1e-3)


def test_lstsq_rank_deficient_gives_minimum_norm_solution(rng):
    a = np.asarray(random_matrix(rng, (12, 3), mx.float64))
    a = np.concatenate([a, a[:, :1]], axis=1)  # rank 3 of 4 columns
    b = rng.standard_normal(12)
    x, _, rank, _ = la.lstsq(mx.array(a, dtype=mx.float64), mx.array(b, dtype=mx.float64))
    assert int(rank) == 3
    np.testing.assert_allclose(np.asarray(x), np.linalg.pinv(a) @ b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_eig(rng, dtype):
    a = random_matrix(rng, (3, 12, 12), dtype)
    w, v = la.eig(a)
    assert w.dtype == mx.complex64 and v.dtype == mx.complex64
    a64, w64, v64 = as64(a), as64(w), as64(v)
    u = unit_roundoff(mx.float32)
    assert ratio(a64 @ v64 - v64 * w64[..., None, :], 12 * norm(a64), u) <= EIGH_RATIO
    np.testing.assert_allclose(np.linalg.norm(v64, axis=-2), 1, rtol=1e-5)
    np.testing.assert_allclose(
        np.sort_complex(as64(la.eigvals(a))), np.sort_complex(w64), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_pinv_matrix_rank_and_cond(rng, dtype):
    a = np.asarray(random_matrix(rng, (2, 9, 5), dtype))
    a[1, :, 4] = a[1, :, 0]  # second matrix has rank 4
    pinv = as64(la.pinv(mx.array(a, dtype=dtype)))
    np.testing.assert_allclose(pinv, np.linalg.pinv(as64(a)), rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(la.matrix_rank(mx.array(a, dtype=dtype))), [5, 4])
    sq = np.asarray(random_matrix(rng, (6, 6), dtype, cond=1e3))
    for p in [None, 2, -2, "fro", "nuc", 1, -1, np.inf, -np.inf]:
        np.testing.assert_allclose(
            float(la.cond(mx.array(sq, dtype=dtype), p)), np.linalg.cond(as64(sq), p), rtol=1e-2
        )


def test_rtol_array_broadcasts_over_the_batch(rng):
    a = random_matrix(rng, (2, 6, 6), mx.float64, cond=1e4)
    ranks = la.matrix_rank(a, rtol=mx.array([1e-6, 1e-3]))
    np.testing.assert_array_equal(np.asarray(ranks), [6, 4])  # s = logspace(0, -4, 6)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("shape", [(7, 7), (9, 4), (4, 9)])
def test_polar(rng, side, shape):
    a = random_matrix(rng, shape, mx.float64)
    u, p = la.polar(a, side=side)
    ref_u, ref_p = scipy.linalg.polar(np.asarray(a), side=side)
    np.testing.assert_allclose(np.asarray(u), ref_u, atol=1e-10)
    np.testing.assert_allclose(np.asarray(p), ref_p, atol=1e-10)


@pytest.mark.parametrize("method", ["qdwh", "newton_schulz"])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("shape", [(7, 7), (3, 9, 4), (4, 9)])
@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
def test_polar_by_iteration_matches_scipy(rng, method, side, shape, dtype):
    """polar(method=...) on well-conditioned input (κ = 10): the SVD-based factors to
    rounding (the polar factors are unique for full-rank input)."""
    a = random_matrix(rng, shape, dtype, cond=10)
    u, p = la.polar(a, side=side, method=method)
    a64 = np.asarray(a.astype(mx.float64)).reshape(-1, *shape[-2:])
    ref_u, ref_p = (
        np.stack(f) for f in zip(*(scipy.linalg.polar(x, side=side) for x in a64), strict=True)
    )
    tolerance = 1e-10 if dtype == mx.float64 else 2e-5
    assert u.dtype == dtype and p.dtype == dtype
    np.testing.assert_allclose(np.asarray(u).reshape(ref_u.shape), ref_u, atol=tolerance)
    np.testing.assert_allclose(np.asarray(p).reshape(ref_p.shape), ref_p, atol=tolerance * 10)


def test_polar_newton_schulz_flags_rank_deficient_matrices(rng):
    """A rank-2 matrix in a stack: zero singular values stay (nearly) zero under
    Newton–Schulz, so its u is not orthonormal and comes back NaN (raises in raise mode);
    the other matrix of the stack is unaffected."""
    a = np.asarray(random_matrix(rng, (2, 8, 5), mx.float64))
    a[1] = a[1, :, :2] @ a[1, :2, :]
    u, p = la.polar(mx.array(a, dtype=mx.float64), method="newton_schulz")
    assert np.isnan(np.asarray(u)[1]).all() and np.isnan(np.asarray(p)[1]).all()
    np.testing.assert_allclose(np.asarray(u)[0], scipy.linalg.polar(a[0])[0], atol=1e-10)
    with la.errstate(linalg="raise"), pytest.raises(la.LinAlgError, match=r"index \(1,\)"):
        la.polar(mx.array(a, dtype=mx.float64), method="newton_schulz")


@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
def test_polar_qdwh_on_rank_deficient_input(rng, dtype):
    """QDWH lifts rounding-level singular values to 1 (its iteration count is planned for
    σ down to ε/16), so a rank-deficient matrix gets one of its many polar factors, with
    a = u p and u orthonormal, or, where it did not converge, NaN: never a u that is not
    orthonormal."""
    a = np.asarray(random_matrix(rng, (4, 8, 5), mx.float64))
    a = a[:, :, :2] @ a[:, :2, :]
    u, p = la.polar(mx.array(a, dtype=dtype), method="qdwh")
    u, p = np.asarray(u.astype(mx.float64)), np.asarray(p.astype(mx.float64))
    eps = float(np.finfo(np.float64 if dtype == mx.float64 else np.float32).eps)
    for ui, pi, ai in zip(u, p, a, strict=True):
        if np.isnan(ui).all():
            continue
        assert np.linalg.norm(ui.T @ ui - np.eye(5)) <= 100 * eps
        assert np.linalg.norm(ui @ pi - ai) <= 100 * eps * np.linalg.norm(ai)


def test_polar_by_iteration_rejects_complex_input_and_unknown_methods():
    z = mx.ones((3, 3), mx.complex64)
    with pytest.raises(TypeError, match=r"^\[mlx_linalg.polar\] expected real input"):
        la.polar(z, method="qdwh")
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.polar\] expected method"):
        la.polar(mx.ones((3, 3)), method="halley")


def test_polar_newton_schulz_gradient_matches_the_svd_method(rng):
    a = random_matrix(rng, (6, 4), mx.float64, cond=3)
    weights = mx.array(rng.standard_normal((6, 4)))

    def loss(method):
        return lambda x: (la.polar(x, method=method).u * weights).sum()

    np.testing.assert_allclose(
        np.asarray(mx.grad(loss("newton_schulz"))(a)),
        np.asarray(mx.grad(loss("svd"))(a)),
        atol=1e-9,
    )


def test_orth_and_null_space(rng):
    a = np.asarray(random_matrix(rng, (8, 5), mx.float64))
    a[:, 4] = a[:, 0] - a[:, 1]
    q = np.asarray(la.orth(mx.array(a, dtype=mx.float64)))
    z = np.asarray(la.null_space(mx.array(a, dtype=mx.float64)))
    assert q.shape == (8, 4) and z.shape == (5, 1)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(a @ z, 0, atol=1e-12)
    np.testing.assert_allclose(q @ q.T @ a, a, atol=1e-12)


def test_orth_rejects_a_batch_of_different_ranks(rng):
    a = np.asarray(random_matrix(rng, (2, 6, 3), mx.float64))
    a[1, :, 2] = a[1, :, 0]
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.orth\] expected every matrix"):
        la.orth(mx.array(a, dtype=mx.float64))


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_half_precision_computes_in_float32_and_returns_its_dtype(rng, dtype):
    a = random_spd(rng, (4, 8, 8), mx.float32).astype(dtype)
    L = la.cholesky(a)
    assert L.dtype == dtype
    a32 = np.asarray(a.astype(mx.float32)).astype(np.float64)
    L32 = np.asarray(L.astype(mx.float32)).astype(np.float64)
    assert ratio(L32 @ ct(L32) - a32, 8 * norm(a32), unit_roundoff(np.float16)) <= 30
    q, r = la.qr(a)
    assert q.dtype == dtype and r.dtype == dtype
    assert la.svdvals(a).dtype == dtype
    assert la.solve(a, mx.ones((8,), dtype=dtype)).dtype == dtype
