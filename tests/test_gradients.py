"""Gradients of every mlx_linalg function (issue #9).

Every op is checked against central finite differences in float64 on the CPU, on random and
structured inputs: the directional derivative ``⟨∇f, D⟩`` along random directions D must
match ``(f(x + εD) − f(x − εD)) / 2ε``. Losses use sign-invariant functions of eigen and
singular vectors. Also: batched inputs, ``mx.vmap`` (both orders with ``mx.grad``),
``mx.compile``, ``mx.jvp``, ``mx.value_and_grad``, complex64, repeated eigenvalues and
singular values, failures, and (marked ``gpu``) float32 GPU gradients against float64 CPU
ones. The Gaussian-process example of ``docs/gradients.md`` runs here too.
"""

import functools
import math

import mlx.core as mx
import numpy as np
import pytest
import tool_scripts

import mlx_linalg as la

F64 = mx.float64
EPS = 1e-6  # finite-difference step in float64
FD_RTOL = 1e-6  # Richardson-extrapolated central differences in float64: ~ε⁴ + u/ε
COMPLEX_EPS = 1e-3
COMPLEX_RTOL = 2e-2  # complex64 finite differences carry float32 rounding, ~u/ε
GPU_RTOL = 2e-3  # float32 GPU gradient vs float64 CPU gradient, well-conditioned inputs
INF = float("inf")


# --------------------------------------------------------------------------- inputs


def _rng(seed=0):
    return np.random.default_rng(20261125 + seed)


def _gauss(shape, seed=0):
    return _rng(seed).standard_normal(shape)


def _conditioned(shape, cond, seed=0):
    u, _, vh = np.linalg.svd(_gauss(shape, seed), full_matrices=False)
    return (u * np.logspace(0, -np.log10(cond), min(shape[-2:]))[..., None, :]) @ vh


def _spd(n, cond=10.0, seed=0):
    q, _ = np.linalg.qr(_gauss((n, n), seed))
    return (q * np.logspace(0, -np.log10(cond), n)) @ q.T


def _sym(n, seed=0):
    a = _gauss((n, n), seed)
    return (a + a.T) / 2


def _upper(n, seed=0):
    return np.triu(_gauss((n, n), seed)) + 3 * np.eye(n)


def _orthogonal(n, seed=0):
    return np.linalg.qr(_gauss((n, n), seed))[0]


def _weights(shape, seed=7):
    return mx.array(_gauss(shape, seed), dtype=F64)


def _sym_part(x):
    return (x + mx.swapaxes(x, -1, -2)) / 2


def _ct(x):
    return mx.conj(mx.swapaxes(x, -1, -2))


# ---------------------------------------------------------------- finite differences


def _check_fd(loss, x: np.ndarray, *, seed=1, directions=2):
    """``⟨∇loss(x), D⟩`` against central differences along random directions D."""
    xm = mx.array(x, dtype=F64)
    grad = np.asarray(mx.grad(loss)(xm))
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert np.isfinite(grad).all()
    rng = _rng(seed)
    for _ in range(directions):
        d = rng.standard_normal(x.shape)
        numeric = _richardson(loss, x, d)
        analytic = float(np.sum(grad * d))
        scale = max(1.0, abs(numeric), abs(loss(xm).item()) * 1e-3)
        assert abs(numeric - analytic) <= FD_RTOL * scale, (numeric, analytic)


def _central(loss, x, d, h):
    plus = loss(mx.array(x + h * d, dtype=F64)).item()
    minus = loss(mx.array(x - h * d, dtype=F64)).item()
    return (plus - minus) / (2 * h)


def _richardson(loss, x, d):
    """Central differences at steps ε and ε/2, extrapolated: error O(ε⁴) + O(u/ε)."""
    return (4 * _central(loss, x, d, EPS / 2) - _central(loss, x, d, EPS)) / 3


def _svd_loss(full_matrices=False):
    def loss(x):
        u, s, vh = la.svd(x, full_matrices=full_matrices)
        k = s.shape[-1]
        return ((u[..., :, :k] * s[..., None, :]) ** 2).sum() + (vh**4).sum() + (s**3).sum()

    return loss


def _eigh_loss(x):
    w, v = la.eigh(_sym_part(x))
    return ((v**2) * _weights(v.shape)).sum() + (w * mx.arange(w.shape[-1])).sum()


