"""Building blocks of the large-matrix spectral algorithms, on the CPU: QDWH and
Newton–Schulz polar decompositions (mlx_linalg._gpu.polar) and tall-skinny QR by
CholeskyQR2 / shifted CholeskyQR3 with a Householder fallback (mlx_linalg._gpu.tall_skinny).

Against SciPy in float64 with DESIGN.md's metrics, in float32 and float64, condition numbers
1..1e7, rank-deficient, square/tall/wide, batches, NaN isolation, the iteration bounds, and
inside ``mx.compile`` (which refuses host synchronization, so the graphs are lazy). The
blocked building blocks (``tall_skinny.REFERENCE``, the graph the GPU runs with its kernels
swapped for MLX-op references) are checked too. The same checks on a GPU with TF32 on:
tests/gpu/test_spectral_blocks_gpu.py.
"""

import math

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from matrices import (
    EIGH_RATIO,
    NP_DTYPE,
    QR_RATIO,
    SVD_RATIO,
    as64,
    as_mlx,
    emulate_tf32,
    graded_stack,
    norm,
    ratio,
    unit_roundoff,
)

from mlx_linalg import _precision
from mlx_linalg._gpu import (
    polar,
    reference_spectral,
    scaling,
    small_spectral,
    spectral_dc,
    tall_skinny,
)

DTYPES = [mx.float32, mx.float64]
# The polar decomposition is held to the SVD's thresholds (DESIGN.md): backward error
# ‖A − UH‖/(max(m,n)‖A‖u) and ‖I − UᵀU‖/(max(m,n)u).
POLAR_RATIO = SVD_RATIO
# H is perfectly conditioned (‖ΔH‖ <= √2‖ΔA‖): normwise error against SciPy's float64 H in
# units of √max(m, n)·u; U's error grows like κ(A)·u: units of √n·κ·u.
FORWARD = 10
# H against SciPy's float64 H: in float64 two float64 computations are compared (SciPy's H,
# from an SVD, has errors of the same order); measured up to 36 on these inputs.
H_FORWARD = 50
# Our float32 ratio may exceed float32 LAPACK's (SciPy's SVD-based polar, geqrf QR) on the
# same input by this factor at most; ratios below FLOOR (u-level) count as FLOOR.
VS_LAPACK = 10
FLOOR = 1.0
SHAPES = [(1, 1), (8, 8), (40, 40), (90, 24), (24, 70)]


def _tall(u: np.ndarray) -> np.ndarray:
    return u if u.shape[-2] >= u.shape[-1] else np.swapaxes(u, -1, -2)


def _orthogonality(u: np.ndarray) -> np.ndarray:
    t = _tall(u)
    k = t.shape[-1]
    return np.swapaxes(t, -1, -2) @ t - np.eye(k)


def _polar_ratios(a: np.ndarray, u: np.ndarray, h: np.ndarray, uu: float):
    """(backward, orthogonality) ratios for A = U H."""
    big = max(a.shape[-2:])
    back = ratio(a - u @ h, big * norm(a), uu)
    orth = ratio(_orthogonality(u), big, uu)
    return back, orth


def _scipy_polar(a: np.ndarray):
    pairs = [scipy.linalg.polar(x) for x in a]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


# ---------------------------------------------------------------------------------------
# QDWH


def test_schedule_lengths():
    """The static iteration bound: 2 QR-based + 3 Cholesky-based iterations in float32,
    3 + 4 in float64, with the default l_floor."""
    s32 = polar.qdwh_schedule(2.0**-23 / 16, 2.0**-24)
    s64 = polar.qdwh_schedule(2.0**-52 / 16, 2.0**-53)
    assert s32 == [True, True, False, False, False]
    assert s64 == [True, True, True, False, False, False, False]
    # A known bound on κ shortens the schedule.
    assert polar.qdwh_schedule(0.1, 2.0**-24) == [False, False, False, False]


