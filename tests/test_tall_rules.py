"""Tall-skinny QR and SVD routed to the GPU graphs (mlx_linalg._gpu.tall_rules), on the CPU.

The implementations run with the blocked graphs' MLX-op building blocks
(``tall_skinny.REFERENCE``, ``blocked_common.REFERENCE``) and the Jacobi SVD kernels' MLX-op
references (``reference_spectral``) in place of the launches, which is the GPU's graph with
each kernel swapped for its reference; one test runs the Jacobi kernel body itself under
the CPU emulation (tests/kernel_emulation.py). Held to DESIGN.md's metrics against SciPy in
float64 and within 10x of float32 LAPACK: QR ratio, SVD ratios, singular values, for
1000 x 1, 4096 x 64, 300 x 16, wide 16 x 300 and batches, κ = 1, 1e3 and 1e6 (CholeskyQR2
fails there: the Householder fallback), rank-deficient and zero matrices, NaN/Inf
isolation, full_matrices both ways; the rules' boundaries and their place in GPU_RULES; the
public functions (qr, svd, svdvals, pinv, matrix_rank, cond, matrix_norm, orth, null_space,
lstsq) through the dispatch with the GPU backend pretended, inside ``mx.compile`` too; and
float32 accuracy with TF32 products emulated. The same on a GPU: tests/gpu/test_tall_gpu.py.
"""

import functools
import inspect
import json
import math

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
import tool_scripts
from kernel_emulation import emulate, needs_emulation
from matrices import (
    QR_RATIO,
    SVD_RATIO,
    as64,
    assert_float32_svd,
    emulate_tf32,
    graded_float32,
    gram_error,
    hard_batch,
    norm,
    qr_ratio,
    ratio,
    svd_ratios,
)

import mlx_linalg as la
from mlx_linalg import _autodiff_traced, _dispatch, _kernels, _precision
from mlx_linalg._gpu import (
    blocked_common,
    blocked_qr,
    reference_spectral,
    small_spectral,
    tall_rules,
    tall_skinny,
)

U32 = float(np.finfo(np.float32).eps) / 2
# Singular values against SciPy's float64 ones: |S − S_ref| ≤ FORWARD·√T·u·σ_max; R against
# SciPy's float64 R (signs normalized): ≤ FORWARD·κ·√N·u·‖R‖.
FORWARD = 10
# Our ratio may exceed float32 LAPACK's on the same input by this factor; ratios below FLOOR
# count as FLOOR.
VS_LAPACK = 10
FLOOR = 1.0
CONDS = [1.0, 1e3, 1e6]


@pytest.fixture(autouse=True)
def jacobi_references(monkeypatch):
    """small_spectral's Jacobi SVD launches replaced by their MLX-op references (same
    contracts), so that the GPU graph runs on the CPU."""
    sweeps = small_spectral.MAX_SWEEPS
    monkeypatch.setattr(
        small_spectral,
        "jacobi_svd",
        functools.partial(reference_spectral.jacobi_svd, max_sweeps=sweeps),
    )
    monkeypatch.setattr(
        small_spectral,
        "jacobi_svd_simd",
        functools.partial(reference_spectral.jacobi_svd_simd, max_sweeps=sweeps),
    )


def _qr(x: np.ndarray):
    (q, r), failed = tall_rules.qr(mx.array(x), mode="reduced", factor=tall_skinny.REFERENCE)
    assert failed is None
    return as64(q), as64(r)


def _svd(x: np.ndarray, full: bool):
    (u, s, vh), failed = tall_rules.svd(
        mx.array(x),
        full_matrices=full,
        factor=tall_skinny.REFERENCE,
        blocks=blocked_common.REFERENCE,
    )
    assert failed is None
    return as64(u), as64(s), as64(vh)


def _svdvals(x: np.ndarray) -> np.ndarray:
    (s,), failed = tall_rules.svdvals(mx.array(x), factor=tall_skinny.REFERENCE)
    assert failed is None
    return as64(s)



def _lapack_qr_ratio(a: np.ndarray) -> float:
    flat = a.reshape(-1, *a.shape[-2:])
    pairs = [scipy.linalg.qr(x, mode="economic") for x in flat]
    q = np.array([p[0] for p in pairs], dtype=np.float64)
    r = np.array([p[1] for p in pairs], dtype=np.float64)
    return qr_ratio(flat.astype(np.float64), q, r, U32)


