"""The blocked graphs compiled once per input shape (mlx_linalg._gpu.compiled_graphs): the
wrapper's contract on the CPU, and that the stubbed blocked graphs compile no new fused
kernel for a second matrix order (a per-step scalar in an elementwise op would add one
kernel per step: 125 s of JIT compilation at n = 4096 on an H100). The GPU results of the
compiled dispatch are in tests/gpu/test_compiled_graphs_gpu.py."""

import inspect
import json
import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import mlx.core as mx
import numpy as np

from mlx_linalg import _dispatch, _precision
from mlx_linalg._gpu import blocked_lu, blocked_rules, compiled_graphs

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _counting(impl):
    """``impl`` and a list that records one entry per Python-level call of it."""
    calls = []

    def counted(*arrays, **keywords):
        calls.append(tuple(x.shape for x in arrays))
        return impl(*arrays, **keywords)

    return counted, calls


def _solve_like(a, b, *, scale=1.0):
    """A toy implementation with the dispatch contract: a tuple and a failed flag."""
    x = (a @ b) * scale + 1.0
    return (x, mx.sum(x, axis=-1)), mx.any(mx.isnan(x), axis=(-2, -1))


def test_eager_first_then_traced_once_and_replayed(rng):
    """The first call of a shape runs eagerly, the second traces, later ones replay; the
    results are the implementation's."""
    impl, calls = _counting(_solve_like)
    run = compiled_graphs.cached(impl)
    a, b = (mx.array(rng.standard_normal(s).astype(np.float32)) for s in [(2, 5, 5), (2, 5, 3)])
    (x0, total0), failed0 = _solve_like(a, b, scale=2.0)
    for _ in range(3):
        (x, total), failed = run(a, b, scale=2.0)
        np.testing.assert_allclose(np.asarray(x), np.asarray(x0), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(total), np.asarray(total0), rtol=1e-5)
        np.testing.assert_array_equal(np.asarray(failed), np.asarray(failed0))
    assert len(calls) == 2  # eager, then traced; the third call replayed the trace
    (x, _), _ = run(a + 1, b, scale=2.0)  # same shape, other values: replayed
    assert len(calls) == 2
    np.testing.assert_allclose(np.asarray(x), np.asarray(_solve_like(a + 1, b, scale=2.0)[0][0]))
    run(a[:1], b[:1], scale=2.0)
    run(a[:1], b[:1], scale=2.0)
    assert len(calls) == 4  # a new shape: eager, then traced
    for _ in range(2):
        (x3, _), _ = run(a, b, scale=3.0)  # other keywords: another graph
    assert len(calls) == 6
    np.testing.assert_allclose(np.asarray(x3), np.asarray(_solve_like(a, b, scale=3.0)[0][0]))


def test_output_structure_kept_per_shape():
    """A lone array and a None ``failed`` come back as such, per input signature."""

    def impl(a):
        if a.shape[-1] == 2:
            return a * 2.0, None
        return (a + 1.0, a - 1.0), mx.zeros(a.shape[:-2], dtype=mx.bool_)

    run = compiled_graphs.cached(impl)
    small, large = mx.ones((2, 2)), mx.ones((1, 3, 3))
    for _ in range(3):  # eager, traced, replayed
        out, failed = run(small)
        assert isinstance(out, mx.array) and failed is None
        assert np.asarray(out).tolist() == [[2.0, 2.0], [2.0, 2.0]]
        (plus, minus), failed = run(large)
        assert float(plus.sum()) == 18.0 and float(minus.sum()) == 0.0
        assert failed.shape == (1,) and not bool(failed.any())


def test_disabled_and_unhashable_keywords_run_eagerly(monkeypatch):
    impl, calls = _counting(lambda a, *, options: ((a * options[0],), None))
    run = compiled_graphs.cached(impl)
    a = mx.ones((3, 3))
    for _ in range(3):
        run(a, options=[2.0])
    assert len(calls) == 3  # a list keyword is no dictionary key: eager every time
    hashable, calls = _counting(lambda a, *, factor: ((a * factor,), None))
    run = compiled_graphs.cached(hashable)
    monkeypatch.setattr(compiled_graphs, "ENABLED", False)
    for _ in range(3):
        run(a, factor=2.0)
    assert len(calls) == 3
    monkeypatch.setattr(compiled_graphs, "ENABLED", True)
    for _ in range(3):
        run(a, factor=2.0)
    assert len(calls) == 5  # eager, traced, replayed


def test_split_products_and_streams_are_part_of_the_key(monkeypatch):
    """A graph traced with split products is not replayed inside
    ``_precision.reduced_products`` (iterative refinement's plain TF32 factorization), nor
    on another stream."""
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)

    def impl(a):
        return ((a * (2.0 if _precision.needs_split() else 3.0)),), None

    run = compiled_graphs.cached(impl)
    a = mx.ones((2, 2))
    for _ in range(3):
        assert float(run(a)[0][0].sum()) == 8.0
        with _precision.reduced_products():
            assert float(run(a)[0][0].sum()) == 12.0
    counted, calls = _counting(impl)
    run = compiled_graphs.cached(counted)
    stream = mx.new_stream(mx.cpu)
    for _ in range(3):
        run(a)
        with mx.stream(stream):
            run(a)
    assert len(calls) == 4  # eager and traced on each stream
    compiled_graphs.clear()
    run(a)
    run(a)
    assert len(calls) == 6


