"""Benchmark the batched small-matrix GPU paths of mlx_linalg against PyTorch, same data.

Times each public function (``mlx_linalg.cholesky``, ``qr``, ``eigh``, ``svd``, ``solve``,
``lu_factor``, ``inv``, ``solve_triangular``, ``det``) on stacks of 32x32 and 64x64
float32 matrices on the GPU, and the matching ``torch.linalg`` function on the same
matrices on the same GPU, in one process: the minimum over repetitions after warm-up runs
(the warm-up also compiles the kernels; at least ``--reps`` runs, more until they add up to
``MIN_SECONDS``, at most ``MAX_REPEAT``, the same rule for both libraries), MLX timed to
``mx.synchronize()``, PyTorch to ``torch.cuda.synchronize()``. Each row also checks that
both libraries agree on an invariant of the result (the factor, the solution, singular
values or eigenvalues).

Writes ``small_kernels.json`` and ``small_kernels.md`` to ``--out`` (default
docs/results), naming the GPU, and prints the table. Without PyTorch on CUDA the PyTorch
columns are empty. Usage: ``python tools/bench_small_kernels.py [--out DIR] [--reps N]
[--ops cholesky,solve]``.
"""

import argparse
import json
import platform
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, cell, cuda_torch, mlx_sync

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mlx_linalg as la  # noqa: E402
from mlx_linalg._gpu import small_factor  # noqa: E402

torch = cuda_torch()  # PyTorch is optional: MLX columns only
HAS_TORCH = torch is not None

SHAPES = ((10000, 32), (1000, 64))
# Timed runs: at least --reps, more until they add up to MIN_SECONDS, at most MAX_REPEAT
# (a 0.2 ms call's minimum over 5 runs varied by 10% between runs on the H100).
MIN_SECONDS = 1.0
MAX_REPEAT = 200
# PyTorch on an H100, float32 (DESIGN.md / issue #6), and the speedups the issue asks for.
PUBLISHED_TORCH_MS = {
    ("cholesky", 10000, 32): 0.36,
    ("qr", 10000, 32): 712,
    ("eigh", 10000, 32): 5.6,
    ("svd", 10000, 32): 10.0,
    ("solve", 10000, 32): 1.1,
    ("cholesky", 1000, 64): 0.17,
    ("qr", 1000, 64): 65,
    ("eigh", 1000, 64): 805,
    ("svd", 1000, 64): 1075,
    ("solve", 1000, 64): 1.3,
}
TARGET_SPEEDUP = {
    ("qr", 32): 50,
    ("qr", 64): 50,
    ("eigh", 32): 3,
    ("eigh", 64): 30,
    ("svd", 32): 3,
    ("svd", 64): 30,
    ("cholesky", 32): 1,
    ("cholesky", 64): 1,
    ("solve", 32): 1,
    ("solve", 64): 1,
}