def test_weights_match_paper_limits():
    """At l = 1 the weights are Halley's (3, 1, 3); the bound recursion increases l."""
    a, b, c, l_next = polar.qdwh_weights(1.0)
    assert (a, b, c, l_next) == pytest.approx((3.0, 1.0, 3.0, 1.0))
    arr = polar.qdwh_weights(mx.array([1e-7, 0.5, 1.0]))
    for got, lo in zip(np.array(arr[3]), [1e-7, 0.5, 1.0], strict=True):
        assert got >= lo
        assert got == pytest.approx(polar.qdwh_weights(lo)[3], rel=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cond", [1.0, 1e3, 1e7])
def test_qdwh_accuracy(dtype, shape, cond):
    rng = np.random.default_rng(hash((shape, cond)) % 2**32)
    a64 = graded_stack(rng, 3, *shape, cond)
    a = a64.astype(NP_DTYPE[dtype])
    u, h, info = polar.qdwh(as_mlx(a, dtype))
    un, hn = as64(u), as64(h)
    uu = unit_roundoff(dtype)
    back, orth = _polar_ratios(a.astype(np.float64), un, hn, uu)
    assert back <= POLAR_RATIO and orth <= POLAR_RATIO
    assert np.all(np.asarray(info) > 0)
    # H symmetric positive semidefinite, and close to SciPy's float64 H.
    assert np.array_equal(hn, np.swapaxes(hn, -1, -2))
    assert np.all(np.linalg.eigvalsh(hn) >= -10 * uu * norm(hn)[:, None])
    u_ref, h_ref = _scipy_polar(a.astype(np.float64))
    big = max(shape)
    assert np.all(norm(hn - h_ref) <= H_FORWARD * math.sqrt(big) * uu * norm(h_ref))
    k = min(shape)
    assert np.all(norm(un - u_ref) <= FORWARD * math.sqrt(k) * cond * uu * math.sqrt(k))
    if dtype == mx.float32:
        u32, h32 = (np.array(p) for p in zip(*[scipy.linalg.polar(x) for x in a], strict=True))
        lapack_back, lapack_orth = _polar_ratios(
            a.astype(np.float64), u32.astype(np.float64), h32.astype(np.float64), uu
        )
        assert back <= VS_LAPACK * max(lapack_back, FLOOR)
        assert orth <= VS_LAPACK * max(lapack_orth, FLOOR)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("shape", [(30, 12), (12, 30)])
def test_polar_sides(side, shape):
    rng = np.random.default_rng(3)
    a = graded_stack(rng, 2, *shape, 100.0).astype(np.float32)
    for fn in (polar.qdwh, polar.newton_schulz):
        u, p, _ = fn(mx.array(a), side=side)
        un, pn = as64(u), as64(p)
        recon = un @ pn if side == "right" else pn @ un
        size = shape[1] if side == "right" else shape[0]
        assert pn.shape == (2, size, size)
        assert ratio(a - recon, max(shape) * norm(a), unit_roundoff(mx.float32)) <= POLAR_RATIO
        u_ref, p_ref = zip(
            *[scipy.linalg.polar(x.astype(np.float64), side=side) for x in a], strict=True
        )
        assert np.allclose(pn, np.array(p_ref), atol=1e-5 * np.abs(p_ref).max())
        assert np.allclose(un, np.array(u_ref), atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_qdwh_rank_deficient(dtype):
    """Rank 3 of 20: A = UH and H (the unique PSD factor) stay accurate; U is an isometry
    on the range, its other singular values lie in [0, 1], and a matrix whose U is not
    orthonormal is flagged (info < 0)."""
    rng = np.random.default_rng(4)
    a = (rng.standard_normal((2, 50, 3)) @ rng.standard_normal((2, 3, 20))).astype(NP_DTYPE[dtype])
    u, h, info = polar.qdwh(as_mlx(a, dtype))
    un, hn = as64(u), as64(h)
    uu = unit_roundoff(dtype)
    assert ratio(a - un @ hn, 50 * norm(a), uu) <= POLAR_RATIO
    _, h_ref = _scipy_polar(a.astype(np.float64))
    assert np.all(norm(hn - h_ref) <= H_FORWARD * math.sqrt(50) * uu * norm(h_ref))
    infon = np.asarray(info)
    assert np.all((infon > 0) | (infon == -len(polar.qdwh_schedule(2 * uu / 16, uu))))
    s = np.linalg.svd(un, compute_uv=False)
    assert np.all(s[:, :3] == pytest.approx(1, abs=1e-4))
    assert np.all(s <= 1 + 1e-4)
    for i in np.nonzero(infon > 0)[0]:
        assert ratio(_orthogonality(un[i]), 50, uu) <= POLAR_RATIO


def test_polar_zero_matrix():
    for fn in (polar.qdwh, polar.newton_schulz):
        u, h, _ = fn(mx.zeros((2, 6, 4)))
        assert np.all(np.asarray(u) == 0) and np.all(np.asarray(h) == 0)


@pytest.mark.parametrize("fn", [polar.qdwh, polar.newton_schulz])
def test_polar_nan_isolated_and_batch_equals_loop(fn):
    rng = np.random.default_rng(5)
    a = graded_stack(rng, 6, 20, 12, 10.0).astype(np.float32).reshape(2, 3, 20, 12)
    a[0, 1, 3, 4] = np.nan
    a[1, 2, 0, 0] = np.inf
    u, h, info = fn(mx.array(a))
    assert u.shape == (2, 3, 20, 12) and h.shape == (2, 3, 12, 12) and info.shape == (2, 3)
    un, hn, infon = np.asarray(u), np.asarray(h), np.asarray(info)
    bad = np.zeros((2, 3), dtype=bool)
    bad[0, 1] = bad[1, 2] = True
    assert np.all(np.isnan(un[bad])) and np.all(np.isnan(hn[bad]))
    assert np.all(infon[bad] < 0) and np.all(infon[~bad] > 0)
    assert np.all(np.isfinite(un[~bad])) and np.all(np.isfinite(hn[~bad]))
    for i, j in zip(*np.nonzero(~bad), strict=True):
        ui, hi, _ = fn(mx.array(a[i, j]))
        np.testing.assert_allclose(un[i, j], np.asarray(ui), atol=2e-6)
        np.testing.assert_allclose(hn[i, j], np.asarray(hi), atol=2e-6 * np.abs(hn[i, j]).max())


def test_qdwh_with_blocked_building_blocks():
    """The GPU graph (blocked Cholesky and triangular solve, MLX-op building blocks)
    gives the same accuracy; n = 80 spans two diagonal blocks."""
    rng = np.random.default_rng(6)
    a = graded_stack(rng, 2, 100, 80, 1e5).astype(np.float32)
    u, h, info = polar.qdwh(mx.array(a), tall_skinny.REFERENCE)
    back, orth = _polar_ratios(a.astype(np.float64), as64(u), as64(h), unit_roundoff(mx.float32))
    assert back <= POLAR_RATIO and orth <= POLAR_RATIO
    assert np.all(np.asarray(info) > 0)


def test_qdwh_iteration_bound_flags_wrong_hint():
    """A false bound (l_floor = 0.5 for κ = 1e6) gets a 4-iteration schedule; the matrix
    comes back within it, flagged, not as a plausible polar factor."""
    rng = np.random.default_rng(7)
    a = graded_stack(rng, 2, 30, 30, 1e6).astype(np.float32)
    u, h, info = polar.qdwh(mx.array(a), l_floor=0.5)
    steps = len(polar.qdwh_schedule(0.5, unit_roundoff(mx.float32)))
    assert np.all(np.asarray(info) == -steps)
    assert ratio(_orthogonality(as64(u)), 30, unit_roundoff(mx.float32)) > POLAR_RATIO


def test_qdwh_early_stop_for_nearly_orthonormal():
    """Gershgorin's bound gives nearly orthonormal input a large l₀: it converges (and is
    frozen) after one or two iterations."""
    rng = np.random.default_rng(8)
    q, _ = np.linalg.qr(rng.standard_normal((3, 60, 20)))
    a = (q + 1e-3 * rng.standard_normal(q.shape)).astype(np.float32)
    u, h, info = polar.qdwh(mx.array(a))
    assert np.all(np.asarray(info) <= 2) and np.all(np.asarray(info) > 0)
    back, orth = _polar_ratios(a.astype(np.float64), as64(u), as64(h), unit_roundoff(mx.float32))
    assert back <= POLAR_RATIO and orth <= POLAR_RATIO


def test_norm_bounds_are_bounds():
    rng = np.random.default_rng(9)
    q, _ = np.linalg.qr(rng.standard_normal((4, 40, 10)))
    x = np.concatenate(
        [q * rng.uniform(0.5, 2, (4, 1, 10)), rng.standard_normal((4, 40, 10))]
    ).astype(np.float32)
    g = tall_skinny.gram(mx.array(x))
    alpha, lower = polar.norm_bounds(g, 40)
    s = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    alpha, lower = np.asarray(alpha), np.asarray(lower)
    assert np.all(alpha >= s[:, 0] * (1 - 1e-6))
    assert np.all(lower * alpha**2 <= s[:, -1] ** 2)
    assert np.all(lower[:4] > 0.05)  # diagonally dominant Gram: a useful bound


# ---------------------------------------------------------------------------------------
# Newton–Schulz


def test_newton_schulz_steps():
    assert polar.newton_schulz_steps(1.0, 2.0**-24) == 0
    steps = polar.newton_schulz_steps(1e-3, 2.0**-24)
    assert 18 <= steps <= 25
    # A singular value 10x smaller needs log_1.5(10) ≈ 6 more iterations.
    assert polar.newton_schulz_steps(1e-4, 2.0**-24) - steps in (5, 6, 7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cond", [1.0, 100.0, 1e5])
def test_newton_schulz_accuracy_and_bound(dtype, cond):
    """Converges within newton_schulz_steps(σ_min(X₀)) + 1 iterations, where X₀ = A/α."""
    rng = np.random.default_rng(10)
    a = graded_stack(rng, 3, 40, 16, cond).astype(NP_DTYPE[dtype])
    a64 = a.astype(np.float64)
    alpha = np.minimum(
        np.linalg.norm(a64, axis=(1, 2)),
        np.sqrt(np.abs(a64).sum(1).max(-1) * np.abs(a64).sum(2).max(-1)),
    )
    sigma0 = np.linalg.svd(a64, compute_uv=False)[:, -1] / alpha
    uu = unit_roundoff(dtype)
    bound = max(polar.newton_schulz_steps(s, uu) for s in sigma0) + 1
    u, h, info = polar.newton_schulz(as_mlx(a, dtype), max_iterations=bound + 2)
    infon = np.asarray(info)
    assert np.all(infon > 0) and np.all(infon <= bound)
    back, orth = _polar_ratios(a64, as64(u), as64(h), uu)
    assert back <= POLAR_RATIO and orth <= POLAR_RATIO


def test_newton_schulz_bound_ran_out():
    """κ = 1e4 with 8 iterations: returns after 8, flagged, not orthonormal."""
    rng = np.random.default_rng(11)
    a = graded_stack(rng, 2, 20, 20, 1e4).astype(np.float32)
    u, _, info = polar.newton_schulz(mx.array(a), max_iterations=8)
    assert np.all(np.asarray(info) == -8)
    assert ratio(_orthogonality(as64(u)), 20, unit_roundoff(mx.float32)) > POLAR_RATIO


def test_polar_graphs_are_lazy():
    """mx.compile refuses host synchronization: the graphs build under it."""
    rng = np.random.default_rng(12)
    x = mx.array(graded_stack(rng, 2, 24, 10, 100.0).astype(np.float32))
    for fn in (polar.qdwh, polar.newton_schulz):
        compiled = mx.compile(lambda y, fn=fn: fn(y))
        u, h, info = compiled(x)
        ue, he, infoe = fn(x)
        np.testing.assert_allclose(np.asarray(u), np.asarray(ue), atol=1e-5)
        assert np.array_equal(np.asarray(info), np.asarray(infoe))


def test_polar_errors():
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.polar\] expected a \(\.\.\., M, N\)"):
        polar.qdwh(mx.zeros((3,)))
    with pytest.raises(TypeError, match=r"^\[mlx_linalg.polar\] expected float32 or float64"):
        polar.newton_schulz(mx.zeros((3, 3), dtype=mx.int32))
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.polar\] side must be"):
        polar.qdwh(mx.zeros((3, 3)), side="up")


# ---------------------------------------------------------------------------------------
# Tall-skinny QR


def _qr_ratio(a: np.ndarray, q: np.ndarray, r: np.ndarray, uu: float) -> float:
    m = a.shape[-2]
    return max(ratio(a - q @ r, m * norm(a), uu), ratio(_orthogonality(q), m, uu))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", tall_skinny.METHODS)
@pytest.mark.parametrize("cond", [1.0, 1e2, 1e3])
@pytest.mark.parametrize("shape", [(400, 16), (150, 70), (5, 5)])
def test_cholesky_qr_accuracy(dtype, method, cond, shape):
    """Within its range the method needs no fallback and meets the QR threshold, R upper
    triangular with a positive diagonal; no worse than 10x float32 LAPACK."""
    rng = np.random.default_rng(13)
    a = graded_stack(rng, 3, *shape, cond).astype(NP_DTYPE[dtype])
    q, r, fell_back = tall_skinny.qr(as_mlx(a, dtype), method=method, fallback="nan")
    qn, rn = as64(q), as64(r)
    uu = unit_roundoff(dtype)
    assert not np.any(np.asarray(fell_back))
    got = _qr_ratio(a.astype(np.float64), qn, rn, uu)
    assert got <= QR_RATIO
    assert np.array_equal(rn, np.triu(rn))
    assert np.all(np.diagonal(rn, axis1=-2, axis2=-1) > 0)
    if dtype == mx.float32:
        lapack = [scipy.linalg.qr(x, mode="economic") for x in a]
        ql = np.array([p[0] for p in lapack]).astype(np.float64)
        rl = np.array([p[1] for p in lapack]).astype(np.float64)
        assert got <= VS_LAPACK * max(_qr_ratio(a.astype(np.float64), ql, rl, uu), FLOOR)


@pytest.mark.parametrize("factor", ["LAPACK", "REFERENCE"])
@pytest.mark.parametrize("fallback", ["where", "sync"])
def test_fallback_per_matrix(fallback, factor):
    """One stack: well conditioned, κ = 1e6 (beyond both methods in float32), rank 2, and a
    NaN matrix. The first keeps CholeskyQR; the next two fall back to Householder and are
    accurate; the NaN matrix is NaN; nothing leaks between matrices."""
    rng = np.random.default_rng(14)
    m, n = 200, 12
    a = np.concatenate(
        [
            graded_stack(rng, 1, m, n, 10.0),
            graded_stack(rng, 1, m, n, 1e6),
            rng.standard_normal((1, m, 2)) @ rng.standard_normal((1, 2, n)),
            rng.standard_normal((1, m, n)),
        ]
    ).astype(np.float32)
    a[3, 7, 2] = np.nan
    factor = getattr(tall_skinny, factor)
    for method in tall_skinny.METHODS:
        q, r, fell_back = tall_skinny.qr(mx.array(a), factor, method=method, fallback=fallback)
        assert np.asarray(fell_back).tolist() == [False, True, True, True]
        qn, rn = as64(q), as64(r)
        assert np.all(np.isnan(qn[3])) and np.all(np.isnan(rn[3]))
        for i in range(3):
            assert (
                _qr_ratio(
                    a[i : i + 1].astype(np.float64),
                    qn[i : i + 1],
                    rn[i : i + 1],
                    unit_roundoff(mx.float32),
                )
                <= QR_RATIO
            )
            assert np.all(np.diagonal(rn[i]) >= 0)
        q0, r0, _ = tall_skinny.qr(mx.array(a[:1]), factor, method=method, fallback=fallback)
        np.testing.assert_array_equal(qn[0], np.asarray(q0)[0])


def test_fallback_nan_mode():
    rng = np.random.default_rng(15)
    a = np.concatenate([graded_stack(rng, 1, 100, 8, 10.0), graded_stack(rng, 1, 100, 8, 1e7)])
    q, r, fell_back = tall_skinny.qr(mx.array(a.astype(np.float32)), fallback="nan")
    assert np.asarray(fell_back).tolist() == [False, True]
    assert np.all(np.isfinite(np.asarray(q)[0])) and np.all(np.isnan(np.asarray(q)[1]))
    assert np.all(np.isnan(np.asarray(r)[1]))


def test_flag_or_accurate():
    """Across condition numbers through the methods' limits, every result that is not
    flagged meets the QR threshold: loss of orthogonality is never silent."""
    rng = np.random.default_rng(16)
    uu = unit_roundoff(mx.float32)
    flags = {}
    conds = [1e3, 3e3, 1e4, 3e4, 1e5, 3e5]
    for method in tall_skinny.METHODS:
        for cond in conds:
            a = graded_stack(rng, 3, 300, 16, cond).astype(np.float32)
            q, r, fell_back = tall_skinny.qr(mx.array(a), method=method, fallback="nan")
            ok = ~np.asarray(fell_back)
            flags[method, cond] = int((~ok).sum())
            if ok.any():
                assert _qr_ratio(a[ok].astype(np.float64), as64(q)[ok], as64(r)[ok], uu) <= QR_RATIO
    # The ranges differ: shifted CholeskyQR3 covers κ = 1e4, where CholeskyQR2 fails.
    assert flags["cholqr2", 1e3] == 0 and flags["cholqr2", 1e5] == 3
    assert flags["scholqr3", 1e4] == 0 and flags["scholqr3", 3e5] == 3


def test_blocked_building_blocks_and_batches():
    """tall_skinny.REFERENCE (the blocked GPU graph) in float32 and float64, N = 70 > one
    diagonal block, batch shape (2, 2) kept."""
    rng = np.random.default_rng(17)
    for dtype in DTYPES:
        a = graded_stack(rng, 4, 160, 70, 100.0).astype(NP_DTYPE[dtype]).reshape(2, 2, 160, 70)
        q, r, fell_back = tall_skinny.qr(as_mlx(a, dtype), tall_skinny.REFERENCE, method="scholqr3")
        assert q.shape == (2, 2, 160, 70) and r.shape == (2, 2, 70, 70)
        assert fell_back.shape == (2, 2) and not np.any(np.asarray(fell_back))
        flat = a.reshape(4, 160, 70).astype(np.float64)
        got = _qr_ratio(
            flat, as64(q).reshape(4, 160, 70), as64(r).reshape(4, 70, 70), unit_roundoff(dtype)
        )
        assert got <= QR_RATIO


def test_lapack_cholesky_failure_flag():
    """MLX's CPU Cholesky does not report failure; the wrapper detects it."""
    g = mx.array(
        np.array(
            [[[1.0, 2.0], [2.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]], [[np.nan, 0], [0, 1.0]]],
            dtype=np.float32,
        )
    )
    factor, failed = tall_skinny.LAPACK.cholesky(g)
    assert np.asarray(failed).tolist() == [True, False, True]
    assert np.all(np.isnan(np.asarray(factor)[0]))
    np.testing.assert_allclose(np.asarray(factor)[1], np.sqrt(2) * np.eye(2), rtol=1e-6)


def test_tall_skinny_lazy():
    rng = np.random.default_rng(18)
    x = mx.array(graded_stack(rng, 2, 64, 8, 1e6).astype(np.float32))
    compiled = mx.compile(lambda y: tall_skinny.qr(y, method="scholqr3", fallback="where"))
    q, r, fell_back = compiled(x)
    qe, re, fe = tall_skinny.qr(x, method="scholqr3", fallback="where")
    np.testing.assert_allclose(np.asarray(q), np.asarray(qe), atol=1e-6)
    assert np.array_equal(np.asarray(fell_back), np.asarray(fe))


def test_tall_skinny_errors():
    x = mx.zeros((4, 3))
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.tall_skinny_qr\] method"):
        tall_skinny.qr(x, method="tsqr")
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.tall_skinny_qr\] fallback"):
        tall_skinny.qr(x, fallback="raise")
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.tall_skinny_qr\] expected M >= N"):
        tall_skinny.qr(mx.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.tall_skinny_qr\] expected a \(\.\.\., M"):
        tall_skinny.qr(mx.zeros((3,)))
    with pytest.raises(TypeError, match=r"^\[mlx_linalg.tall_skinny_qr\] expected float32"):
        tall_skinny.qr(mx.zeros((4, 3), dtype=mx.float16))


# ---------------------------------------------------------------------------------------
# Shapes: empty, transposed and strided inputs


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0), (0, 4, 3), (2, 0, 0), (2, 5, 0)])
def test_empty_inputs(shape):
    m, n = shape[-2:]
    batch = shape[:-2]
    for fn in (polar.qdwh, polar.newton_schulz):
        for side, size in (("right", n), ("left", m)):
            u, h, info = fn(mx.zeros(shape), side=side)
            assert u.shape == shape and h.shape == (*batch, size, size)
            assert info.shape == batch
            assert not np.any(np.asarray(h))
    if m >= n:
        q, r, fell_back = tall_skinny.qr(mx.zeros(shape))
        assert q.shape == shape and r.shape == (*batch, n, n) and fell_back.shape == batch