def test_inside_compile_vmap_and_grad(rng):
    """Called while the user's mx.compile, mx.vmap or mx.grad traces it (after a trace of
    its own: the second call of the shape)."""
    run = compiled_graphs.cached(_solve_like)
    a, b = (mx.array(rng.standard_normal(s).astype(np.float32)) for s in [(3, 4, 4), (3, 4, 2)])

    def f(a, b):
        return run(a, b, scale=1.5)[0][0]

    expected = np.asarray(_solve_like(a, b, scale=1.5)[0][0])
    for _ in range(2):
        np.testing.assert_allclose(np.asarray(f(a, b)), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(mx.compile(f)(a, b)), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(mx.vmap(f)(a, b)), expected, rtol=1e-6)
    grad = mx.grad(lambda a: mx.sum(f(a, b)))(a)
    expected_grad = 1.5 * np.broadcast_to(np.asarray(b).sum(axis=-1)[:, None, :], (3, 4, 4))
    np.testing.assert_allclose(np.asarray(grad), expected_grad, rtol=1e-5)


def test_traces_kept_per_graph_are_bounded(monkeypatch):
    """Past MAX_TRACED signatures a graph starts over with a fresh mx.compile object; the
    results stay right."""
    monkeypatch.setattr(compiled_graphs, "MAX_TRACED", 2)
    impl, calls = _counting(lambda a: ((a * 2.0 + 1.0,), None))
    run = compiled_graphs.cached(impl)
    for _ in range(2):
        for n in (2, 3, 4):
            a = mx.ones((n, n))
            for _ in range(2):
                assert float(run(a)[0][0].sum()) == 3.0 * n * n
    (graph,) = run.graphs.values()
    assert len(graph.structures) <= 2
    assert len(calls) == 3 + 3 + 3  # eager once per shape; traced again after each restart


def test_threads_at_once(rng):
    """Threads calling one cached implementation at once get their own results."""
    run = compiled_graphs.cached(_solve_like)
    inputs = [
        tuple(mx.array(rng.standard_normal(s).astype(np.float32)) for s in [(2, 6, 6), (2, 6, 2)])
        for _ in range(8)
    ]
    expected = [np.asarray(_solve_like(a, b)[0][0]) for a, b in inputs]

    def work(i):
        for _ in range(4):
            (x, _), _ = run(*inputs[i])
            np.testing.assert_allclose(np.asarray(x), expected[i], rtol=1e-6)
        return i

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sorted(pool.map(work, range(8))) == list(range(8))


def test_the_dispatched_blocked_rules_are_compiled():
    a, b = mx.zeros((2048, 2048)), mx.zeros((2048, 1))
    picked = _dispatch.implementation("solve", mx.gpu, a, b)
    assert inspect.unwrap(picked) is blocked_lu.solve
    assert picked.__wrapped__ is not blocked_lu.solve  # the stream wrapper, then cached()
    assert set(blocked_rules.dispatch_rules()) == set(blocked_rules.RULES)


_AUDIT = """
import json, pathlib, sys, tempfile
sys.path.insert(0, {tools!r})
import mlx.core as mx
from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_lu
import count_launches

_precision.needs_split = lambda *a, **k: True  # the TF32 graph, as on an H100
stubs = count_launches.stubs(count_launches.Counts())
builders = count_launches.builders(stubs)
builders["det"] = lambda n: list(blocked_lu.det(mx.zeros((1, n, n)), blocks=stubs)[0])
builders["lu_solve"] = lambda n: list(
    blocked_lu.lu_solve(
        mx.zeros((1, n, n)), mx.zeros((1, n), mx.int32), mx.zeros((1, n, 3)), trans=1,
        blocks=stubs,
    )[0]
)
root = pathlib.Path(tempfile.gettempdir())
counts = {{}}
for op in {ops!r}:
    for n in {sizes!r}:
        before = set(root.rglob("*.cpp"))
        build = builders[op]
        mx.eval(mx.compile(lambda: [o for o in build(n) if o is not None])())
        counts[f"{{op}} {{n}}"] = len(set(root.rglob("*.cpp")) - before)
print(json.dumps(counts))
"""


def test_a_second_order_compiles_no_new_fused_kernel(tmp_path):
    """mx.compile of the stubbed blocked graphs (tools/count_launches.py) in a fresh JIT
    directory (MLX's CPU backend writes each fused kernel's source under the temporary
    directory): the first order builds some fused kernels, a second order none (det's
    sign and lu_solve's pivot check once had the order as a constant). QR is
    left out for time: its graph fuses into 176 kernels on the CPU at n = 256 (3 minutes
    of g++), none new at 384 (checked 2026-11-27 with this test's code)."""
    ops, sizes = ["solve", "cholesky", "solve_triangular", "det", "lu_solve"], [256, 384]
    code = _AUDIT.format(tools=str(_ROOT / "tools"), ops=ops, sizes=sizes)
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert sum(counts[f"{op} 256"] for op in ops) > 0, counts  # the JIT directory is seen
    assert all(counts[f"{op} 384"] == 0 for op in ops), counts