# ---------------------------------------------------------------------------------------
# QR


# κ = 1e6: CholeskyQR2 fails, Householder's QR comes back (not at 4096 x 64: CPU time).
QR_CASES = [
    *((shape, cond) for shape in [(1000, 1), (300, 16), (2, 3, 200, 8)] for cond in CONDS),
    ((4096, 64), 1e3),
]


@pytest.mark.parametrize(("shape", "cond"), QR_CASES)
def test_qr_accuracy(rng, shape, cond):
    a = graded_float32(rng, shape, cond)
    q, r = _qr(a)
    m, n = shape[-2:]
    assert q.shape == shape and r.shape == (*shape[:-2], n, n)
    a64 = a.astype(np.float64)
    got = qr_ratio(a64, q, r, U32)
    assert got <= QR_RATIO
    assert got <= VS_LAPACK * max(_lapack_qr_ratio(a), FLOOR)
    assert np.all(np.tril(r, -1) == 0) and np.all(np.diagonal(r, axis1=-2, axis2=-1) >= 0)
    flat_a, flat_r = a64.reshape(-1, m, n), r.reshape(-1, n, n)
    for x, got_r in zip(flat_a, flat_r, strict=True):
        ref = scipy.linalg.qr(x, mode="economic")[1]
        ref = ref * np.sign(np.where(np.diag(ref) == 0, 1, np.diag(ref)))[:, None]
        bound = FORWARD * cond * math.sqrt(n) * U32 * np.linalg.norm(ref)
        assert np.linalg.norm(got_r - ref) <= bound


def test_qr_hard_matrices_and_nan_isolation(rng):
    """A repeated column, a zero column, the zero matrix (CholeskyQR2 fails on all three:
    Householder's QR comes back) and matrices with NaN and Inf (NaN, alone), in one batch;
    the batch equals the loop over it."""
    a = graded_float32(rng, (6, 300, 16), 10.0)
    a[1, :, 5] = a[1, :, 2]
    a[2, :, 7] = 0
    a[3] = 0
    a[4, 17, 3] = np.nan
    a[5, 0, 0] = np.inf
    *_, flagged = tall_skinny.qr(mx.array(a), tall_skinny.REFERENCE, fallback="nan")
    assert np.asarray(flagged).tolist() == [False, True, True, True, True, True]
    q, r = _qr(a.reshape(2, 3, 300, 16))
    q, r = q.reshape(6, 300, 16), r.reshape(6, 16, 16)
    assert np.all(np.isnan(q[4:])) and np.all(np.isnan(r[4:]))
    assert np.all(np.isfinite(q[:4])) and np.all(np.isfinite(r[:4]))
    assert qr_ratio(a[:4].astype(np.float64), q[:4], r[:4], U32) <= QR_RATIO
    assert np.all(r[3] == 0)
    for i in range(4):
        qi, ri = _qr(a[i])
        np.testing.assert_allclose(qi, q[i], rtol=0, atol=1e-5)
        np.testing.assert_allclose(ri, r[i], rtol=0, atol=1e-5 * np.abs(r[i]).max(initial=1))


def test_qr_complete_mode_is_refused():
    with pytest.raises(ValueError, match=r"^\[mlx_linalg\.qr\]"):
        tall_rules.qr(mx.zeros((300, 4)), mode="complete", factor=tall_skinny.REFERENCE)


# ---------------------------------------------------------------------------------------
# SVD


def _check_svd(a: np.ndarray, full: bool) -> None:
    u, s, vh = _svd(a, full)
    m, n = a.shape[-2:]
    k = min(m, n)
    batch = a.shape[:-2]
    rows_u, rows_v = (m, n) if full else (k, k)
    assert u.shape == (*batch, m, rows_u) and s.shape == (*batch, k)
    assert vh.shape == (*batch, rows_v, n)
    _, bound = assert_float32_svd(a, u, s, vh, vs_lapack=VS_LAPACK, floor=FLOOR, forward=FORWARD)
    np.testing.assert_allclose(_svdvals(a), s, rtol=0, atol=float(bound.max()))


@pytest.mark.parametrize("shape", [(1000, 1), (300, 16), (16, 300), (2, 200, 40), (3, 40, 200)])
@pytest.mark.parametrize("cond", CONDS)
@pytest.mark.parametrize("full", [False, True])
def test_svd_accuracy(rng, shape, cond, full):
    _check_svd(graded_float32(rng, shape, cond), full)