def _inputs(op: str, batch: int, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((batch, n, n)).astype(np.float32)
    if op == "cholesky":
        a = (a @ np.swapaxes(a, -1, -2) / n + np.eye(n, dtype=np.float32)).astype(np.float32)
    elif op == "eigh":
        a = ((a + np.swapaxes(a, -1, -2)) / 2).astype(np.float32)
    elif op in ("solve", "inv", "lu_factor"):
        a = (a + 2 * np.sqrt(n) * np.eye(n, dtype=np.float32)).astype(np.float32)
    elif op == "det":  # eigenvalues in |z - 1| <= 1/2: a determinant float32 can hold
        a = (a / (2 * np.sqrt(n)) + np.eye(n, dtype=np.float32)).astype(np.float32)
    elif op == "solve_triangular":
        a = np.tril(a) + np.sqrt(n) * np.eye(n, dtype=np.float32)
    out = {"a": a}
    if op in ("solve", "solve_triangular"):
        out["b"] = rng.standard_normal((batch, n, n)).astype(np.float32)
    return out


def _mlx_call(op: str, x: dict):
    a = x["a"]
    calls = {
        "cholesky": lambda: la.cholesky(a),
        "qr": lambda: tuple(la.qr(a)),
        "eigh": lambda: tuple(la.eigh(a)),
        "svd": lambda: tuple(la.svd(a, full_matrices=False)),
        "solve": lambda: la.solve(a, x["b"]),
        "lu_factor": lambda: tuple(la.lu_factor(a)),
        "inv": lambda: la.inv(a),
        "solve_triangular": lambda: la.solve_triangular(a, x["b"], lower=True),
        "det": lambda: la.det(a),
    }
    return calls[op]


def _torch_call(op: str, x: dict):
    a = x["a"]
    calls = {
        "cholesky": lambda: torch.linalg.cholesky(a),
        "qr": lambda: torch.linalg.qr(a),
        "eigh": lambda: torch.linalg.eigh(a),
        "svd": lambda: torch.linalg.svd(a, full_matrices=False),
        "solve": lambda: torch.linalg.solve(a, x["b"]),
        "lu_factor": lambda: torch.linalg.lu_factor(a),
        "inv": lambda: torch.linalg.inv(a),
        "solve_triangular": lambda: torch.linalg.solve_triangular(a, x["b"], upper=False),
        "det": lambda: torch.linalg.det(a),
    }
    return calls[op]


def _invariant(op: str, result) -> np.ndarray:
    """A sign- and phase-free part of the result, as float64 NumPy."""

    def host(t):
        return (
            t.detach().cpu().numpy()
            if torch is not None and isinstance(t, torch.Tensor)
            else np.asarray(t)
        )

    if op == "qr":
        return np.abs(np.diagonal(host(result[1]), axis1=-2, axis2=-1)).astype(np.float64)
    if op == "eigh":
        return host(result[0]).astype(np.float64)
    if op == "svd":
        return host(result[1]).astype(np.float64)
    if op == "lu_factor":
        return host(result[0]).astype(np.float64)
    return host(result).astype(np.float64)


def _torch_sync(_) -> None:
    torch.cuda.synchronize()


def machine() -> dict:
    info = {
        "mlx": mx.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mlx_device": str(mx.default_device()),
    }
    if HAS_TORCH:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["torch"] = torch.__version__
    elif mx.metal.is_available():
        info["gpu"] = mx.metal.device_info().get("device_name", "Apple GPU")
    return info


# Ops whose kernels have a register (one-simdgroup) variant, timed both ways, and the key of
# small_factor.SIMD_FACTOR that picks their variant.
SIMD_VARIANT_OPS = {
    "lu_factor": "lu",
    "det": "lu",
    "solve": "solve",
    "inv": "solve",
}


def run(ops: list[str], reps: int, warmup: int) -> list[dict]:
    """Rows for every op; the variant mlx_linalg dispatches is labelled by the op's name, the
    other one ``op [simd]`` or ``op [threadgroup]``."""
    rows = []
    default = dict(small_factor.SIMD_FACTOR)
    for op in ops:
        key = SIMD_VARIANT_OPS.get(op)
        variants = (default[key], not default[key]) if key else (None,)
        for simd in variants:
            label = op
            if key:
                small_factor.SIMD_FACTOR = {**default, key: simd}
                if simd != default[key]:
                    label = f"{op} [{'simd' if simd else 'threadgroup'}]"
            rows += _run_op(op, label, reps, warmup)
        small_factor.SIMD_FACTOR = dict(default)
    return rows


def _run_op(op: str, label: str, reps: int, warmup: int) -> list[dict]:
    """Time ``op`` at every shape in SHAPES; rows labelled ``label``."""
    rows = []
    for batch, n in SHAPES:
        data = _inputs(op, batch, n, seed=n)
        mlx_data = {k: mx.array(v) for k, v in data.items()}
        mx.eval(mlx_data)
        timing = {"warmup": warmup, "min_seconds": MIN_SECONDS, "max_repeat": MAX_REPEAT}
        mlx_ms, mlx_out = best_ms(_mlx_call(op, mlx_data), mlx_sync, reps, **timing)
        row = {
            "op": label,
            "batch": batch,
            "n": n,
            "mlx_linalg_ms": round(mlx_ms, 4),
            "torch_ms": None,
            "speedup": None,
            "max_rel_diff": None,
            "target_speedup": TARGET_SPEEDUP.get((op, n)),
            "published_torch_ms": PUBLISHED_TORCH_MS.get((op, batch, n)),
        }
        if HAS_TORCH:
            tdata = {k: torch.from_numpy(v).cuda() for k, v in data.items()}
            torch_ms, torch_out = best_ms(_torch_call(op, tdata), _torch_sync, reps, **timing)
            ours, theirs = _invariant(op, mlx_out), _invariant(op, torch_out)
            scale = np.maximum(np.abs(theirs).max(), np.finfo(np.float32).tiny)
            row.update(
                torch_ms=round(torch_ms, 4),
                speedup=round(torch_ms / mlx_ms, 2),
                max_rel_diff=float(np.nanmax(np.abs(ours - theirs)) / scale),
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict], info: dict) -> str:
    lines = [
        "# Batched small-matrix kernels vs PyTorch",
        "",
        f"GPU: {info.get('gpu', 'unknown')}; MLX {info['mlx']}; PyTorch "
        f"{info.get('torch', 'n/a')}. float32, minimum of the timed runs after warm-up, "
        "same matrices for both. Speedup = PyTorch time / mlx_linalg time.",
        "",
        "| op | batch x n x n | mlx_linalg (ms) | PyTorch (ms) | speedup | target | met | "
        "max rel. diff |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        target = r["target_speedup"]
        met = (
            ""
            if target is None or r["speedup"] is None
            else ("yes" if r["speedup"] >= target else "no")
        )
        cells = [
            r["op"],
            f"{r['batch']}x{r['n']}x{r['n']}",
            cell(r["mlx_linalg_ms"], ".3f"),
            cell(r["torch_ms"], ".3f"),
            cell(r["speedup"], ""),
            "" if target is None else f"{target}x",
            met,
            cell(r["max_rel_diff"], ".1e"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--ops", default="cholesky,solve,lu_factor,inv,solve_triangular,det,qr,eigh,svd"
    )
    args = parser.parse_args(argv)
    if not mx.is_available(mx.gpu):
        print("bench_small_kernels: no MLX GPU backend", file=sys.stderr)
        return 2
    mx.set_default_device(mx.gpu)
    info = machine()
    rows = run(args.ops.split(","), args.reps, args.warmup)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "small_kernels.json").write_text(
        json.dumps({"machine": info, "rows": rows}, indent=1) + "\n"
    )
    table = markdown(rows, info)
    (out / "small_kernels.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