def _lstsq_loss(b):
    bm = mx.array(b, dtype=F64)

    def loss(x):
        result = la.lstsq(x, bm)
        return (result.solution**2).sum() + result.residuals.sum() + result.s.sum()

    return loss


B4 = _gauss((4, 2), seed=11)
B4M = mx.array(B4, dtype=F64)
W4 = _weights((4, 4))

# (id, loss, input): every public function with a gradient, on random and structured inputs.
CASES = [
    ("cholesky", lambda x: (la.cholesky(_sym_part(x)) * W4).sum(), _spd(4)),
    ("cholesky-upper", lambda x: (la.cholesky(_sym_part(x), upper=True) ** 2 * W4).sum(), _spd(4)),
    ("cholesky-illcond", lambda x: (la.cholesky(_sym_part(x)) * W4).sum(), _spd(4, 1e4)),
    (
        "cholesky-diagonal",
        lambda x: (la.cholesky(_sym_part(x)) * W4).sum(),
        np.diag([1.0, 2.0, 3.0, 4.0]),
    ),
    ("cho_factor", lambda x: (la.cho_factor(_sym_part(x)).c * W4).sum(), _spd(4)),
    ("qr-square", lambda x: (la.qr(x).R ** 2 * W4).sum() + (la.qr(x).Q * W4).sum(), _gauss((4, 4))),
    (
        "qr-tall",
        lambda x: (la.qr(x).R ** 3).sum() + (la.qr(x).Q ** 2 * _weights((6, 3))).sum(),
        _gauss((6, 3)),
    ),
    ("qr-wide", lambda x: (la.qr(x).R * _weights((3, 6))).sum() + la.qr(x).Q.sum(), _gauss((3, 6))),
    (
        "qr-wide-complete",
        lambda x: (la.qr(x, mode="complete").R ** 2).sum() + la.qr(x, mode="complete").Q.sum(),
        _gauss((3, 5)),
    ),
    (
        "qr-graded-columns",
        lambda x: (la.qr(x).Q * W4).sum() + la.qr(x).R.sum(),
        _gauss((4, 4)) * np.logspace(0, -4, 4),
    ),
    ("qr-orthogonal", lambda x: (la.qr(x).Q * W4).sum() + (la.qr(x).R * W4).sum(), _orthogonal(4)),
    ("eigh", _eigh_loss, _sym(4)),
    ("eigh-diagonal", _eigh_loss, np.diag([1.0, 2.0, 4.0, 8.0])),
    ("eigvalsh", lambda x: (la.eigvalsh(_sym_part(x)) ** 3).sum(), _sym(5)),
    ("eigvalsh-spd", lambda x: mx.log(la.eigvalsh(_sym_part(x))).sum(), _spd(4, 100)),
    ("svd-square", _svd_loss(), _gauss((4, 4))),
    ("svd-tall", _svd_loss(), _gauss((6, 3))),
    ("svd-wide", _svd_loss(), _gauss((3, 6))),
    ("svd-full-square", _svd_loss(True), _gauss((4, 4))),
    ("svd-illcond", _svd_loss(), _conditioned((5, 4), 1e3)),
    ("svdvals-tall", lambda x: (la.svdvals(x) ** 3).sum(), _gauss((6, 3))),
    ("svdvals-wide", lambda x: (la.svdvals(x) * mx.arange(3)).sum(), _gauss((3, 6))),
    ("solve", lambda x: (la.solve(x, B4M) ** 2).sum(), _gauss((4, 4))),
    ("solve-rhs", lambda b: (la.solve(mx.array(_gauss((4, 4)), dtype=F64), b) ** 2).sum(), B4),
    ("solve-vector", lambda x: (la.solve(x, B4M[:, 0]) ** 2).sum(), _gauss((4, 4))),
    ("solve-illcond", lambda x: (la.solve(x, B4M) * B4M).sum(), _conditioned((4, 4), 1e3)),
    ("inv", lambda x: (la.inv(x) * W4).sum(), _gauss((4, 4))),
    ("inv-spd", lambda x: (la.inv(x) ** 2).sum(), _spd(4, 100)),
    ("det", la.det, _gauss((4, 4))),
    ("det-triangular", la.det, _upper(4)),
    ("det-singular", la.det, np.outer([1.0, 2.0, 3.0], [1.0, 0.5, 2.0]) + np.diag([0, 0, 1.0])),
    ("slogdet", lambda x: la.slogdet(x).logabsdet, _gauss((4, 4))),
    (
        "slogdet-negative",
        lambda x: la.slogdet(x).logabsdet * la.slogdet(x).sign,
        _orthogonal(4) @ np.diag([1.0, 2.0, 3.0, -4.0]),
    ),
    ("matrix_power-3", lambda x: (la.matrix_power(x, 3) * W4).sum(), _gauss((4, 4))),
    (
        "matrix_power-neg2",
        lambda x: (la.matrix_power(x, -2) * W4).sum(),
        _gauss((4, 4)) + 4 * np.eye(4),
    ),
    ("pinv-tall", lambda x: (la.pinv(x) ** 2).sum(), _gauss((5, 3))),
    ("pinv-wide", lambda x: (la.pinv(x) * _weights((5, 3))).sum(), _gauss((3, 5))),
    (
        "polar-right",
        lambda x: (la.polar(x).u * _weights((5, 3))).sum() + (la.polar(x).p ** 2).sum(),
        _gauss((5, 3)),
    ),
    (
        "polar-left",
        lambda x: (la.polar(x, "left").p * _weights((3, 3))).sum() + la.polar(x, "left").u.sum(),
        _gauss((3, 5)),
    ),
    ("lstsq-tall", _lstsq_loss(_gauss((6, 2), 3)), _gauss((6, 3))),
    ("lstsq-square", _lstsq_loss(_gauss((4, 2), 3)), _gauss((4, 4))),
    ("lstsq-wide", _lstsq_loss(_gauss((3, 2), 3)), _gauss((3, 5))),
    (
        "lstsq-rhs",
        lambda b: (la.lstsq(mx.array(_gauss((6, 3)), dtype=F64), b).solution ** 2).sum(),
        _gauss((6, 2)),
    ),
    ("lstsq-illcond", _lstsq_loss(_gauss((6, 2), 3)), _conditioned((6, 3), 1e3)),
    ("cond", la.cond, _gauss((4, 4))),
    ("cond-fro", lambda x: la.cond(x, "fro"), _gauss((4, 4))),
    ("vector_norm-2", lambda x: la.vector_norm(x), _gauss((3, 4))),
    ("vector_norm-3-axis", lambda x: la.vector_norm(x, ord=3, axis=0).sum(), _gauss((3, 4))),
    ("vector_norm-inf", lambda x: la.vector_norm(x, ord=INF), _gauss((3, 4))),
]
for _ord in ("fro", "nuc", 2, -2, 1, -1, INF, -INF):
    CASES.append(
        (f"matrix_norm-{_ord}", lambda x, o=_ord: la.matrix_norm(x, ord=o), _gauss((5, 3)))
    )