def test_transposed_and_strided_inputs():
    rng = np.random.default_rng(19)
    base = graded_stack(rng, 4, 60, 30, 100.0).astype(np.float32)
    x = mx.array(base)
    views = {
        "transposed": (mx.swapaxes(mx.array(np.swapaxes(base, -1, -2).copy()), -1, -2), base),
        "strided": (x[::2], base[::2]),
        "row-strided": (mx.array(np.repeat(base, 2, axis=1))[:, ::2], base),
    }
    for view, expected in views.values():
        for fn in (polar.qdwh, polar.newton_schulz):
            u, h, _ = fn(view)
            ue, he, _ = fn(mx.array(expected))
            np.testing.assert_allclose(np.asarray(u), np.asarray(ue), atol=1e-6)
            np.testing.assert_allclose(np.asarray(h), np.asarray(he), atol=1e-6)
        q, r, _ = tall_skinny.qr(view)
        qe, re, _ = tall_skinny.qr(mx.array(expected))
        np.testing.assert_allclose(np.asarray(q), np.asarray(qe), atol=1e-6)


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e-40, 1e36])
def test_extreme_scaling(scale):
    """Power-of-two prescaling: no overflow or underflow in the Gram matrices, subnormal
    input included (1e-40 is subnormal in float32); H and R are scaled back exactly."""
    rng = np.random.default_rng(20)
    a64 = graded_stack(rng, 2, 30, 20, 10.0) * scale
    a = a64.astype(np.float32)
    # A subnormal input carries fewer significant bits: measure against what was stored.
    stored = a.astype(np.float64)
    uu = unit_roundoff(mx.float32)
    for fn in (polar.qdwh, polar.newton_schulz):
        u, h, info = fn(mx.array(a))
        assert np.all(np.asarray(info) > 0)
        back, orth = _polar_ratios(stored, as64(u), as64(h), uu)
        assert back <= POLAR_RATIO and orth <= POLAR_RATIO
    q, r, fell_back = tall_skinny.qr(mx.array(a))
    assert not np.any(np.asarray(fell_back))
    assert _qr_ratio(stored, as64(q), as64(r), uu) <= QR_RATIO


