"""GPU tests of the compiled blocked graphs (mlx_linalg._gpu.compiled_graphs): every
dispatched blocked op gives through its compiled graph what the eager graph gives, on the
first (eager), second (traced) and third (replayed) call of a shape, on another stream,
inside the user's mx.compile and mx.grad, and with iterative refinement (whose
factorization is traced with plain TF32 products). Run by tools/gpu-check.sh.

Not here: ``mx.vmap`` of a GPU kernel path, which fails in MLX 0.32 whether or not the graph
is compiled ("[Primitive::vmap] Not implemented for CustomKernel": MLX's vmap visits the
nodes inside ``mx.custom_function``, docs/gradients.md)."""

import mlx.core as mx
import numpy as np
import pytest
from matrices import SOLVE_RATIO, as64, as_mlx, norm, ratio

import mlx_linalg as la
from mlx_linalg._gpu import blocked_rules, compiled_graphs

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


def _inputs(rng, n: int, batch: tuple = ()) -> dict:
    g = rng.standard_normal((*batch, n, n))
    spd = g @ np.swapaxes(g, -1, -2) / n + np.eye(n)
    return {
        "a": as_mlx(g / np.sqrt(n) + 2 * np.eye(n), mx.float32),
        "spd": as_mlx(spd, mx.float32),
        "b": as_mlx(rng.standard_normal((*batch, n, 3)), mx.float32),
    }


def _call(op: str, x: dict) -> list:
    """The public function of ``op`` on ``x``'s matrices, its outputs as a list."""
    a, spd, b = x["a"], x["spd"], x["b"]
    calls = {
        "cholesky": lambda: la.cholesky(spd),
        "cho_solve": lambda: la.cho_solve((la.cholesky(spd), True), b),
        "solve_triangular": lambda: la.solve_triangular(spd, b, lower=True),
        "lu_factor": lambda: la.lu_factor(a),
        "lu": lambda: la.lu(a),
        "lu_solve": lambda: la.lu_solve(la.lu_factor(a), b, trans=1),
        "solve": lambda: la.solve(a, b),
        "inv": lambda: la.inv(a),
        "det": lambda: la.det(a / 2),
        "slogdet": lambda: la.slogdet(a),
        "qr": lambda: la.qr(a),
    }
    out = calls[op]()
    out = [out] if isinstance(out, mx.array) else list(out)
    mx.eval(out)
    return [np.asarray(o) for o in out]


@pytest.mark.parametrize("op", sorted(blocked_rules.RULES))
def test_compiled_equals_eager(rng, monkeypatch, op):
    """At the op's crossover order (a stack of two for the cheap ones), the traced and the
    replayed graph give the eager graph's result."""
    n = blocked_rules.CROSSOVER[op]
    x = _inputs(rng, n, (2,) if n <= 1024 else ())
    compiled_graphs.clear()
    first, traced, replayed = _call(op, x), _call(op, x), _call(op, x)
    monkeypatch.setattr(compiled_graphs, "ENABLED", False)
    eager = _call(op, x)
    for got, again, want, before in zip(traced, replayed, eager, first, strict=True):
        np.testing.assert_array_equal(got, again)
        np.testing.assert_array_equal(before, want)
        # Fused elementwise kernels may contract a multiply-add differently: a few ulps.
        scale = float(np.max(np.abs(want))) if want.size else 1.0
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)


def test_new_shapes_streams_and_refinement(rng):
    """A new order and a new batch shape are traced anew; another stream gets its own
    graph; refinement's plain-TF32 factorization is not the split graph replayed."""
    for n, batch in [(1024, ()), (1100, ()), (1024, (3,))]:
        x = _inputs(rng, n, batch)
        a, b = as64(x["a"]), as64(x["b"])
        for _ in range(3):  # eager, traced, replayed
            for stream in (None, mx.new_stream(mx.gpu)):
                solution = as64(la.solve(x["a"], x["b"], stream=stream))
                assert ratio(b - a @ solution, norm(a) * norm(solution), U32) <= SOLVE_RATIO
            refined = as64(la.solve(x["a"], x["b"], refine=True))
            assert ratio(b - a @ refined, norm(a) * norm(refined), U32) <= SOLVE_RATIO


def test_inside_compile_and_grad(rng):
    x = _inputs(rng, 1024, (2,))
    a, b = x["a"], x["b"]
    direct = [np.asarray(la.solve(a, b)) for _ in range(2)][-1]  # eager, then traced
    traced = np.asarray(mx.compile(la.solve)(a, b))
    np.testing.assert_allclose(traced, direct, rtol=1e-4, atol=1e-5)
    # d/db of sum(A⁻¹ b) = A⁻ᵀ 1.
    grad = as64(mx.grad(lambda b: mx.sum(la.solve(a, b)))(b))
    ones = np.ones((2, 1024, 3))
    expected = np.linalg.solve(np.swapaxes(as64(a), -1, -2), ones)
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-4)