for _trans in (0, 1, 2):
    for _lower in (True, False):
        for _unit in (False, True):
            CASES.append(
                (
                    f"solve_triangular-t{_trans}-{'lower' if _lower else 'upper'}"
                    f"{'-unit' if _unit else ''}",
                    lambda x, t=_trans, lo=_lower, un=_unit: (
                        la.solve_triangular(x, B4M, trans=t, lower=lo, unit_diagonal=un) ** 2
                    ).sum(),
                    _upper(4).T if _lower else _upper(4),
                )
            )
    CASES.append(
        (
            f"lu_solve-t{_trans}",
            lambda x, t=_trans: (la.lu_solve(la.lu_factor(x), B4M, trans=t) ** 2).sum(),
            _gauss((4, 4)),
        )
    )
CASES += [
    (
        "solve_triangular-rhs",
        lambda b: (la.solve_triangular(mx.array(_upper(4), dtype=F64), b) ** 2).sum(),
        B4,
    ),
    (
        "cho_solve-lower",
        lambda c: (la.cho_solve((c, True), B4M) ** 2).sum(),
        np.linalg.cholesky(_spd(4)),
    ),
    (
        "cho_solve-upper",
        lambda c: (la.cho_solve((c, False), B4M) * B4M).sum(),
        np.linalg.cholesky(_spd(4)).T,
    ),
    (
        "cho_solve-rhs",
        lambda b: (
            la.cho_solve((mx.array(np.linalg.cholesky(_spd(4)), dtype=F64), True), b) ** 2
        ).sum(),
        B4,
    ),
    (
        "lu_solve-rhs",
        lambda b: (la.lu_solve(la.lu_factor(mx.array(_gauss((4, 4)), dtype=F64)), b) ** 2).sum(),
        B4,
    ),
    ("lu", lambda x: (la.lu(x).L * W4).sum() + (la.lu(x).U ** 2).sum(), _gauss((4, 4))),
    ("lu_factor", lambda x: (la.lu_factor(x).lu * W4).sum(), _gauss((4, 4))),
]