@settings(max_examples=30, deadline=None)
@given(
    batch=st.lists(st.integers(0, 3), max_size=2),
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_shapes(batch, m, n, dtype, seed):
    """Any batch shape and small M, N (wide included), float32 and float64: polar meets the
    thresholds and equals the loop over the batch; tall-skinny QR (M >= N) too."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*batch, m, n)).astype(NP_DTYPE[dtype])
    uu = unit_roundoff(dtype)
    u, h, info = polar.qdwh(as_mlx(a, dtype))
    assert u.shape == a.shape and h.shape == (*batch, n, n) and info.shape == tuple(batch)
    if a.size == 0:
        return
    flat = a.reshape(-1, m, n)
    un, hn = as64(u).reshape(flat.shape), as64(h).reshape(-1, n, n)
    back, _ = _polar_ratios(flat.astype(np.float64), un, hn, uu)
    assert back <= POLAR_RATIO
    ok = np.asarray(info).reshape(-1) > 0
    if ok.any():
        assert ratio(_orthogonality(un[ok]), max(m, n), uu) <= POLAR_RATIO
    u0, _, _ = polar.qdwh(as_mlx(flat[0], dtype))
    np.testing.assert_allclose(un[0], as64(u0), atol=1e3 * uu)
    if m >= n:
        q, r, _ = tall_skinny.qr(as_mlx(a, dtype))
        qn, rn = as64(q).reshape(flat.shape), as64(r).reshape(-1, n, n)
        assert _qr_ratio(flat.astype(np.float64), qn, rn, uu) <= QR_RATIO


# ---------------------------------------------------------------------------------------
# QDWH-eig (spectral divide and conquer)


def _symmetric(rng, n, kind) -> np.ndarray:
    """Float64 symmetric test matrices: Gaussian, eigenvalues graded over ±1..1e-7,
    three clusters (multiplicities n/4, n/2, n/4), rank 3, identity."""
    if kind == "gaussian":
        g = rng.standard_normal((n, n))
        return (g + g.T) / 2
    if kind == "identity":
        return np.eye(n)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    if kind == "graded":
        w = np.logspace(0, -7, n) * rng.choice([-1, 1], n)
    elif kind == "clustered":
        w = np.concatenate(
            [np.full(n // 4, 1.0), np.full(n // 2, -2.0), np.full(n - n // 4 - n // 2, 3.0)]
        )
    else:
        w = np.concatenate([rng.standard_normal(3), np.zeros(n - 3)])
    return (q * w) @ q.T


def _eigh_ratios(a: np.ndarray, w: np.ndarray, v: np.ndarray, uu: float):
    n = a.shape[-1]
    resid = ratio(a - (v * w[..., None, :]) @ np.swapaxes(v, -1, -2), n * norm(a), uu)
    orth = ratio(np.swapaxes(v, -1, -2) @ v - np.eye(n), n, uu)
    return resid, orth


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["gaussian", "graded", "clustered", "rank3", "identity"])
def test_qdwh_eigh(dtype, kind):
    rng = np.random.default_rng(21)
    n = 150
    a = _symmetric(rng, n, kind).astype(NP_DTYPE[dtype])
    stats = {}
    w, v = spectral_dc.eigh(as_mlx(a, dtype), stats=stats)
    wn, vn = as64(w), as64(v)
    uu = unit_roundoff(dtype)
    resid, orth = _eigh_ratios(a.astype(np.float64), wn, vn, uu)
    assert resid <= EIGH_RATIO and orth <= EIGH_RATIO
    assert np.all(np.diff(wn) >= 0)
    w_ref = scipy.linalg.eigvalsh(a.astype(np.float64))
    assert np.max(np.abs(wn - w_ref)) <= FORWARD * n * uu * np.abs(w_ref).max()
    if kind == "identity":
        assert stats["diagonal"] == 1 and stats["splits"] == 0
    else:
        assert stats["depth"] >= 1 and stats["unsplit"] == 0
        assert stats["max_error"] <= spectral_dc.SPLIT_TOLERANCE * n * uu
    if dtype == mx.float32:
        w32, v32 = scipy.linalg.eigh(a)
        lr, lo = _eigh_ratios(
            a.astype(np.float64), w32.astype(np.float64), v32.astype(np.float64), uu
        )
        assert resid <= VS_LAPACK * max(lr, FLOOR) and orth <= VS_LAPACK * max(lo, FLOOR)


def test_split_counts_and_subspace():
    """k = the number of eigenvalues above σ, Q orthogonal, the diagonal blocks of QᵀAQ
    hold exactly those eigenvalues, the coupling is the reported error."""
    rng = np.random.default_rng(22)
    n = 90
    a = np.stack([_symmetric(rng, n, "gaussian") for _ in range(2)])
    sigma = np.array([0.0, 0.7])
    q, c, k, error, info = spectral_dc.split(
        as_mlx(a, mx.float64), mx.array(sigma, dtype=mx.float64)
    )
    w_ref = np.linalg.eigvalsh(a)
    kn = np.asarray(k)
    assert kn.tolist() == [int(np.sum(w_ref[i] > sigma[i])) for i in range(2)]
    assert np.all(np.asarray(info) > 0)
    qn, cn = as64(q), as64(c)
    uu = unit_roundoff(mx.float64)
    assert ratio(np.swapaxes(qn, -1, -2) @ qn - np.eye(n), n, uu) <= QR_RATIO
    for i in range(2):
        ki = kn[i]
        high = np.linalg.eigvalsh(cn[i, :ki, :ki])
        low = np.linalg.eigvalsh(cn[i, ki:, ki:])
        np.testing.assert_allclose(np.concatenate([low, high]), w_ref[i], atol=1e3 * uu)
        coupling = np.linalg.norm(cn[i, ki:, :ki]) / np.linalg.norm(a[i])
        assert float(np.asarray(error)[i]) == pytest.approx(coupling, rel=1e-6, abs=1e-18)
        assert coupling <= spectral_dc.SPLIT_TOLERANCE * n * uu


def test_split_at_an_eigenvalue():
    """σ exactly an eigenvalue (A − σI singular): the split is still a valid one, the
    eigenvector going to one side, or its error says it is not."""
    n = 100
    a = mx.array(np.diag(np.arange(1.0, n + 1)), dtype=mx.float64)
    _, c, k, error, _ = spectral_dc.split(a[None], mx.array([50.0], dtype=mx.float64))
    kk = int(np.asarray(k)[0])
    assert kk in (50, 51)
    if float(np.asarray(error)[0]) <= spectral_dc.SPLIT_TOLERANCE * n * 2.0**-53:
        high = np.linalg.eigvalsh(as64(c)[0, :kk, :kk])
        assert np.allclose(high, np.arange(n - kk + 1, n + 1), atol=1e-10)
    w, _ = spectral_dc.eigh(a)
    np.testing.assert_allclose(as64(w), np.arange(1.0, n + 1), atol=1e-12)


def _jacobi_base(a: mx.array) -> tuple[mx.array, mx.array]:
    """The batched Jacobi kernel's algorithm (its MLX-op reference), as the GPU would use
    it for the base case: float32, n <= 64."""
    scaled, exponent, _ = scaling.prescale(mx.tril(a)[None])
    w, vt, _ = reference_spectral.jacobi_eigh(
        scaled, want_v=True, max_sweeps=small_spectral.MAX_SWEEPS
    )
    return scaling.times_power_of_two(w, exponent)[0], mx.swapaxes(vt[0], -1, -2)


def test_qdwh_eigh_jacobi_base_and_blocked_factor():
    """The GPU configuration on the CPU: blocked building blocks for the splits and the
    Jacobi kernel's reference for the base case, float32."""
    rng = np.random.default_rng(23)
    n = 130
    a = _symmetric(rng, n, "gaussian").astype(np.float32)
    stats = {}
    w, v = spectral_dc.eigh(mx.array(a), tall_skinny.REFERENCE, base=_jacobi_base, stats=stats)
    resid, orth = _eigh_ratios(a.astype(np.float64), as64(w), as64(v), unit_roundoff(mx.float32))
    assert resid <= EIGH_RATIO and orth <= EIGH_RATIO
    assert stats["base"] >= 2 and stats["unsplit"] == 0


def test_qdwh_eigh_batch_nan_and_errors():
    rng = np.random.default_rng(24)
    a = np.stack([_symmetric(rng, 80, "gaussian") for _ in range(3)]).astype(np.float32)
    a[1, 3, 3] = np.nan
    w, v = spectral_dc.eigh(mx.array(a.reshape(3, 1, 80, 80)))
    assert w.shape == (3, 1, 80) and v.shape == (3, 1, 80, 80)
    wn = np.asarray(w)
    assert np.all(np.isnan(wn[1])) and np.all(np.isfinite(wn[[0, 2]]))
    w0, _ = spectral_dc.eigh(mx.array(a[0]))
    np.testing.assert_allclose(wn[0, 0], np.asarray(w0), atol=1e-5)
    empty_w, empty_v = spectral_dc.eigh(mx.zeros((0, 5, 5)))
    assert empty_w.shape == (0, 5) and empty_v.shape == (0, 5, 5)
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.eigh\] expected a \(\.\.\., n, n\)"):
        spectral_dc.eigh(mx.zeros((3, 4)))
    with pytest.raises(TypeError, match=r"^\[mlx_linalg.eigh\] expected float32 or float64"):
        spectral_dc.eigh(mx.zeros((3, 3), dtype=mx.float16))


