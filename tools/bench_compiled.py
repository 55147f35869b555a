"""The dispatched blocked ops with and without their compiled graphs (issue #7), same data.

Times the public functions of mlx_linalg on one GPU, float32, one matrix, through the
dispatch (the blocked graphs from the crossover on), twice per op and size: with
``compiled_graphs.ENABLED`` (the graph traced once per shape and replayed, the default) and
without it (the graph built eagerly on every call), interleaved in rounds so that drift
hits both alike; and PyTorch (cuSOLVER) on the same matrices when importable with CUDA.
Also the first call of a shape (eager) and the second (the trace, compilation of fused
kernels not yet in MLX's kernel cache, and the run), and MLX's peak memory of one call of
each form, in units of n² float32. The two forms' results are compared (largest difference
relative to the largest entry).

Usage: ``python tools/bench_compiled.py [--out DIR] [--sizes 1024,4096] [--ops solve,qr]
[--reps 3] [--rounds 2]``. Writes ``compiled-graphs.json`` and ``compiled-graphs.md`` to
``--out`` (default docs/results) after every row and prints the table.
"""

import argparse
import json
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import (
    best_ms,
    cell,
    cuda_torch,
    mx_sync,
    once_s,
    release_memory,
    table_head,
)
from bench_timing import machine as gpu_machine

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mlx_linalg as la  # noqa: E402
from mlx_linalg._gpu import compiled_graphs  # noqa: E402

torch = cuda_torch()

OPS = ("cholesky", "solve_triangular", "solve", "inv", "lu_factor", "qr")


def _inputs(n: int, rng: np.random.Generator) -> dict:
    g = rng.standard_normal((n, n))
    x = {"a": g / np.sqrt(n) + 2 * np.eye(n), "spd": g @ g.T / n + np.eye(n)}
    x["b"] = rng.standard_normal((n, 16))
    return {k: v.astype(np.float32) for k, v in x.items()}


def _mlx_call(op: str, x: dict):
    a, spd, b = mx.array(x["a"]), mx.array(x["spd"]), mx.array(x["b"])
    mx.eval(a, spd, b)
    calls = {
        "cholesky": lambda: la.cholesky(spd),
        "solve_triangular": lambda: la.solve_triangular(spd, b, lower=True),
        "solve": lambda: la.solve(a, b),
        "inv": lambda: la.inv(a),
        "lu_factor": lambda: la.lu_factor(a),
        "qr": lambda: la.qr(a),
    }
    return calls[op]


def _torch_call(op: str, x: dict):
    a, spd, b = (torch.from_numpy(x[k]).cuda() for k in ("a", "spd", "b"))
    calls = {
        "cholesky": lambda: torch.linalg.cholesky(spd),
        "solve_triangular": lambda: torch.linalg.solve_triangular(spd, b, upper=False),
        "solve": lambda: torch.linalg.solve(a, b),
        "inv": lambda: torch.linalg.inv(a),
        "lu_factor": lambda: torch.linalg.lu_factor(a),
        "qr": lambda: torch.linalg.qr(a),
    }
    return calls[op]


def _first(out) -> mx.array:
    return out if isinstance(out, mx.array) else out[0]


def _peak(fn) -> float:
    """MLX's peak memory of one call of ``fn`` (bytes)."""
    mx.synchronize()
    mx.clear_cache()
    mx.reset_peak_memory()
    mx_sync(fn())
    return mx.get_peak_memory()


def row(op: str, n: int, reps: int, rounds: int, rng) -> dict:
    x = _inputs(n, rng)
    fn = _mlx_call(op, x)
    first_ms, trace_ms = (once_s(fn, mx_sync)[0] * 1e3 for _ in range(2))  # eager, traced
    compiled_out = fn()
    times = {"compiled": [], "eager": []}
    for _ in range(rounds):
        for form in times:
            compiled_graphs.ENABLED = form == "compiled"
            times[form].append(best_ms(fn, mx_sync, reps, warmup=1)[0])
    compiled_graphs.ENABLED = False
    eager_out = fn()
    peak_eager = _peak(fn)
    compiled_graphs.ENABLED = True
    peak_compiled = _peak(fn)
    got, want = np.asarray(_first(compiled_out)), np.asarray(_first(eager_out))
    scale = float(np.max(np.abs(want))) or 1.0
    result = {
        "op": op,
        "n": n,
        "first_call_ms": first_ms,
        "second_call_ms": trace_ms,
        "compiled_ms": min(times["compiled"]),
        "eager_ms": min(times["eager"]),
        "rounds_ms": times,
        "peak_compiled_n2": peak_compiled / (4 * n * n),
        "peak_eager_n2": peak_eager / (4 * n * n),
        "difference": float(np.max(np.abs(got - want))) / scale,
    }
    if torch is not None:
        tfn = _torch_call(op, x)
        result["torch_ms"] = best_ms(tfn, lambda _: torch.cuda.synchronize(), reps)[0]
    release_memory(torch)
    return result


def markdown(rows: list[dict], info: dict) -> str:
    lines = table_head(
        "Dispatched blocked ops, compiled graphs against eager graphs (float32, ms)",
        info,
        ["op", "n", "compiled", "eager", "eager / compiled", "PyTorch", "compiled / PyTorch"]
        + ["first call (eager)", "second (trace)", "peak n² compiled / eager", "difference"],
    )
    for r in rows:
        t = r.get("torch_ms")
        lines.append(
            f"| {r['op']} | {r['n']} | {r['compiled_ms']:.1f} | {r['eager_ms']:.1f} "
            f"| {r['eager_ms'] / r['compiled_ms']:.2f} | {cell(t, '.2f')} "
            f"| {cell(None if t is None else r['compiled_ms'] / t, '.1f')} "
            f"| {r['first_call_ms']:.0f} | {r['second_call_ms']:.0f} "
            f"| {r['peak_compiled_n2']:.1f} / {r['peak_eager_n2']:.1f} | {r['difference']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--sizes", default="1024,2048,4096,8192")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    mx.set_default_device(mx.gpu)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = gpu_machine(cpu=False, torch=torch)
    rng = np.random.default_rng(0)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for op in args.ops.split(","):
            rows.append(row(op, n, args.reps, args.rounds, rng))
            print(json.dumps(rows[-1]), flush=True)
            (out / "compiled-graphs.json").write_text(
                json.dumps({"machine": info, "rows": rows}, indent=1)
            )
            (out / "compiled-graphs.md").write_text(markdown(rows, info))
    print(markdown(rows, info))


if __name__ == "__main__":
    main()
