"""The C++ check of the Metal kernel bodies (tools/metal_check): it passes every shipped
kernel and rejects a body with an undeclared name or a syntax error; and the bodies run on
the CPU under tools/metal_check/emulate.py agree with their MLX-op references."""

import shutil

import mlx.core as mx
import numpy as np
import pytest
from kernel_emulation import emulate, metal_check, needs_emulation
from matrices import symmetric_from_lower

from mlx_linalg import _kernels
from mlx_linalg._gpu import reference as ref
from mlx_linalg._gpu import reference_spectral as spectral_ref
from mlx_linalg._gpu.small_spectral import qr_groups, qr_small_launch, simd_columns

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")

GOOD = """// @kernel toy
// @inputs A:float32
// @outputs out:float32
// @template NMAX:int
// @headers linalg_common.h
// @check NMAX=32
const int n = A_shape[0];
const uint i = thread_position_in_grid.x;
threadgroup float tile[NMAX];
tile[thread_index_in_threadgroup % NMAX] = 0.0f;
threadgroup_barrier(mem_flags::mem_threadgroup);
if (i < (uint)n) {
  out[i] = simd_sum(metal::sqrt(metal::abs(A[i]))) + tile[0];
}
"""


def _results(body: str, mode: str = "metal"):
    return metal_check.check(_kernels.parse_spec("toy", body), mode)


@needs_gxx
@pytest.mark.parametrize("name", _kernels.kernel_names())
def test_shipped_kernels_compile(name):
    for instance, ok, output in metal_check.check(_kernels.spec(name), "metal"):
        assert ok, f"{name} {instance}:\n{output}"


@needs_gxx
def test_good_body_compiles():
    assert all(ok for _, ok, _ in _results(GOOD))


@needs_gxx
@pytest.mark.parametrize(
    "bad, expected",
    [
        (GOOD.replace("metal::sqrt", "metal::sqrtt"), "sqrtt"),  # undeclared function
        (GOOD.replace("simd_sum(", "warp_sum("), "warp_sum"),  # CUDA-ism Metal lacks
        (GOOD.replace("out[i] =", "outt[i] ="), "outt"),  # undeclared variable
        (GOOD.replace("std::", "").replace("metal::abs", "std::abs"), "std"),  # no std
        (
            GOOD.replace(
                "tile[thread_index_in_threadgroup % NMAX] = 0.0f;",
                "tile[thread_index_in_threadgroup % NMAX] = 0.0f",
            ),
            "expected",
        ),
        (GOOD.replace("if (i < (uint)n) {", "if (i < (uint)n {"), "expected"),
        (
            GOOD.replace("threadgroup_barrier(mem_flags::mem_threadgroup)", "__syncthreads()"),
            "__syncthreads",
        ),
    ],
)
def test_check_rejects_bad_body(bad, expected):
    results = _results(bad)
    assert not any(ok for _, ok, _ in results)
    assert expected in results[0][2]


@needs_gxx
def test_check_declares_only_the_attributes_the_body_names():
    # MLX adds an attribute only when the body names it; so does the check. A body that
    # takes the lane from a helper argument name that MLX would not declare fails.
    body = GOOD.replace("thread_index_in_threadgroup", "thread_index")
    assert not any(ok for _, ok, _ in _results(body))
    source = metal_check.metal_source(_kernels.parse_spec("toy", GOOD), (("NMAX", 32),))
    assert "uint3 thread_position_in_grid" in source
    assert "uint thread_index_in_threadgroup" in source
    assert "simdgroup_index_in_threadgroup" not in source
    assert "const constant int* A_shape" in source


@needs_nvcc
@pytest.mark.parametrize("name", _kernels.kernel_names())
def test_shipped_kernels_compile_for_cuda(name):
    # To PTX: ptxas's register allocation took 60% of this test's minutes in CI, and every
    # GPU run assembles the kernels it launches.
    for instance, ok, output in metal_check.check(_kernels.spec(name), "cuda", assemble=False):
        assert ok, f"{name} {instance}:\n{output}"