def test_svd_4096x64(rng):
    _check_svd(graded_float32(rng, (4096, 64), 1e3), False)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("shape", [(260, 40), (40, 260)])
def test_svd_rank_deficient_zero_and_nan(rng, full, shape):
    """Rank 3, a zero column, the zero matrix and NaN / Inf matrices in one batch: the
    finite ones meet the thresholds with orthonormal singular vectors (completed where the
    singular values are zero), the others are NaN alone; batch = loop."""
    m, n = shape
    a, good = hard_batch(rng, m, n, inf=-np.inf)
    u, s, vh = _svd(a, full)
    assert all(np.all(np.isnan(x[3:])) for x in (u, s, vh))
    assert all(np.all(np.isfinite(x[:3])) for x in (u, s, vh))
    assert max(svd_ratios(good.astype(np.float64), u[:3], s[:3], vh[:3], U32)) <= SVD_RATIO
    s_ref = np.linalg.svd(good.astype(np.float64), compute_uv=False)
    assert np.all(np.abs(s[:3] - s_ref) <= FORWARD * math.sqrt(m) * U32 * s_ref[:, :1])
    assert np.all(s[0, 3:] <= FORWARD * math.sqrt(m) * U32 * s[0, 0])
    assert np.all(s[2] == 0)
    for i in range(3):
        ui, si, vhi = _svd(good[i], full)
        np.testing.assert_allclose(si, s[i], rtol=0, atol=1e-5 * max(s[i, 0], 1))
        assert max(svd_ratios(good[i].astype(np.float64), ui, si, vhi, U32)) <= SVD_RATIO
    assert np.all(np.isnan(_svdvals(a)[3:])) and np.all(np.isfinite(_svdvals(a)[:3]))


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e-40])
def test_svd_extreme_scaling(rng, scale):
    """Power-of-two prescaling: Gram matrices and R neither overflow nor underflow; S is
    scaled back exactly (a subnormal input is measured against what was stored)."""
    a = (graded_float32(rng, (300, 16), 10.0).astype(np.float64) * scale).astype(np.float32)
    stored = a.astype(np.float64)
    u, s, vh = _svd(a, False)
    assert max(svd_ratios(stored, u, s, vh, U32)) <= SVD_RATIO
    s_ref = np.linalg.svd(stored, compute_uv=False)
    assert np.all(np.abs(s - s_ref) <= FORWARD * math.sqrt(300) * U32 * s_ref[0] + 2.0**-149)


# ---------------------------------------------------------------------------------------
# The rules: where they apply, their place in GPU_RULES


# The thresholds the routing tests pin (the module's first guesses, with a smaller least
# work): the measured values may differ; what these tests check (each condition of the
# rules, their order, the public functions served) does not depend on them.
PINNED = {
    "QR_TALL_RATIO": 8,
    "QR_MAX_COLS": 1024,
    "QR_MIN_WORK": 1 << 16,
    "SVD_TALL_RATIO": 2,
    "SVD_MIN_WORK": 1 << 16,
    "SVD_FULL_MAX_ROWS": 16384,
}


@pytest.fixture
def pinned_thresholds(monkeypatch):
    for name, value in PINNED.items():
        monkeypatch.setattr(tall_rules, name, value)


@pytest.mark.usefixtures("pinned_thresholds")
def test_qr_applies_boundaries():
    def applies(m, n, dtype=mx.float32, mode="reduced", batch=()):
        return tall_rules.qr_applies(mx.zeros((*batch, m, n), dtype=dtype), mode=mode)

    assert applies(192, 24) and applies(192, 24, batch=(3,))
    assert not applies(191, 24)  # M < 8N
    assert not applies(192, 24, mode="complete")
    assert not applies(192, 24, dtype=mx.float64) and not applies(192, 24, dtype=mx.float16)
    assert not applies(192, 24, batch=(0,))
    assert applies(256, 16) and not applies(255, 16)  # B·M·N² = 2^16 and just below
    assert applies(255, 16, batch=(2,))
    assert not applies(128, 32, batch=(100,))  # the small kernel's (M, N <= 128, 32 KB)
    assert applies(8 * 1024, 1024) and not applies(8 * 1025, 1025)  # QR_MAX_COLS