@pytest.mark.parametrize(("loss", "x"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(loss, x):
    _check_fd(loss, x)


# ------------------------------------------------------------------- transformations

# (id, per-matrix loss, batch of inputs (2, 3, ...)) for batching, vmap, compile and jvp.
BATCHED = [
    (
        "cholesky",
        lambda x: (la.cholesky(_sym_part(x)) ** 2).sum(axis=(-2, -1)),
        np.stack([[_spd(3, seed=3 * i + j) for j in range(3)] for i in range(2)]),
    ),
    ("qr", lambda x: (la.qr(x).R ** 2).sum(axis=(-2, -1)), _gauss((2, 3, 4, 3))),
    (
        "eigh",
        lambda x: (la.eigh(_sym_part(x)).eigenvectors ** 4).sum(axis=(-2, -1)),
        _gauss((2, 3, 3, 3)),
    ),
    (
        "svd",
        lambda x: (
            (la.svd(x, full_matrices=False).U ** 4).sum(axis=(-2, -1)) + la.svdvals(x).sum(axis=-1)
        ),
        _gauss((2, 3, 4, 3)),
    ),
    (
        "solve",
        lambda x: (la.solve(x, mx.ones((3, 2), dtype=x.dtype)) ** 2).sum(axis=(-2, -1)),
        _gauss((2, 3, 3, 3)),
    ),
    ("slogdet", lambda x: la.slogdet(x).logabsdet + la.det(x), _gauss((2, 3, 3, 3))),
    (
        "lstsq",
        lambda x: (la.lstsq(x, mx.ones((4, 1), dtype=x.dtype)).solution ** 2).sum(axis=(-2, -1)),
        _gauss((2, 3, 4, 3)),
    ),
    (
        "lu_solve",
        lambda x: (la.lu_solve(la.lu_factor(x), mx.ones((3, 1), dtype=x.dtype), trans=1) ** 2).sum(
            axis=(-2, -1)
        ),
        _gauss((2, 3, 3, 3)),
    ),
    (
        "cho_solve",
        lambda x: (
            la.cho_solve(la.cho_factor(_sym_part(x), lower=True), mx.ones((3, 1), dtype=x.dtype))
            ** 2
        ).sum(axis=(-2, -1)),
        np.stack([[_spd(3, seed=3 * i + j) for j in range(3)] for i in range(2)]),
    ),
    ("inv", lambda x: (la.inv(x) ** 2).sum(axis=(-2, -1)), _gauss((2, 3, 3, 3))),
    ("pinv", lambda x: (la.pinv(x) ** 2).sum(axis=(-2, -1)), _gauss((2, 3, 4, 3))),
]
BATCHED_IDS = [c[0] for c in BATCHED]


def _per_matrix_grads(loss, x):
    return np.stack(
        [np.stack([np.asarray(mx.grad(loss)(mx.array(m, dtype=F64))) for m in row]) for row in x]
    )


@pytest.mark.parametrize(("loss", "x"), [c[1:] for c in BATCHED], ids=BATCHED_IDS)
def test_batched_gradient_equals_loop_over_the_batch(loss, x):
    batched = np.asarray(mx.grad(lambda a: loss(a).sum())(mx.array(x, dtype=F64)))
    np.testing.assert_allclose(batched, _per_matrix_grads(loss, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("loss", "x"), [c[1:] for c in BATCHED], ids=BATCHED_IDS)
def test_vmap(loss, x):
    xm = mx.array(x[0], dtype=F64)
    expected_values = np.asarray(loss(xm))
    np.testing.assert_allclose(
        np.asarray(mx.vmap(loss)(xm)), expected_values, rtol=1e-10, atol=1e-12
    )
    expected = _per_matrix_grads(loss, x[:1])[0]
    np.testing.assert_allclose(
        np.asarray(mx.vmap(mx.grad(loss))(xm)), expected, rtol=1e-10, atol=1e-12
    )
    grad_of_vmap = mx.grad(lambda a: mx.vmap(loss)(a).sum())(xm)
    np.testing.assert_allclose(np.asarray(grad_of_vmap), expected, rtol=1e-10, atol=1e-12)


def test_vmap_over_a_nonleading_axis_and_an_unmapped_operand():
    a = mx.array(_gauss((3, 3)) + 3 * np.eye(3), dtype=F64)
    b = mx.array(_gauss((3, 5, 2)), dtype=F64)  # vmapped along axis 1
    x = mx.vmap(lambda rhs: la.solve(a, rhs), in_axes=1)(b)
    expected = np.linalg.solve(np.asarray(a), np.moveaxis(np.asarray(b), 1, 0))
    np.testing.assert_allclose(np.asarray(x), expected, rtol=1e-12)


@pytest.mark.parametrize(("loss", "x"), [c[1:] for c in BATCHED], ids=BATCHED_IDS)
def test_compile_forward_and_gradient(loss, x):
    xm = mx.array(x, dtype=F64)
    np.testing.assert_allclose(
        np.asarray(mx.compile(loss)(xm)), np.asarray(loss(xm)), rtol=1e-9, atol=1e-12
    )
    grad = mx.grad(lambda a: loss(a).sum())
    np.testing.assert_allclose(
        np.asarray(mx.compile(grad)(xm)), np.asarray(grad(xm)), rtol=1e-8, atol=1e-10
    )


@pytest.mark.parametrize("mode", ["reduced", "complete"])
@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (2, 4, 4), (40, 2)])
def test_compiled_qr_is_lapacks(mode, shape):
    """The lazy CPU form traced by mx.compile: LAPACK's Q and R (geqrf/orgqr conventions),
    reduced Q built with M x K columns only."""
    a = _gauss(shape)
    q, r = mx.compile(lambda y: tuple(la.qr(y, mode=mode)))(mx.array(a, dtype=F64))
    expected_q, expected_r = np.linalg.qr(a, mode=mode)
    np.testing.assert_allclose(np.asarray(q), expected_q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(r), expected_r, rtol=0, atol=1e-12)


def test_compile_float32_matches_the_eager_path():
    x = mx.array(_spd(4), dtype=mx.float32)
    loss = mx.value_and_grad(lambda a: mx.log(mx.abs(la.cholesky(a))).sum())
    (value, grad), (eager_value, eager_grad) = mx.compile(loss)(x), loss(x)
    np.testing.assert_allclose(value.item(), eager_value.item(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(eager_grad), rtol=1e-4, atol=1e-5)


JVP_CASES = [
    ("cholesky", la.cholesky, _spd(4)),
    ("inv", la.inv, _gauss((4, 4))),
    ("eigvalsh", la.eigvalsh, _sym(4)),
    ("svdvals", la.svdvals, _gauss((5, 3))),
    ("det", la.det, _gauss((3, 3))),
    ("qr", lambda x: la.qr(x).R, _gauss((5, 3))),
    ("solve", lambda x: la.solve(x, B4M), _gauss((4, 4))),
]


@pytest.mark.parametrize(("fn", "x"), [c[1:] for c in JVP_CASES], ids=[c[0] for c in JVP_CASES])
def test_jvp_matches_finite_differences(fn, x):
    t = _gauss(x.shape, seed=5)
    t = (t + t.T) / 2 if x.shape[-1] == x.shape[-2] and fn in (la.cholesky, la.eigvalsh) else t
    xm, tm = mx.array(x, dtype=F64), mx.array(t, dtype=F64)
    _, (tangent,) = mx.jvp(fn, [xm], [tm])
    numeric = (np.asarray(fn(xm + EPS * tm)) - np.asarray(fn(xm - EPS * tm))) / (2 * EPS)
    np.testing.assert_allclose(np.asarray(tangent), numeric, rtol=1e-6, atol=1e-7)


def test_value_and_grad_and_argnums():
    a, b = mx.array(_spd(4), dtype=F64), B4M

    def loss(a, b):
        return (la.cho_solve(la.cho_factor(a), b) * b).sum()

    value, (ga, gb) = mx.value_and_grad(loss, argnums=(0, 1))(a, b)
    a_np = np.asarray(a)
    x = np.linalg.solve(a_np, B4)
    np.testing.assert_allclose(value.item(), float((x * B4).sum()), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(gb), 2 * x, rtol=1e-10)  # d bᵀA⁻¹b/db = 2A⁻¹b
    # cholesky is differentiated as a function of a symmetric matrix: ∂/∂A = −A⁻¹bbᵀA⁻¹.
    np.testing.assert_allclose(np.asarray(ga), -x @ x.T, rtol=1e-9, atol=1e-12)


def test_gradient_dtype_follows_the_input():
    for dtype in (mx.float16, mx.bfloat16, mx.float32):
        g = mx.grad(lambda a: la.slogdet(a).logabsdet)(mx.eye(3, dtype=dtype) * 2)
        assert g.dtype == dtype
        np.testing.assert_allclose(np.asarray(g.astype(mx.float32)), np.eye(3) / 2, rtol=1e-2)


def test_explicit_cpu_stream():
    x = mx.array(_spd(3), dtype=F64)
    g = mx.grad(lambda a: la.slogdet(la.cholesky(a, stream=mx.cpu), stream=mx.cpu).logabsdet)(x)
    # log det L = ½ log det A, so the symmetrized gradient is ½ A⁻¹.
    np.testing.assert_allclose(np.asarray(g), np.linalg.inv(np.asarray(x)) / 2, rtol=1e-10)


# ---------------------------------------------------- ties, failures, unsupported cases


def test_eigvalsh_and_svdvals_gradients_are_exact_at_repeated_values():
    q = _orthogonal(5, seed=4)
    a = q @ np.diag([1.0, 1.0, 1.0, 2.0, -2.0]) @ q.T  # eigenvalue 1 three times, |±2| tied
    x = mx.array(a, dtype=F64)
    # Σλ² = Σσ² = ‖A‖²_F, whose gradient is 2A whatever the multiplicities.
    g_eig = mx.grad(lambda m: (la.eigvalsh(m) ** 2).sum())(x)
    g_svd = mx.grad(lambda m: (la.svdvals(m) ** 2).sum())(x)
    np.testing.assert_allclose(np.asarray(g_eig), 2 * a, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g_svd), 2 * a, atol=1e-12)
    g_nuc = mx.grad(lambda m: la.matrix_norm(m, ord="nuc"))(mx.array(np.eye(4), dtype=F64))
    np.testing.assert_allclose(np.asarray(g_nuc), np.eye(4), atol=1e-15)


def test_unused_eigenvectors_do_not_spoil_gradients_at_exact_ties():
    x = mx.eye(4, dtype=F64) * 3
    g = mx.grad(lambda m: la.eigh(m).eigenvalues.sum() + la.svd(m).S.sum())(x)
    np.testing.assert_allclose(np.asarray(g), 2 * np.eye(4), atol=1e-15)


def test_eigenvector_gradient_at_an_exact_tie_is_not_silently_finite():
    x = mx.eye(3, dtype=F64)
    g = mx.grad(lambda m: (la.eigh(m).eigenvectors * _weights((3, 3))).sum())(x)
    assert not np.isfinite(np.asarray(g)).all()


def test_rank_deficient_nuclear_norm_and_singular_det_are_finite():
    a = np.outer([1.0, 2.0, 3.0], [1.0, 0.0, 1.0])
    g = np.asarray(mx.grad(lambda m: la.matrix_norm(m, ord="nuc"))(mx.array(a, dtype=F64)))
    assert np.isfinite(g).all()
    u, _, vh = np.linalg.svd(a)
    np.testing.assert_allclose(u[:, :1].T @ g @ vh[:1].T, [[1.0]], atol=1e-12)
    g_det = mx.grad(la.det)(mx.array([[1.0, 2.0], [2.0, 4.0]], dtype=F64))
    np.testing.assert_allclose(np.asarray(g_det), [[4.0, -2.0], [-2.0, 1.0]], atol=1e-12)


def test_failed_cholesky_gives_nan_gradient():
    x = mx.array([[1.0, 2.0], [2.0, 1.0]], dtype=F64)  # indefinite
    g = mx.grad(lambda m: la.cholesky(m).sum())(x)
    assert np.isnan(np.asarray(g)).all()


def test_failure_in_a_batch_stays_in_its_entry():
    x = np.stack([_spd(3), -np.eye(3), _spd(3, seed=2)])
    g = np.asarray(mx.grad(lambda m: la.cholesky(m).sum())(mx.array(x, dtype=F64)))
    assert np.isnan(g[1]).all() and np.isfinite(g[[0, 2]]).all()


def test_complete_qr_of_a_tall_matrix_has_no_gradient():
    with pytest.raises(ValueError, match=r"\[mlx_linalg.qr\] the gradient of mode='complete'"):
        mx.grad(lambda m: la.qr(m, mode="complete").R.sum())(mx.ones((4, 2)))


def test_eig_gradient_raises_clearly():
    with pytest.raises(NotImplementedError, match=r"\[mlx_linalg.eigvals\] gradients"):
        mx.grad(lambda m: mx.real(la.eigvals(m)).sum())(mx.array(_gauss((3, 3))))


def test_complex_inputs_cannot_be_traced_on_the_cpu_path():
    x = mx.array(_gauss((3, 3)) + 3j * np.eye(3), dtype=mx.complex64)
    with pytest.raises(ValueError, match=r"\[mlx_linalg.inv\] complex64 inputs cannot be"):
        mx.eval(mx.compile(la.inv)(x))


# ------------------------------------------------------------------------------ complex


def _cplx(shape, seed=0):
    return _gauss(shape, seed) + 1j * _gauss(shape, seed + 100)


def _hpd(n, seed=0):
    a = _cplx((n, n), seed)
    return a @ a.conj().T / n + np.eye(n)


def _abs2(z):
    return mx.real(z * mx.conj(z))


def _herm(x):
    return (x + _ct(x)) / 2


CB = mx.array(_cplx((4, 2), 9), dtype=mx.complex64)
CW4 = mx.array(np.arange(16.0).reshape(4, 4) / 16, dtype=mx.float32)


def _projector_loss(x):
    w, v = la.eigh(_herm(x))
    return (_abs2(v[:, :2] @ _ct(v[:, :2])) * CW4).sum() + (w**2).sum()


def _polar_loss(x):
    return (_abs2(la.polar(x).u) * mx.arange(15.0).reshape(5, 3)).sum()


COMPLEX_CASES = [
    ("cholesky", lambda x: (_abs2(la.cholesky(_herm(x))) * CW4).sum(), _hpd(4)),
    ("qr", lambda x: (_abs2(la.qr(x).R) * mx.arange(9.0).reshape(3, 3)).sum(), _cplx((5, 3))),
    ("eigh-projector", _projector_loss, _hpd(4)),
    ("eigvalsh", lambda x: (la.eigvalsh(_herm(x)) ** 3).sum(), _hpd(4)),
    ("svdvals", lambda x: (la.svdvals(x) ** 3).sum(), _cplx((5, 3))),
    ("polar", _polar_loss, _cplx((5, 3))),
    ("solve", lambda x: _abs2(la.solve(x, CB)).sum(), _cplx((4, 4))),
    ("inv", lambda x: _abs2(la.inv(x)).sum(), _cplx((4, 4))),
    ("det", lambda x: mx.real(la.det(x)) + 2 * mx.imag(la.det(x)), _cplx((3, 3))),
    ("slogdet", lambda x: la.slogdet(x).logabsdet + 3 * mx.imag(la.slogdet(x).sign), _cplx((4, 4))),
    (
        "solve_triangular-t1",
        lambda x: _abs2(la.solve_triangular(x, CB, trans=1, lower=True)).sum(),
        _hpd(4),
    ),
    (
        "lu_solve-t2",
        lambda x: _abs2(la.lu_solve(la.lu_factor(x), CB, trans=2)).sum(),
        _cplx((4, 4)),
    ),
    ("cho_solve", lambda c: _abs2(la.cho_solve((c, True), CB)).sum(), np.linalg.cholesky(_hpd(4))),
    (
        "lstsq",
        lambda x: _abs2(la.lstsq(x, mx.array(_cplx((5, 2), 3), dtype=mx.complex64)).solution).sum(),
        _cplx((5, 3)),
    ),
]


@pytest.mark.parametrize(
    ("loss", "x"), [c[1:] for c in COMPLEX_CASES], ids=[c[0] for c in COMPLEX_CASES]
)
def test_complex64_gradient_matches_finite_differences(loss, x):
    xm = mx.array(x, dtype=mx.complex64)
    grad = np.asarray(mx.grad(loss)(xm)).astype(np.complex128)
    rng = _rng(2)
    d = rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape)
    plus = loss(mx.array(x + COMPLEX_EPS * d, dtype=mx.complex64)).item()
    minus = loss(mx.array(x - COMPLEX_EPS * d, dtype=mx.complex64)).item()
    numeric = (plus - minus) / (2 * COMPLEX_EPS)
    analytic = float(np.real(np.vdot(grad, d)))  # dL = Re⟨Z̄, dZ⟩
    assert abs(numeric - analytic) <= COMPLEX_RTOL * max(1.0, abs(numeric)), (numeric, analytic)


