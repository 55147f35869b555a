"""Benchmark solve against solve(refine=True), mixed-precision iterative refinement (issue #7).

For each order n (default 1024 ... 8192), right-hand-side count K and matrix kind, on one
GPU, float32, the same data for every column:

* ``solve``: ``mlx_linalg.solve`` (the float32-accurate blocked LU, split products);
* ``refine``: ``mlx_linalg._refine.solve`` (what ``solve(refine=True)`` runs), with its
  corrections (max over the batch) and whether a matrix fell back to ``solve``;
* ``lu32`` and ``lu_low``: the LU factorization alone, float32-accurate and inside
  ``_precision.reduced_products()`` (TF32 trailing updates where the GPU multiplies so):
  the most refinement can save;
* PyTorch's ``torch.linalg.solve`` (cuSOLVER getrf/getrs) when importable with CUDA.

Each result also gets DESIGN.md's solve ratio ‖B − AX‖/(‖A‖‖X‖u) (threshold 30), computed
on the GPU with the float32-accurate split product (float32 accumulation, so at large n it
slightly overstates the error), and the normwise relative difference from ``solve``'s X.

``--steps dispatch`` (default) factors through the dispatch table, as ``solve(refine=True)``
does (at orders below the blocked ``lu_factor`` crossover that is LAPACK on the CPU);
``--steps blocked`` calls the GPU blocked LU graph at every order.

Matrix kinds: ``well`` (A/√n + 2I, κ about 3), ``gauss`` (standard normal, κ about n) and
``graded:C`` (singular values logspaced over 1 ... 1/C with Haar-random singular vectors,
built on the host in float64: slow at n = 8192).

Timing: ``bench_timing.best_ms``, the minimum over ``--reps`` runs after one warm-up, MLX to
``mx.synchronize()``, PyTorch to ``torch.cuda.synchronize()``. A column whose warm-up takes
longer than ``--budget`` seconds is timed by that run and not run at larger n; no row starts
after ``--deadline`` seconds. Writes ``refinement.json`` and ``refinement.md`` to ``--out``
(default docs/results) after every row, naming the machine, and prints the table.

Usage: ``python tools/bench_refinement.py [--sizes 1024,4096] [--rhs 1,n] [--kinds well,gauss]
[--steps dispatch|blocked] [--reps 3] [--budget 30] [--deadline 480] [--out DIR]``.
"""

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, cell, cuda_torch, mlx_sync, once_s
from bench_timing import machine as gpu_machine

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mlx_linalg as la  # noqa: E402
from mlx_linalg import _precision, _refine  # noqa: E402
from mlx_linalg._gpu import blocked_lu  # noqa: E402

torch = cuda_torch()  # the optional PyTorch peer
HAS_TORCH = torch is not None

U32 = float(np.finfo(np.float32).eps) / 2
COLUMNS = ("solve", "refine", "lu32", "lu_low", "torch")


