"""tools/bench_blocked.py's crossover summary and its graphs as dispatched (no GPU needed)."""

import functools

import mlx.core as mx
import numpy as np
import tool_scripts

from mlx_linalg._gpu import blocked_lu
from mlx_linalg._gpu.blocked_common import REFERENCE

bench_blocked = tool_scripts.load("tools/bench_blocked.py")


def _row(op: str, n: int, blocked: float | None, cpu: float | None, batch: int = 1) -> dict:
    row = {"op": op, "batch": batch, "n": n}
    if blocked is not None:
        row["blocked_default_ms"] = blocked
    if cpu is not None:
        row["cpu_ms"] = cpu
    return row


def test_crossover_is_where_the_blocked_graph_wins_from_on():
    rows = [
        _row("inv", 512, 5.0, 3.0),
        _row("inv", 1024, 8.0, 16.0),
        _row("inv", 2048, 23.0, 70.0),
        _row("qr", 512, 2.0, 3.0),  # a win below a loss does not count
        _row("qr", 1024, 9.0, 8.0),
        _row("qr", 2048, 20.0, 40.0),
        _row("solve", 512, 9.0, 3.0),
        _row("solve", 1024, 9.0, 8.0),  # loses at the largest n
        _row("cholesky", 512, 1.0, None),  # no CPU time: not compared
        _row("lu_factor", 512, 1.0, 3.0, batch=4),  # batches are not the dispatch rule's case
    ]
    assert bench_blocked.crossovers(rows, "default") == {
        "inv": 1024,
        "qr": 2048,
        "solve": None,
        "cholesky": None,
        "lu_factor": None,
    }
    info = {"mlx": "x", "tf32_detected": False}
    text = bench_blocked.markdown(rows, info, ["default"])
    assert "compiled graphs" in text
    assert "inv 1024, qr 2048, solve -, cholesky -, lu_factor -." in text
    assert "eager graphs" in bench_blocked.markdown(rows, info, ["default"], compiled=False)


def test_graph_is_the_dispatched_form_kept_across_calls():
    """The compiled form is one ``compiled_graphs.cached`` wrapper per implementation for
    the whole run (so its traces are kept) and gives the eager graph's result; the eager
    form is the implementation itself. (The MLX-op building blocks, on the CPU.)"""
    solve = functools.partial(blocked_lu.solve, blocks=REFERENCE)
    rng = np.random.default_rng(0)
    a = mx.array((rng.standard_normal((1, 80, 80)) / 9 + 2 * np.eye(80)).astype(np.float32))
    b = mx.array(rng.standard_normal((1, 80, 3)).astype(np.float32))
    compiled = bench_blocked._graph(solve, True)
    assert bench_blocked._graph(solve, True) is compiled
    assert bench_blocked._graph(solve, False) is solve
    with mx.stream(mx.cpu):
        expected = np.asarray(solve(a, b)[0][0])
        for _ in range(3):  # eager, traced, replayed
            (x,), _ = compiled(a, b)
            np.testing.assert_allclose(np.asarray(x), expected, rtol=1e-5, atol=1e-6)


def _sleeps(*seconds: float):
    """A timed call that sleeps ``seconds[i]`` at its i-th call (the last value after)."""
    import time

    calls = []

    def fn():
        time.sleep(seconds[min(len(calls), len(seconds) - 1)])
        calls.append(1)
        return len(calls)

    return fn, calls


def test_a_slow_first_run_alone_does_not_mark_the_column_slow():
    # The first call of a kernel pays its JIT compilation: one slow run is not a slow column.
    fn, calls = _sleeps(0.2, 0.0)
    ms, _, slow = bench_blocked._time(fn, lambda out: None, reps=2, budget=0.1)
    assert not slow and ms < 100 and len(calls) == 4


def test_two_slow_runs_mark_the_column_slow():
    fn, calls = _sleeps(0.2, 0.15, 0.0)
    ms, _, slow = bench_blocked._time(fn, lambda out: None, reps=2, budget=0.1)
    assert slow and 150 <= ms < 200 and len(calls) == 2