# ------------------------------------------------- implementations plugged in later


def _lazy_implementations(monkeypatch):
    """Route every op to a lazy MLX-graph implementation, as GPU rules will be."""
    from mlx_linalg import _autodiff_traced, _dispatch

    def implementation(op, stream, *arrays, **keywords):
        return functools.partial(_autodiff_traced.run, op)

    monkeypatch.setattr(_dispatch, "implementation", implementation)


@pytest.mark.parametrize(("loss", "x"), [c[1:] for c in BATCHED], ids=BATCHED_IDS)
def test_a_lazy_implementation_gets_the_same_gradients(monkeypatch, loss, x):
    xm = mx.array(x, dtype=F64)
    grad = mx.grad(lambda a: loss(a).sum())
    expected = np.asarray(grad(xm))
    _lazy_implementations(monkeypatch)
    np.testing.assert_allclose(np.asarray(grad(xm)), expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(mx.compile(grad)(xm)), expected, rtol=1e-8, atol=1e-10)
    vmapped = mx.vmap(mx.grad(loss))(xm[0])
    np.testing.assert_allclose(np.asarray(vmapped), expected[0], rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not mx.is_available(mx.gpu), reason="needs an MLX GPU backend")
@pytest.mark.parametrize(("loss", "x"), [c[1:] for c in BATCHED], ids=BATCHED_IDS)
def test_float32_gpu_gradient_matches_float64_cpu(loss, x):
    with mx.stream(mx.cpu):
        reference = np.asarray(mx.grad(lambda a: loss(a).sum())(mx.array(x, dtype=F64)))
    previous = mx.default_device()
    mx.set_default_device(mx.gpu)
    try:
        gpu = np.asarray(mx.grad(lambda a: loss(a).sum())(mx.array(x, dtype=mx.float32)))
    finally:
        mx.set_default_device(previous)
    scale = np.abs(reference).max()
    np.testing.assert_allclose(gpu, reference, rtol=GPU_RTOL, atol=GPU_RTOL * scale)