def test_split_is_lazy():
    rng = np.random.default_rng(25)
    a = mx.array(np.stack([_symmetric(rng, 40, "gaussian") for _ in range(2)]).astype(np.float32))
    sigma = mx.zeros((2,))
    compiled = mx.compile(lambda x, s: spectral_dc.split(x, s))
    _, _, k, error, _ = compiled(a, sigma)
    _, _, ke, errore, _ = spectral_dc.split(a, sigma)
    assert np.array_equal(np.asarray(k), np.asarray(ke))
    np.testing.assert_allclose(np.asarray(error), np.asarray(errore), rtol=1e-3, atol=1e-9)


def _svd_ratios(a: np.ndarray, u: np.ndarray, s: np.ndarray, vh: np.ndarray, uu: float):
    m, n = a.shape[-2:]
    k = min(m, n)
    resid = ratio(a - (u * s[..., None, :]) @ vh, max(m, n) * norm(a), uu)
    orth_u = ratio(np.swapaxes(u, -1, -2) @ u - np.eye(k), m, uu)
    orth_v = ratio(vh @ np.swapaxes(vh, -1, -2) - np.eye(k), n, uu)
    return max(resid, orth_u, orth_v)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(120, 80), (80, 120)])
@pytest.mark.parametrize("kind", [1.0, 1e7, "rank5", "zero"])
def test_qdwh_svd(dtype, shape, kind):
    """QDWH-SVD meets the SVD threshold, S descending and nonnegative and close to SciPy's,
    also for rank-deficient input (U completed by Householder QR) and the zero matrix."""
    rng = np.random.default_rng(26)
    m, n = shape
    if kind == "rank5":
        a = rng.standard_normal((m, 5)) @ rng.standard_normal((5, n))
    elif kind == "zero":
        a = np.zeros(shape)
    else:
        a = graded_stack(rng, 1, m, n, kind)[0]
    a = a.astype(NP_DTYPE[dtype])
    u, s, vh = spectral_dc.svd(as_mlx(a, dtype))
    k = min(shape)
    assert u.shape == (m, k) and s.shape == (k,) and vh.shape == (k, n)
    un, sn, vhn = as64(u), as64(s), as64(vh)
    uu = unit_roundoff(dtype)
    assert _svd_ratios(a.astype(np.float64), un, sn, vhn, uu) <= SVD_RATIO
    assert np.all(np.diff(sn) <= 0) and np.all(sn >= 0)
    s_ref = scipy.linalg.svdvals(a.astype(np.float64))
    assert np.max(np.abs(sn - s_ref)) <= FORWARD * max(shape) * uu * max(s_ref.max(), 1e-300)