@pytest.mark.usefixtures("pinned_thresholds")
def test_svd_applies_boundaries():
    def applies(m, n, full=False, dtype=mx.float32, batch=()):
        x = mx.zeros((*batch, m, n), dtype=dtype)
        return tall_rules.svd_applies(x, full_matrices=full) and (
            full or tall_rules.svdvals_applies(x)
        )

    assert applies(129, 64) and applies(64, 129)  # tall and wide
    assert applies(128, 64)  # within the small kernel's rows, not its 32 KB
    assert not applies(127, 64)  # T < 2S
    assert not applies(200, 65) and not applies(65, 200)  # S > 64
    assert not applies(200, 64, dtype=mx.float64)
    assert not applies(100, 20, batch=(1000,))  # the small Jacobi kernel's
    assert applies(1024, 8) and not applies(1023, 8)  # B·T·S² = 2^16 and just below
    assert applies(1023, 8, batch=(2,)) and applies(8, 1023, batch=(2,))
    assert applies(16384, 8, full=True) and applies(8, 16384, full=True)
    assert not applies(16385, 8, full=True) and applies(16385, 8)  # SVD_FULL_MAX_ROWS


@pytest.mark.usefixtures("pinned_thresholds")
def test_rules_sit_between_the_small_and_the_blocked_ones():
    """On the GPU backend: small matrices keep the small kernels, tall-skinny ones take
    tall_rules, large square ones the blocked QR, float64 LAPACK."""

    def picked(op, shape, dtype=mx.float32, **keywords):
        impl = _dispatch.implementation(op, mx.gpu, mx.zeros(shape, dtype=dtype), **keywords)
        # GPU implementations come wrapped to run on the stream (the blocked ones also in
        # compiled_graphs.cached); LAPACK's come as they are.
        return impl if impl is getattr(_dispatch.lapack, op) else inspect.unwrap(impl)

    assert picked("qr", (64, 8), mode="reduced") is small_spectral.qr
    assert picked("qr", (4096, 64), mode="reduced") is tall_rules.qr
    assert picked("qr", (600, 64), mode="reduced") is tall_rules.qr
    # complete QR of a tall matrix: the blocked QR (its crossover is 128)
    assert picked("qr", (600, 64), mode="complete") is blocked_qr.qr
    assert picked("qr", (4096, 64), mode="complete") is blocked_qr.qr
    assert picked("qr", (2048, 2048), mode="reduced") is blocked_qr.qr
    assert picked("qr", (4096, 64), dtype=mx.float64, mode="reduced") is _dispatch.lapack.qr
    assert picked("svd", (100, 20), full_matrices=False) is small_spectral.svd
    assert picked("svd", (4096, 64), full_matrices=False) is tall_rules.svd
    assert picked("svd", (64, 4096), full_matrices=True) is tall_rules.svd
    assert picked("svd", (4096, 65), full_matrices=False) is _dispatch.lapack.svd
    assert picked("svdvals", (100, 20)) is small_spectral.svdvals
    assert picked("svdvals", (20, 1000)) is tall_rules.svdvals
    assert tall_rules.dispatch_rules()["qr"] in _dispatch.GPU_RULES["qr"]


# ---------------------------------------------------------------------------------------
# Through the public functions, with the GPU backend pretended


@pytest.fixture
def pretend_gpu(monkeypatch, pinned_thresholds):
    """The GPU backend pretended, the tall rules (REFERENCE building blocks) its only rules
    (every other op runs LAPACK): returns the set of ops they served."""
    monkeypatch.setattr(tall_rules, "QR_MIN_WORK", 0)  # small matrices keep the tests fast
    monkeypatch.setattr(tall_rules, "SVD_MIN_WORK", 0)
    real_backend = _dispatch.backend  # an explicit stream=mx.cpu still means the CPU
    monkeypatch.setattr(
        _dispatch, "backend", lambda stream=None: "gpu" if stream is None else real_backend(stream)
    )
    monkeypatch.setattr(_dispatch, "GPU_RULES", {})
    used = set()
    keywords = {
        "qr": {"factor": tall_skinny.REFERENCE},
        "svd": {"factor": tall_skinny.REFERENCE, "blocks": blocked_common.REFERENCE},
        "svdvals": {"factor": tall_skinny.REFERENCE},
    }
    for op, (applies, impl) in tall_rules.dispatch_rules().items():

        def traced(*args, _op=op, _impl=impl, **kwargs):
            used.add(_op)
            return _impl(*args, **keywords[_op], **kwargs)

        _dispatch.GPU_RULES[op] = [(applies, traced)]
    return used