@needs_nvcc
def test_cuda_check_rejects_bad_body():
    results = _results(GOOD.replace("metal::sqrt", "metal::sqrtt"), "cuda")
    assert not any(ok for _, ok, _ in results)


# --- the bodies run on the CPU (tools/metal_check/emulate.py) against their references ----


def _stack(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _launch(name, inputs, template, threads, output_shapes):
    batch = inputs[0].shape[0]
    return emulate.run(
        name,
        inputs,
        template=template,
        grid=(batch * threads, 1, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=output_shapes,
    )


@needs_emulation
@pytest.mark.parametrize(
    "n, nmax, threads", [(20, 32, 32), (45, 64, 64), (64, 64, 32), (7, 64, 64)]
)
@pytest.mark.parametrize("upper", [False, True])
def test_emulated_cholesky_matches_reference(n, nmax, threads, upper):
    a = _stack((3, n, n), n)
    spd = a @ np.swapaxes(a, -1, -2) / n + np.eye(n, dtype=np.float32)
    spd[1, 4, 4] = -1.0  # not positive definite
    unread = np.triu(np.full((n, n), np.nan, dtype=np.float32), 1)  # never read
    spd[2] += unread.T if upper else unread
    factor, failed = _launch(
        "cholesky_small", [spd], {"NMAX": nmax, "UPPER": upper}, threads, [(3, n, n), (3,)]
    )
    expected, exp_failed = ref.cholesky_small(mx.array(spd), upper=upper)
    np.testing.assert_array_equal(failed, np.asarray(exp_failed))
    np.testing.assert_allclose(factor, np.asarray(expected), rtol=1e-5, atol=1e-5)


@needs_emulation
@pytest.mark.parametrize("simd, threads", [(False, 128), (True, 32)])
@pytest.mark.parametrize("m, n, nmax", [(20, 20, 32), (7, 3, 32), (3, 7, 32), (50, 40, 64)])
def test_emulated_lu_matches_reference(simd, threads, m, n, nmax):
    a = _stack((2, m, n), m * n)
    a[1, :, 1] = np.nan  # NaN never wins a pivot search and stays in its matrix
    packed, piv, perm = _launch(
        "lu_small", [a], {"NMAX": nmax, "SIMD": simd}, threads, [(2, m, n), (2, min(m, n)), (2, m)]
    )
    exp_packed, exp_piv, exp_perm = ref.lu_small(mx.array(a))
    np.testing.assert_array_equal(piv, np.asarray(exp_piv))
    np.testing.assert_array_equal(perm, np.asarray(exp_perm))
    np.testing.assert_allclose(packed, np.asarray(exp_packed), rtol=1e-4, atol=1e-5)


def _emulated_solve(a, b, *, nmax, eye, simd, threads):
    batch, n, k = b.shape
    x, info = _launch(
        "solve_small",
        [a, a if eye else b],
        {"NMAX": nmax, "EYE": eye, "SIMD": simd},
        threads,
        [(batch, n, n if eye else k), (batch,)],
    )
    expected, exp_info = ref.solve_small(mx.array(a), mx.array(b), eye=eye)
    np.testing.assert_array_equal(info, np.asarray(exp_info))
    np.testing.assert_allclose(x, np.asarray(expected), rtol=1e-4, atol=1e-5)


@needs_emulation
@pytest.mark.parametrize("simd, threads", [(False, 128), (True, 32)])
@pytest.mark.parametrize("eye", [False, True])
@pytest.mark.parametrize("n, nmax", [(20, 32), (64, 64)])
def test_emulated_solve_matches_reference(simd, threads, eye, n, nmax):
    # K = 35: two chunks of right-hand-side columns, the second one partly filled.
    a = _stack((3, n, n), n) / np.sqrt(n) + 2 * np.eye(n, dtype=np.float32)
    a[0, :, 3] = 0  # exactly singular
    b = _stack((3, n, 35), n + 1)
    _emulated_solve(a, b, nmax=nmax, eye=eye, simd=simd, threads=threads)


@needs_emulation
@pytest.mark.parametrize("simd", [False, True])
@pytest.mark.parametrize("k", [1, 33])
def test_emulated_solve_right_hand_side_counts(simd, k):
    # One column (31 idle lanes), and 33 columns over two simdgroups (the second one's
    # chunk holds one column).
    n = 13
    a = _stack((2, n, n), k) / np.sqrt(n) + 2 * np.eye(n, dtype=np.float32)
    a[1, 5] = 0  # exactly singular
    b = _stack((2, n, k), k + 1)
    _emulated_solve(a, b, nmax=32, eye=False, simd=simd, threads=64)


@needs_emulation
@pytest.mark.parametrize(
    "lower, trans, unit",
    [
        (True, False, False),
        (False, True, True),
        (True, True, False),
        (False, False, True),
    ],
)
@pytest.mark.parametrize("threads, k", [(256, 33), (32, 33), (32, 1)])
def test_emulated_trsm_matches_reference(lower, trans, unit, threads, k):
    # K = 33 takes two chunks of right-hand-side columns: with 256 threads two simdgroups
    # substitute, one chunk each (the other six only load the triangle); with 32 threads
    # one takes both in turn. K = 1 leaves 31 lanes idle.
    n = 40
    a = _stack((2, n, n), 3) / np.sqrt(n) + 2 * np.eye(n, dtype=np.float32)
    if not unit:
        a[1, 7, 7] = 0  # a zero on the diagonal: singular
    b = _stack((2, n, k), 4)
    x, info = _launch(
        "trsm_small",
        [a, b],
        {"NMAX": 64, "LOWER": lower, "TRANS": trans, "UNIT": unit, "ROWS": False},
        threads,
        [(2, n, k), (2,)],
    )
    expected, exp_info = ref.trsm_small(
        mx.array(a), mx.array(b), lower=lower, trans=trans, unit=unit
    )
    np.testing.assert_array_equal(info, np.asarray(exp_info))
    np.testing.assert_allclose(x, np.asarray(expected), rtol=1e-4, atol=1e-5)


@needs_emulation
@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize(
    "n, nmax, threads, k", [(24, 32, 128, 33), (40, 64, 32, 35), (24, 32, 32, 1)]
)
def test_emulated_lu_solve_matches_reference(trans, n, nmax, threads, k):
    a = _stack((2, n, n), 5) + np.eye(n, dtype=np.float32)  # not dominant: rows interchange
    b = _stack((2, n, k), 6)
    packed, piv, _ = ref.lu_small(mx.array(a))
    assert np.any(np.asarray(piv) != np.arange(n))  # the interchanges matter
    x, info = _launch(
        "lu_solve_small",
        [np.asarray(packed), np.asarray(piv), b],
        {"NMAX": nmax, "TRANS": trans},
        threads,
        [(2, n, k), (2,)],
    )
    expected, _ = ref.lu_solve_small(packed, piv, mx.array(b), trans=trans)
    assert not info.any()
    np.testing.assert_allclose(x, np.asarray(expected), rtol=1e-4, atol=1e-5)


@needs_emulation
def test_emulated_qr_stays_orthogonal_on_badly_scaled_columns():
    """Rows and columns scaled by 2^±30 (the conformance zoo's badly_scaled class): squares of
    the tiny entries underflow float32, and an unscaled norm gave ‖I − QᵀQ‖ ≈ 1 on the H100."""
    n, rng = 24, np.random.default_rng(3)
    a = 2.0 ** rng.integers(-30, 30, (3, n, 1)) * rng.standard_normal((3, n, n))
    a = (a * 2.0 ** rng.integers(-30, 30, (3, 1, n))).astype(np.float32)
    a /= np.abs(a).max(axis=(-2, -1), keepdims=True)  # as the launcher's prescale does
    qt, r = _launch(
        "qr_small", [a], {"M": n, "N": n, "COMPLETE": False}, 32 * 16, [(3, n, n), (3, n, n)]
    )
    q = np.swapaxes(qt, -1, -2).astype(np.float64)
    u = 2.0**-24
    orthogonality = np.linalg.norm(np.eye(n) - np.swapaxes(q, -1, -2) @ q, axis=(-2, -1))
    residual = np.linalg.norm(a - q @ r, axis=(-2, -1)) / np.linalg.norm(a, axis=(-2, -1))
    assert (orthogonality / (n * u)).max() <= 30
    assert (residual / (n * u)).max() <= 30


@needs_emulation
@pytest.mark.parametrize("m, n", [(24, 24), (40, 16), (9, 20)])
def test_emulated_qr_small_is_the_same_for_any_simdgroup_count(m, n):
    """Column j belongs to simdgroup j mod G, whose lanes hold the same rows for any G: Q and
    R are the same bit for bit whatever ``qr_groups`` picks."""
    a = np.random.default_rng(m * n).standard_normal((3, m, n)).astype(np.float32)
    outputs = [
        emulate.run("qr_small", [a], **qr_small_launch(a.shape, complete=False, groups=g))
        for g in (1, 2, 5, 16)
    ]
    for qt, r in outputs[1:]:
        np.testing.assert_array_equal(qt, outputs[0][0])
        np.testing.assert_array_equal(r, outputs[0][1])


@needs_emulation
@pytest.mark.parametrize("rows, height, n", [(300, 128, 8), (40, 16, 5), (64, 64, 4)])
def test_emulated_qr_small_reads_rows_past_the_end_as_zeros(rows, height, n):
    """A (B, R, N) array is factored as B·⌈R / height⌉ matrices of ``height`` rows, rows past
    R read as zeros: the same Q and R, bit for bit, as of the zero-padded stack (TSQR's
    leaves and tree levels, which padded a copy before)."""
    a = np.random.default_rng(rows).standard_normal((2, rows, n)).astype(np.float32)
    leaves = -(-rows // height)
    padded = np.zeros((2, leaves * height, n), np.float32)
    padded[:, :rows] = a
    stack = padded.reshape(2 * leaves, height, n)
    launch = qr_small_launch(a.shape, complete=False, height=height)
    ragged = emulate.run("qr_small", [a], **launch)
    expected = emulate.run("qr_small", [stack], **qr_small_launch(stack.shape, complete=False))
    for x, y in zip(ragged, expected, strict=True):
        np.testing.assert_array_equal(x, y)


def test_qr_groups_shrink_for_large_stacks():
    """One simdgroup per column up to 16 for a few matrices; halved while the stack exceeds
    QR_SIMDGROUPS simdgroups, down to an eighth of the columns (H200 measurements)."""
    assert qr_groups(100, 32, 32) == 16
    assert qr_groups(100, 5, 5) == 5
    assert qr_groups(500, 32, 32) == 8
    assert qr_groups(10000, 32, 32) == 4
    assert qr_groups(10000, 64, 64) == 8
    assert qr_groups(10000, 8, 8) == 1
    assert qr_groups(10000, 32, 128) == 16  # complete Q of 128 rows: 128 columns


# --- the register Jacobi kernels (jacobi_eigh_simd, jacobi_svd_simd) under emulation ------

SIMD_EIGH_RATIO = 60  # DESIGN.md's eigh threshold, in units of n·u
U32 = 2.0**-24


def _eigh_simd_inputs(n, seed):
    """Gaussian, garbage (Inf, NaN, 1e30) above the diagonal, an Inf in the lower triangle,
    zeros, graded (entries 1e-20..1e20 by row and column scaling), clustered eigenvalues."""
    rng = np.random.default_rng(seed)
    gauss = rng.standard_normal((n, n))
    garbage = np.tril(rng.standard_normal((n, n))) + np.triu(np.full((n, n), 1e30), 1)
    garbage[np.triu_indices(n, 1)] = np.resize([np.inf, np.nan, 1e30, -np.inf], n * (n - 1) // 2)
    with_inf = rng.standard_normal((n, n))
    with_inf[n - 1, 0] = np.inf
    d = np.logspace(-10, 10, n)
    graded = symmetric_from_lower(rng.standard_normal((n, n))) * d[:, None] * d[None, :]
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.repeat([-1.0, 1e-6, 2.0], [n // 4, n // 2, n - n // 4 - n // 2])
    clustered = (q * lam) @ q.T
    a = np.stack([gauss, garbage, with_inf, np.zeros((n, n)), graded, clustered])
    return a.astype(np.float32), [True, True, False, True, True, True]


@needs_emulation
@pytest.mark.parametrize("n", [1, 2, 5, 17, 32])
def test_emulated_eigh_simd_matches_reference_and_lapack(n):
    a, finite = _eigh_simd_inputs(n, seed=n)
    batch = a.shape[0]
    template = {"N": n, "NP": simd_columns(n), "WANT_V": True, "MAX_SWEEPS": 30}
    w, v, info = _launch("jacobi_eigh_simd", [a], template, 32, [(batch, n), (batch, n, n),
                                                                 (batch,)])
    w_ref, v_ref, info_ref = spectral_ref.jacobi_eigh_simd(mx.array(a), want_v=True,
                                                           max_sweeps=30)
    assert np.all(np.isnan(w[~np.array(finite)])) and np.all(np.isnan(v[~np.array(finite)]))
    np.testing.assert_array_equal(np.isnan(w), np.isnan(np.asarray(w_ref)))
    assert np.all(np.abs(info - np.asarray(info_ref)) <= 1)
    assert np.all(info[finite] > 0) and info[2] == 0
    (values,) = _launch(
        "jacobi_eigh_simd", [a], {**template, "WANT_V": False}, 32, [(batch, n), (1,), (batch,)]
    )[:1]
    for k in np.flatnonzero(finite):
        sym = symmetric_from_lower(a[k]).astype(np.float64)
        norm = max(np.linalg.norm(sym), np.finfo(np.float64).tiny)
        wk, vk = w[k].astype(np.float64), v[k].astype(np.float64)
        assert np.all(np.diff(wk) >= 0)
        resid = np.linalg.norm(sym @ vk - vk * wk) / (n * norm * U32)
        orth = np.linalg.norm(np.eye(n) - vk.T @ vk) / (n * U32)
        assert max(resid, orth) <= SIMD_EIGH_RATIO, (k, resid, orth)
        exact = np.linalg.eigvalsh(sym)
        tol = SIMD_EIGH_RATIO * n * U32 * norm
        assert np.abs(wk - exact).max() <= tol, k
        assert np.abs(values[k] - exact).max() <= tol, k
        np.testing.assert_allclose(wk, np.asarray(w_ref)[k], rtol=0, atol=tol)


SIMD_SVD_RATIO = 50  # DESIGN.md's SVD threshold, in units of max(m, n)·u


def _svd_simd_inputs(m, n, seed):
    """Gaussian, an Inf, zeros, graded (entries 1e-20..1e20 by row and column scaling),
    a zero column (rank-deficient: U is completed)."""
    rng = np.random.default_rng(seed)
    gauss = rng.standard_normal((m, n))
    with_inf = rng.standard_normal((m, n))
    with_inf[m - 1, 0] = -np.inf
    graded = (rng.standard_normal((m, n)) * np.logspace(-10, 10, m)[:, None]
              * np.logspace(10, -10, n)[None, :])
    zero_col = rng.standard_normal((m, n))
    zero_col[:, n // 2] = 0
    a = np.stack([gauss, with_inf, np.zeros((m, n)), graded, zero_col])
    return a.astype(np.float32), np.array([True, False, True, True, True])


def _svd_simd_launch(a, full, want_uv):
    batch, rows, cols = a.shape
    m, n = max(rows, cols), min(rows, cols)
    wide = rows < cols
    uc = m if full else n
    shapes = ([(batch, rows, rows if wide else uc), (batch, n), (batch, uc if wide else n, cols)]
              if want_uv else [(1,), (batch, n), (1,)])
    template = {"M": m, "N": n, "NP": simd_columns(n), "FULL": full, "WANT_UV": want_uv,
                "WIDE": wide, "MAX_SWEEPS": 30}
    return _launch("jacobi_svd_simd", [a], template, 32, [*shapes, (batch,)])


@needs_emulation
@pytest.mark.parametrize(
    "m, n, full",
    [(1, 1, True), (5, 3, False), (3, 5, True), (17, 17, False), (32, 20, True), (20, 32, False),
     (32, 32, True)],
)
def test_emulated_svd_simd_matches_reference_and_lapack(m, n, full):
    a, finite = _svd_simd_inputs(m, n, seed=m * 33 + n)
    u, s, vh, info = _svd_simd_launch(a, full, want_uv=True)
    u_ref, s_ref, vh_ref, info_ref = spectral_ref.jacobi_svd_simd(
        mx.array(a), full=full, want_uv=True, max_sweeps=30
    )
    assert u.shape == tuple(u_ref.shape) and vh.shape == tuple(vh_ref.shape)
    assert u.shape[-2:] == ((m, m) if full else (m, min(m, n)))
    assert vh.shape[-2:] == ((n, n) if full else (min(m, n), n))
    for out in (u, s, vh):
        assert np.all(np.isnan(out[~finite])) and not np.any(np.isnan(out[finite]))
    assert np.all(info[finite] > 0) and np.all(info[~finite] == 0)
    assert np.all(np.abs(info - np.asarray(info_ref)) <= 1)
    _, s_only, _, _ = _svd_simd_launch(a, full=False, want_uv=False)
    k, big = min(m, n), max(m, n)
    for b in np.flatnonzero(finite):
        ab = a[b].astype(np.float64)
        ub, sb, vb = (x[b].astype(np.float64) for x in (u, s, vh))
        norm = max(np.linalg.norm(ab), np.finfo(np.float64).tiny)
        assert np.all(sb >= 0) and np.all(np.diff(sb) <= 0)
        resid = np.linalg.norm(ab - (ub[:, :k] * sb) @ vb[:k]) / (big * norm * U32)
        orth_u = np.linalg.norm(np.eye(ub.shape[1]) - ub.T @ ub) / (m * U32)
        orth_v = np.linalg.norm(np.eye(vb.shape[0]) - vb @ vb.T) / (n * U32)
        assert max(resid, orth_u, orth_v) <= SIMD_SVD_RATIO, (b, resid, orth_u, orth_v)
        exact = np.linalg.svd(ab, compute_uv=False)
        tol = SIMD_SVD_RATIO * big * U32 * norm
        assert np.abs(sb - exact).max() <= tol, b
        assert np.abs(s_only[b] - exact).max() <= tol, b
        np.testing.assert_allclose(sb, np.asarray(s_ref)[b], rtol=0, atol=tol)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 17, 32])
def test_simd_circle_ordering_pairs_every_two_columns_once(n):
    """The register kernels' ordering (jacobi_simd.h, mirrored by _circle_rounds): a sweep
    of NP - 1 rounds of disjoint pairs meets every pair of the n columns exactly once."""
    rounds = spectral_ref._circle_rounds(n)
    assert len(rounds) == simd_columns(n) - 1
    met = []
    for ps, qs in rounds:
        assert len(set(ps) | set(qs)) == 2 * len(ps)
        met += [frozenset(pq) for pq in zip(ps, qs, strict=True)]
    assert sorted(map(sorted, met)) == sorted([i, j] for i in range(n) for j in range(i + 1, n))