def test_qdwh_svd_batch_and_nan():
    rng = np.random.default_rng(27)
    a = graded_stack(rng, 3, 90, 70, 100.0).astype(np.float32)
    a[2, 0, 1] = np.inf
    u, s, vh = spectral_dc.svd(mx.array(a.reshape(3, 1, 90, 70)))
    assert u.shape == (3, 1, 90, 70) and s.shape == (3, 1, 70) and vh.shape == (3, 1, 70, 70)
    sn = np.asarray(s)
    assert np.all(np.isnan(sn[2])) and np.all(np.isnan(np.asarray(u)[2]))
    assert (
        _svd_ratios(
            a[:2].astype(np.float64),
            as64(u)[:2, 0],
            sn[:2, 0].astype(np.float64),
            as64(vh)[:2, 0],
            unit_roundoff(mx.float32),
        )
        <= SVD_RATIO
    )
    empty = spectral_dc.svd(mx.zeros((2, 0, 3)))
    assert [t.shape for t in empty] == [(2, 0, 0), (2, 0), (2, 0, 3)]


@pytest.mark.parametrize("scale", [1e20, 1e-20])
def test_qdwh_eigh_svd_extreme_scaling(scale):
    """Norms are taken scaled (‖A‖_F² of 1e20-sized entries overflows float32): no block is
    mistaken for a diagonal one, no split error for zero."""
    rng = np.random.default_rng(28)
    a = (_symmetric(rng, 100, "gaussian") * scale).astype(np.float32)
    stats = {}
    w, v = spectral_dc.eigh(mx.array(a), stats=stats)
    assert stats["diagonal"] == 0 and stats["depth"] >= 1
    resid, orth = _eigh_ratios(a.astype(np.float64), as64(w), as64(v), unit_roundoff(mx.float32))
    assert resid <= EIGH_RATIO and orth <= EIGH_RATIO
    u, s, vh = spectral_dc.svd(mx.array(a))
    assert (
        _svd_ratios(a.astype(np.float64), as64(u), as64(s), as64(vh), unit_roundoff(mx.float32))
        <= SVD_RATIO
    )


