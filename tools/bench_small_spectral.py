"""Batched small-matrix qr / eigh / svd: mlx_linalg's GPU kernels against PyTorch.

Same process, same data (float32 Gaussian; symmetrized for eigh), same GPU. For each case it
times ``mlx_linalg.{qr, eigh, svd}`` on the GPU stream and ``torch.linalg.{qr, eigh, svd}``
on CUDA (min of ``--repeat`` runs after two warm-ups, each run synchronized), measures both
results with DESIGN.md's accuracy metrics on the first 200 matrices, and writes JSON and a
Markdown table naming the GPU.

Usage: ``python tools/bench_small_spectral.py [--out DIR] [--repeat 5] [--cases 10000x32,1000x64]
[--lanes 0,8]`` (``--lanes``: also time the threadgroup-memory Jacobi kernels with that many
lanes per column pair; 0 is the launcher's choice, which for n <= ``small_spectral.SIMD_MAX``
is the register kernels: their rows say "register").
"""

import argparse
import json
import platform
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms

import mlx_linalg as la
from mlx_linalg._gpu import small_spectral

U32 = float(np.finfo(np.float32).eps) / 2
OPS = ("qr", "eigh", "svd")
# PyTorch on one H100, float32, from DESIGN.md (ms), and the speed-ups issue #6 asks for.
TARGET_SPEEDUP = {("qr", 32): 50, ("qr", 64): 50, ("eigh", 32): 3, ("eigh", 64): 30,
                  ("svd", 32): 3, ("svd", 64): 30}


def _fro(x):
    return np.linalg.norm(np.asarray(x, dtype=np.float64), axis=(-2, -1))


def accuracy(op: str, a: np.ndarray, out: tuple) -> float:
    """DESIGN.md's ratio for ``op`` (the max over its parts and over the matrices)."""
    a = a.astype(np.float64)
    out = [np.asarray(o, dtype=np.float64) for o in out]
    n = a.shape[-1]
    if op == "qr":
        q, r = out
        return float(np.max(np.maximum(_fro(a - q @ r) / (n * _fro(a) * U32),
                                       _fro(np.eye(n) - q.swapaxes(-1, -2) @ q) / (n * U32))))
    if op == "eigh":
        w, v = out
        resid = _fro(a @ v - v * w[..., None, :]) / (n * _fro(a) * U32)
        orth = _fro(np.eye(n) - v.swapaxes(-1, -2) @ v) / (n * U32)
        return float(np.max(np.maximum(resid, orth)))
    u, s, vh = out
    resid = _fro(a - (u * s[..., None, :]) @ vh) / (n * _fro(a) * U32)
    orth_u = _fro(np.eye(n) - u.swapaxes(-1, -2) @ u) / (n * U32)
    orth_v = _fro(np.eye(n) - vh @ vh.swapaxes(-1, -2)) / (n * U32)
    return float(np.max(np.maximum(resid, np.maximum(orth_u, orth_v))))


def _mlx_fn(op: str, x: mx.array):
    if op == "qr":
        return lambda: la.qr(x, stream=mx.gpu)
    if op == "eigh":
        return lambda: la.eigh(x, stream=mx.gpu)
    return lambda: la.svd(x, full_matrices=False, stream=mx.gpu)


def _torch_fn(torch, op: str, t):
    if op == "qr":
        return lambda: torch.linalg.qr(t)
    if op == "eigh":
        return lambda: torch.linalg.eigh(t)
    return lambda: torch.linalg.svd(t, full_matrices=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cases", default="10000x32,1000x64")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--lanes", default="0")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    machine = {"platform": platform.platform(), "mlx": mx.__version__}
    if torch is not None and torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name()
        machine["torch"] = torch.__version__
    else:
        torch = None
    rows = []
    default_lanes = small_spectral._jacobi_lanes
    default_simd_max = small_spectral.SIMD_MAX
    for case in args.cases.split(","):
        batch, n = (int(v) for v in case.split("x"))
        data = np.random.default_rng(batch + n).standard_normal((batch, n, n)).astype(np.float32)
        for op in args.ops.split(","):
            a = (data + data.swapaxes(-1, -2)) / 2 if op == "eigh" else data
            x = mx.array(a)
            mx.eval(x)
            torch_row = {}
            if torch is not None:
                t = torch.from_numpy(a).cuda()
                tms, tout = best_ms(_torch_fn(torch, op, t), lambda o: torch.cuda.synchronize(),
                                    args.repeat)
                torch_row = {"torch_ms": round(tms, 3),
                             "torch_ratio": round(accuracy(op, a[:200], [o[:200].cpu().numpy()
                                                                        for o in tout]), 2)}
                del t, tout
            variants = [int(v) for v in args.lanes.split(",")] if op != "qr" else [0]
            for lanes in variants:
                small_spectral._jacobi_lanes = (
                    default_lanes if lanes == 0 else (lambda m, lanes=lanes: lanes))
                small_spectral.SIMD_MAX = default_simd_max if lanes == 0 else 0
                register = op != "qr" and lanes == 0 and n <= default_simd_max
                ms, out = best_ms(_mlx_fn(op, x), lambda o: mx.eval(o), args.repeat)
                row = {"op": op, "batch": batch, "n": n,
                       "lanes": "-" if op == "qr" else ("register" if register else
                                                         default_lanes(n) if lanes == 0 else lanes),
                       "mlx_linalg_ms": round(ms, 3),
                       "mlx_linalg_ratio": round(accuracy(op, a[:200], [np.array(o)[:200]
                                                                          for o in out]), 2)}
                row.update(torch_row)
                if torch_row:
                    row["speedup"] = round(torch_row["torch_ms"] / ms, 1)
                    row["target_speedup"] = TARGET_SPEEDUP.get((op, n))
                rows.append(row)
                print(json.dumps(row), flush=True)
            small_spectral._jacobi_lanes = default_lanes
            small_spectral.SIMD_MAX = default_simd_max
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_small_spectral.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2))
    lines = [f"Machine: {machine.get('gpu', 'no CUDA GPU via PyTorch')}, MLX {machine['mlx']}"
             f", PyTorch {machine.get('torch', '-')}; float32, min of {args.repeat} runs.", "",
             "| op | batch x n x n | lanes/pair | mlx_linalg ms | PyTorch ms | speed-up | target | "
             "ratio mlx_linalg | ratio PyTorch |", "|" + " --- |" * 9]
    for r in rows:
        lines.append(f"| {r['op']} | {r['batch']}x{r['n']}x{r['n']} | {r['lanes']} | "
                     f"{r['mlx_linalg_ms']} | "
                     f"{r.get('torch_ms', '-')} | {r.get('speedup', '-')} | "
                     f"{r.get('target_speedup', '-')} | {r['mlx_linalg_ratio']} | "
                     f"{r.get('torch_ratio', '-')} |")
    (out_dir / "bench_small_spectral.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