# ------------------------------------------------------------------ the worked example


def _load_example():
    return tool_scripts.load("docs/examples/gaussian_process.py", "gaussian_process_example")


def test_gaussian_process_example_reaches_the_maximum_likelihood():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    example = _load_example()
    result = example.main()
    x, y = (np.asarray(v) for v in example.make_data())

    def nll(log_params):
        ell, sf, sn = np.exp(log_params)
        k = sf**2 * np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * ell**2))
        k = k + (sn**2 + 1e-8) * np.eye(len(x))
        return (
            0.5 * y @ np.linalg.solve(k, y)
            + 0.5 * np.linalg.slogdet(k)[1]
            + 0.5 * len(x) * math.log(2 * math.pi)
        )

    best = scipy_optimize.minimize(
        nll,
        [0.0, 0.0, math.log(0.5)],
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000},
    )
    assert result["initial_nll"] > result["final_nll"] + 30
    assert abs(result["final_nll"] - best.fun) < 1e-3
    np.testing.assert_allclose(
        [result["lengthscale"], result["signal"], result["noise"]], np.exp(best.x), rtol=2e-2
    )
    grad = mx.grad(example.negative_log_likelihood)(
        mx.array(best.x, dtype=F64), mx.array(x, dtype=F64), mx.array(y, dtype=F64)
    )
    assert np.abs(np.asarray(grad)).max() < 1e-3  # the optimum is a stationary point