def test_public_functions_take_the_tall_rules(rng, pretend_gpu):
    a = graded_float32(rng, (2, 400, 12), 1e2)
    a[1, :, 11] = a[1, :, 0]  # rank 11: Householder fallback for the QR, a zero singular value
    x = mx.array(a)
    a64 = a.astype(np.float64)
    s_ref = np.linalg.svd(a64, compute_uv=False)
    tol = FORWARD * math.sqrt(400) * U32

    q, r = la.qr(x)
    assert qr_ratio(a64, as64(q), as64(r), U32) <= QR_RATIO
    for full in (False, True):
        u, s, vh = la.svd(x, full_matrices=full)
        assert max(svd_ratios(a64, as64(u), as64(s), as64(vh), U32)) <= SVD_RATIO
    np.testing.assert_allclose(as64(la.svdvals(x)), s_ref, rtol=0, atol=tol * s_ref.max())
    # pinv of the rank-11 matrix is sensitive (‖A⁺‖²‖ΔA‖): against float32 LAPACK's error.
    pinv_ref = np.linalg.pinv(a64)
    lapack = norm(np.array([scipy.linalg.pinv(m) for m in a]) - pinv_ref) / norm(pinv_ref)
    ours = norm(as64(la.pinv(x)) - pinv_ref) / norm(pinv_ref)
    print("pinv relative error", ours, "LAPACK float32", lapack)
    assert np.all(ours <= VS_LAPACK * np.maximum(lapack, tol))
    assert np.asarray(la.matrix_rank(x)).tolist() == [12, 11]
    np.testing.assert_allclose(as64(la.cond(x)[0]), np.linalg.cond(a64[0]), rtol=1e-4)
    for order in (2, -2, "nuc"):
        expected = np.linalg.norm(a64, ord=order, axis=(-2, -1))
        got = as64(la.matrix_norm(x, ord=order))
        np.testing.assert_allclose(got, expected, rtol=0, atol=tol * s_ref.max() * 12)
    basis = as64(la.orth(x[:1]))
    assert basis.shape == (1, 400, 12) and ratio(gram_error(basis), 400, U32) <= SVD_RATIO
    null = as64(la.null_space(x[1:]))
    assert null.shape == (1, 12, 1)
    assert np.linalg.norm(a64[1] @ null[0]) <= tol * s_ref[1, 0]
    b = rng.standard_normal((2, 400, 3)).astype(np.float32)
    solution = as64(la.lstsq(x[:1], mx.array(b[:1]), driver="gels").solution)
    expected = np.linalg.lstsq(a64[0], b[0].astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(solution[0], expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    wide = la.svdvals(mx.swapaxes(x, -1, -2))
    np.testing.assert_allclose(as64(wide), s_ref, rtol=0, atol=tol * s_ref.max())
    assert pretend_gpu == {"qr", "svd", "svdvals"}


def test_traced_calls_stay_on_the_tall_rules(rng, pretend_gpu, monkeypatch):
    """Under mx.compile / mx.vmap the fallback's host read is not allowed, so the tall rules
    select the Householder results per matrix lazily instead: a rank-deficient matrix (its
    CholeskyQR fails) still gets them, and qr never drops to the lazy CPU form. (svdvals
    may: the REFERENCE Jacobi sweeps read their convergence on the host, the GPU kernel
    does not.)"""
    lazy_cpu_form = _autodiff_traced.run

    def only_not_qr(op, *arrays, **keywords):
        assert op != "qr", "qr left the tall rules under tracing"
        return lazy_cpu_form(op, *arrays, **keywords)

    monkeypatch.setattr(_autodiff_traced, "run", only_not_qr)
    a = graded_float32(rng, (2, 300, 10), 1e2)
    a[1, :, 9] = a[1, :, 0]  # rank 9: CholeskyQR fails, the Householder QR is selected
    x = mx.array(a)
    a64 = a.astype(np.float64)
    expected = np.linalg.svd(a64, compute_uv=False)
    tol = FORWARD * math.sqrt(300) * U32 * expected.max()
    np.testing.assert_allclose(as64(mx.compile(la.svdvals)(x)), expected, rtol=0, atol=tol)
    np.testing.assert_allclose(as64(mx.vmap(la.svdvals)(x)), expected, rtol=0, atol=tol)
    q, r = mx.compile(lambda y: tuple(la.qr(y)))(x)
    assert qr_ratio(a64, as64(q), as64(r), U32) <= QR_RATIO
    assert pretend_gpu == {"svdvals", "qr"}


def test_gradients_through_the_tall_rules(rng, pretend_gpu):
    """mx.grad of sign-invariant functions of the SVD (the rank-3 part U₃V₃ᵀ, the singular
    values) is the same through the tall rules as through LAPACK."""

    def loss(x, stream=None):
        u, _, vh = la.svd(x, full_matrices=False, stream=stream)
        return (u[:, :3] @ vh[:3]).sum() + la.svdvals(x, stream=stream).sum()

    x = mx.array(graded_float32(rng, (300, 10), 10.0))
    lapack = np.asarray(mx.grad(functools.partial(loss, stream=mx.cpu))(x))
    assert not pretend_gpu
    through_tall = np.asarray(mx.grad(loss)(x))
    assert pretend_gpu == {"svd", "svdvals"}
    np.testing.assert_allclose(through_tall, lapack, rtol=0, atol=1e-4 * np.abs(lapack).max())


# ---------------------------------------------------------------------------------------
# Float32 accuracy with TF32 products (emulated), and the Jacobi kernel body itself


def _tf32_case(rng_seed: int) -> dict:
    rng = np.random.default_rng(rng_seed)
    a = graded_float32(rng, (300, 16), 10.0)
    b = graded_float32(rng, (1000, 8), 10.0)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out = {}
    for full in (False, True):
        out[f"svd{full}"] = max(svd_ratios(a64, *_svd(a, full), U32))
    q, r = _qr(b)
    out["qr"] = qr_ratio(b64, q, r, U32)
    return out


# The QR ratio the tall path keeps with TF32 products split (measured 0.15 at 1000 x 8);
# sent straight to TF32 it is about 2: so this guard has teeth where QR_RATIO has not.
TF32_QR_GUARD = 0.5


def test_float32_accuracy_with_emulated_tf32_products(monkeypatch):
    """Every product goes through _precision.matmul: with mx.matmul rounding its inputs to
    TF32 and the probe reporting it, results keep float32 accuracy; the same products sent
    straight to TF32 break the SVD thresholds (so the emulation has teeth)."""
    emulate_tf32(monkeypatch)
    accurate = _tf32_case(30)
    assert accurate["svdFalse"] <= SVD_RATIO and accurate["svdTrue"] <= SVD_RATIO
    assert accurate["qr"] <= TF32_QR_GUARD
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: False)
    plain = _tf32_case(30)
    assert plain["svdFalse"] > SVD_RATIO and plain["svdTrue"] > SVD_RATIO
    assert plain["qr"] > TF32_QR_GUARD


def _emulated_launch(name, inputs, *, template, grid, threadgroup, output_shapes, **_):
    outputs = emulate.run(
        name,
        [np.asarray(x) for x in inputs],
        template=template,
        grid=grid,
        threadgroup=threadgroup,
        output_shapes=output_shapes,
    )
    return [mx.array(x) for x in outputs]


@needs_emulation
def test_with_the_emulated_jacobi_kernel(rng, monkeypatch):
    """The SVD of R by the ``jacobi_svd`` kernel body itself (40 columns: the
    threadgroup-memory kernel), run on the CPU under the emulation: DESIGN.md's ratios and
    the reference's singular values."""
    a = graded_float32(rng, (2, 200, 40), 1e3)
    reference = _svd(a, False)  # the Jacobi references of the autouse fixture
    monkeypatch.undo()
    monkeypatch.setattr(_kernels, "launch", _emulated_launch)
    u, s, vh = _svd(a, False)
    assert max(svd_ratios(a.astype(np.float64), u, s, vh, U32)) <= SVD_RATIO
    np.testing.assert_allclose(s, reference[1], rtol=0, atol=1e-5 * s.max())


# ---------------------------------------------------------------------------------------
# tools/bench_tall.py: a smoke run on the CPU, and the thresholds it suggests


def _bench_tall():
    return tool_scripts.load("tools/bench_tall.py")


def test_bench_tall_smoke_run_on_the_cpu(tmp_path, monkeypatch):
    """``--device cpu`` runs every column with the MLX-op references and writes the JSON and
    the Markdown table; the tall results meet the thresholds."""
    bench = _bench_tall()
    for name in ("jacobi_svd", "jacobi_svd_simd", "qr_small"):  # --device cpu replaces them
        monkeypatch.setattr(small_spectral, name, getattr(small_spectral, name))
    argv = ["--device", "cpu", "--out", str(tmp_path), "--cols", "4", "--ratios", "2,40"]
    argv += ["--full-max", "8", "--repeat", "1"]
    assert bench.main(argv) == 0
    result = json.loads((tmp_path / "bench_tall.json").read_text())
    rows = {(r["op"], r["m"]): r for r in result["rows"]}
    assert set(rows) == {("qr", 8), ("qr", 160), ("svd", 8), ("svd", 160), ("svd_full", 8)}
    for (op, m), row in rows.items():
        x = mx.zeros((m, 4))
        applies = tall_rules.qr_applies(x, mode="reduced") if op == "qr" else None
        if op != "qr":
            applies = tall_rules.svd_applies(x, full_matrices=op == "svd_full")
        assert row["rule_applies"] == applies
    for row in result["rows"]:
        assert row["tall_ms"] > 0 and row["cpu_ms"] > 0
        assert row["tall_ratio"] <= (QR_RATIO if row["op"] == "qr" else SVD_RATIO)
    assert rows["qr", 160]["tall_fallback_ratio"] <= QR_RATIO
    assert "small_ms" in rows["qr", 8] and "small_ms" not in rows["qr", 160]
    assert "## QR (reduced)" in (tmp_path / "bench_tall.md").read_text()


def test_bench_tall_suggests_the_crossovers():
    bench = _bench_tall()

    def row(op, n, r, tall, **rivals):
        return {"op": op, "m": r * n, "n": n, "ratio": r, "tall_ms": tall} | {
            f"{k}_ms": v for k, v in rivals.items()
        }

    rows = [
        row("qr", 64, 2, 5.0, blocked=3.0, cpu=4.0),
        row("qr", 64, 4, 3.0, blocked=3.5, cpu=4.0),  # beats blocked from M = 256, CPU too
        row("qr", 64, 16, 3.0, blocked=9.0, cpu=8.0),
        row("qr", 512, 4, 9.0, blocked=8.0, cpu=20.0),  # beats the CPU from M = 2048
        row("qr", 512, 16, 9.0, blocked=12.0, cpu=30.0),  # beats blocked from M = 8192
        row("qr", 1024, 16, 50.0, blocked=40.0, cpu=60.0),  # never beats blocked
        row("qr", 16, 8, 2.0, blocked=3.0, small=1.0, cpu=1.0),  # the small kernel wins
        row("qr", 16, 64, 2.0, blocked=3.0, cpu=1.5),  # beats the GPU paths, not the CPU
        row("svd", 32, 2, 2.0, small=1.0, cpu=3.0),
        row("svd", 32, 8, 1.5, cpu=3.0),  # wins from M = 256
        row("svd", 64, 4, 1.5, cpu=3.0),  # wins from M = 256
        row("svd_full", 256, 8, 5.0, cpu=9.0),
        row("svd_full", 1024, 32, 50.0, cpu=40.0),
    ]
    suggested = bench.suggest(rows)
    assert suggested["qr_least_m_vs_gpu_paths_by_n"] == {16: 1024, 64: 256, 512: 8192, 1024: None}
    assert suggested["qr_least_m_vs_cpu_by_n"] == {16: None, 64: 256, 512: 2048, 1024: 16384}
    assert suggested["QR_TALL_RATIO"] == 64 and suggested["QR_MAX_COLS"] == 512
    assert suggested["QR_MIN_WORK"] == 16384 * 1024 * 1024
    assert suggested["svd_least_m_vs_cpu_by_n"] == {32: 256, 64: 256}
    assert suggested["SVD_TALL_RATIO"] == 4 and suggested["SVD_MIN_WORK"] == 256 * 64 * 64
    assert suggested["SVD_FULL_MAX_ROWS"] == 2048