# ---------------------------------------------------------------------------------------
# Float32 accuracy when the device multiplies in TF32 (emulated on the CPU)


def _tf32_cases():
    rng = np.random.default_rng(29)
    square = graded_stack(rng, 2, 64, 64, 1e3).astype(np.float32)
    near = graded_stack(rng, 2, 64, 64, 10.0).astype(np.float32)
    tall = graded_stack(rng, 2, 300, 16, 100.0).astype(np.float32)
    sym = _symmetric(rng, 80, "gaussian").astype(np.float32)
    uu = unit_roundoff(mx.float32)
    u, h, _ = polar.qdwh(mx.array(square))
    qdwh = max(_polar_ratios(square.astype(np.float64), as64(u), as64(h), uu))
    u, h, _ = polar.newton_schulz(mx.array(near))
    ns = max(_polar_ratios(near.astype(np.float64), as64(u), as64(h), uu))
    q, r, _ = tall_skinny.qr(mx.array(tall), fallback="nan")
    qr = _qr_ratio(tall.astype(np.float64), as64(q), as64(r), uu)
    stats = {}
    w, v = spectral_dc.eigh(mx.array(sym), stats=stats)
    eig = max(_eigh_ratios(sym.astype(np.float64), as64(w), as64(v), uu))
    return {
        "qdwh": qdwh,
        "newton_schulz": ns,
        "tall_skinny": qr,
        "eigh": eig,
        "eigh_unsplit": stats["unsplit"],
    }


def test_float32_accuracy_with_emulated_tf32_products(monkeypatch):
    """Every product goes through mlx_linalg._precision.matmul: with mx.matmul rounding its
    inputs to TF32 (as MLX's CUDA backend does by default) and the probe reporting it, the
    results keep float32 accuracy; routing the same products straight to the TF32 matmul
    breaks them (so the emulation has teeth)."""
    emulate_tf32(monkeypatch)
    accurate = _tf32_cases()
    assert accurate["qdwh"] <= POLAR_RATIO and accurate["newton_schulz"] <= POLAR_RATIO
    assert accurate["tall_skinny"] <= QR_RATIO and accurate["eigh"] <= EIGH_RATIO
    assert accurate["eigh_unsplit"] == 0
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: False)
    plain = _tf32_cases()
    assert plain["qdwh"] > POLAR_RATIO and plain["newton_schulz"] > POLAR_RATIO
    # QDWH-eig's split check rejects the TF32-inaccurate splits (the block goes to the base
    # solver whole) rather than returning a wrong decomposition.
    assert plain["eigh_unsplit"] == 1 and plain["eigh"] <= EIGH_RATIO