def matrix(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 (n, n) matrix of the named kind (module docstring)."""
    if kind == "well":
        return (rng.standard_normal((n, n)) / np.sqrt(n) + 2 * np.eye(n)).astype(np.float32)
    if kind == "gauss":
        return rng.standard_normal((n, n), dtype=np.float32)
    if kind.startswith("graded:"):
        cond = float(kind.split(":", 1)[1])
        u, _ = np.linalg.qr(rng.standard_normal((n, n)))
        v, _ = np.linalg.qr(rng.standard_normal((n, n)))
        return ((u * np.logspace(0, -np.log10(cond), n)) @ v.T).astype(np.float32)
    raise ValueError(f"bench_refinement: unknown matrix kind {kind!r}")


def blocked_steps() -> _refine.Steps:
    """The refinement's steps on the GPU blocked LU graph at every order."""
    return _refine.Steps(
        blocked_lu.lu_factor,
        functools.partial(blocked_lu.lu_solve, trans=0),
        blocked_lu.solve,
    )


def _torch_sync(_) -> None:
    torch.cuda.synchronize()


def _time(fn, sync, reps: int, budget: float) -> tuple[float, object, bool]:
    """(best ms, last result, whether the warm-up ran over ``budget`` seconds)."""
    first, out = once_s(fn, sync)
    if first > budget:
        return first * 1e3, out, True
    best, out = best_ms(fn, sync, reps, warmup=0)
    return best, out, False


def _fro(x: mx.array) -> mx.array:
    return mx.sqrt(mx.sum(x * x, axis=(-2, -1)))


def solve_ratio(a: mx.array, b: mx.array, x: mx.array) -> float:
    """DESIGN.md's ‖B − AX‖/(‖A‖‖X‖u), float32 u, with the split product."""
    value = _fro(b - _precision.split_matmul(a, x)) / (_fro(a) * _fro(x) * U32)
    return float(mx.max(value).item())


def rel_diff(x: mx.array, reference: mx.array) -> float:
    return float((_fro(x - reference) / _fro(reference)).item())


def machine(steps: str) -> dict:
    return gpu_machine(False, torch, steps=steps, itermax=_refine.ITERMAX, target=_refine.TARGET)


def row(
    n: int,
    k: int,
    kind: str,
    steps: _refine.Steps | None,
    reps: int,
    budget: float,
    over: set,
) -> dict:
    """One row: every column not in ``over`` timed on the same (n, n) A and (n, K) B;
    columns that ran over ``budget`` are added to ``over``."""
    rng = np.random.default_rng(n + k)
    a_np = matrix(kind, n, rng)
    b_np = rng.standard_normal((n, k), dtype=np.float32)
    a, b = mx.array(a_np), mx.array(b_np)
    mx.eval(a, b)
    out = {"n": n, "k": k, "kind": kind}

    def timed(name, fn, sync=mlx_sync):
        ms, result, slow = _time(fn, sync, reps, budget)
        out[f"{name}_ms"] = round(ms, 3)
        if slow:
            over.add(name)
        return result

    plain = None
    if "solve" not in over:
        plain = timed("solve", lambda: la.solve(a, b))
        out["solve_ratio"] = round(solve_ratio(a, b, plain), 3)
    if "refine" not in over:
        refined = timed("refine", lambda: _refine.solve(a, b, steps=steps))
        out["refine_ratio"] = round(solve_ratio(a, b, refined.x), 3)
        out["iterations"] = int(refined.iterations.max())
        out["fell_back"] = bool(refined.fell_back.any())
        if plain is not None:
            out["refine_vs_solve"] = rel_diff(refined.x, plain)
    factor = (steps or _refine.dispatched()).factor
    if "lu32" not in over:
        timed("lu32", lambda: factor(a)[0])
    if "lu_low" not in over:

        def low():
            with _precision.reduced_products():
                return factor(a)[0]

        timed("lu_low", low)
    if HAS_TORCH and "torch" not in over:
        ta, tb = torch.from_numpy(a_np).cuda(), torch.from_numpy(b_np).cuda()
        tx = timed("torch", lambda: torch.linalg.solve(ta, tb), _torch_sync)
        x = mx.array(tx.cpu().numpy())
        out["torch_ratio"] = round(solve_ratio(a, b, x), 3)
        if plain is not None:
            out["torch_vs_solve"] = rel_diff(x, plain)
    return out


def markdown(rows: list[dict], info: dict) -> str:
    lines = [
        "# solve vs solve(refine=True): mixed-precision iterative refinement (issue #7)",
        "",
        f"GPU: {info.get('gpu', 'unknown')}; MLX {info['mlx']}; TF32 detected: "
        f"{info['tf32_detected']}; PyTorch {info.get('torch', 'n/a')}; steps: "
        f"{info['steps']}. float32, one matrix, minimum of the timed runs after one warm-up. "
        "ratio = DESIGN.md's solve metric (threshold 30); it. = corrections; lu32 / lu_low = "
        "the LU alone with float32-accurate / device (TF32) trailing products.",
        "",
        "| kind | n | K | solve (ms) | ratio | refine (ms) | ratio | it. | fell back | "
        "lu32 (ms) | lu_low (ms) | PyTorch (ms) | ratio | refine vs solve |",
        "|" + " --- |" * 14,
    ]
    for r in rows:
        cells = [
            r["kind"],
            str(r["n"]),
            str(r["k"]),
            cell(r.get("solve_ms"), ".2f"),
            cell(r.get("solve_ratio"), ".2f"),
            cell(r.get("refine_ms"), ".2f"),
            cell(r.get("refine_ratio"), ".2f"),
            cell(r.get("iterations"), "d"),
            cell(r.get("fell_back"), ""),
            cell(r.get("lu32_ms"), ".2f"),
            cell(r.get("lu_low_ms"), ".2f"),
            cell(r.get("torch_ms"), ".2f"),
            cell(r.get("torch_ratio"), ".2f"),
            cell(r.get("refine_vs_solve"), ".1e"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(sizes, rhs, kinds, steps, reps, budget, deadline, on_row) -> list[dict]:
    """Rows for every (n, K, kind), smallest n first; none started after ``deadline``."""
    rows, start = [], time.perf_counter()
    over: dict[tuple, set] = {}
    for n in sizes:
        for k_spec in rhs:
            k = n if k_spec == "n" else int(k_spec)
            for kind in kinds:
                if time.perf_counter() - start > deadline:
                    print(f"bench_refinement: deadline reached, {kind} n={n} K={k} not run")
                    continue
                r = row(n, k, kind, steps, reps, budget, over.setdefault((k_spec, kind), set()))
                rows.append(r)
                print(json.dumps(r), flush=True)
                on_row(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--sizes", default="1024,2048,4096,8192")
    parser.add_argument("--rhs", default="1,n", help="right-hand-side counts; n means K = n")
    parser.add_argument("--kinds", default="well,gauss")
    parser.add_argument("--steps", choices=("dispatch", "blocked"), default="dispatch")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--deadline", type=float, default=480.0)
    args = parser.parse_args(argv)
    if not mx.is_available(mx.gpu):
        print("bench_refinement: no MLX GPU backend", file=sys.stderr)
        return 2
    mx.set_default_device(mx.gpu)
    info = machine(args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def write(rows: list[dict]) -> None:  # after every row, so a killed run keeps its rows
        (out / "refinement.json").write_text(
            json.dumps({"machine": info, "rows": rows}, indent=1) + "\n"
        )
        (out / "refinement.md").write_text(markdown(rows, info))

    steps = blocked_steps() if args.steps == "blocked" else None
    rows = run(
        [int(s) for s in args.sizes.split(",")],
        args.rhs.split(","),
        args.kinds.split(","),
        steps,
        args.reps,
        args.budget,
        args.deadline,
        write,
    )
    write(rows)
    print(markdown(rows, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
