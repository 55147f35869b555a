"""Benchmark the blocked QR's two tall-panel factorizations (issue #7): the one-threadgroup
``qr_panel`` kernel (``panel="kernel"``) against TSQR with Householder reconstruction
(``panel="tsqr"``, ``mlx_linalg._gpu.tsqr``), same data, one process.

Times ``blocked_qr.qr`` (reduced, float32, n x n) with each panel at n = 1024 ... 8192,
``torch.linalg.qr`` on the same matrices when PyTorch with CUDA is importable, and the
panel alone (``blocked_qr.panel`` / ``tsqr.panel``, with V and T) for r x 32 panels. Each QR
row also gives the normwise difference of the two panels' R, and each result's
orthogonality ‖I − QᵀQ‖_F/(n u) (split products: float32-accurate on a TF32 device).
Launches per panel are counted without running anything (the method of
tools/count_launches.py: the lazy graph exported, building blocks as one-launch stand-ins),
as MLX's defaults (TF32 products split, as on an H100) and with float32 products.

Timing: the minimum over ``--reps`` runs after one warm-up, to ``mx.synchronize()``
(PyTorch: ``torch.cuda.synchronize()``); no row starts after ``--deadline`` seconds.
Writes ``qr_panel.json`` and ``qr_panel.md`` to ``--out`` after every row.

Usage: ``python tools/bench_qr_panel.py [--out DIR] [--sizes 1024,2048,4096,8192]
[--panels 4096,8192] [--reps 5] [--deadline 200] [--leaf-rows 64] [--cpu]`` (``--leaf-rows``:
also the QR with TSQR leaves of at most that many rows, a ``tsqr_leafN_ms`` column in the
JSON; ``--cpu``: a smoke run on the CPU with the MLX-op building blocks, e.g. ``--cpu
--sizes 100 --panels 300 --reps 1``).
"""

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, cell, cuda_torch, machine, mx_sync, table_head
from count_launches import graph_counts, tf32, tsqr_stubs

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mlx_linalg import _precision  # noqa: E402
from mlx_linalg._gpu import blocked_qr, tsqr  # noqa: E402
from mlx_linalg._gpu.blocked_common import KERNELS, REFERENCE  # noqa: E402

torch = cuda_torch()  # the optional PyTorch peer
HAS_TORCH = torch is not None

U32 = float(np.finfo(np.float32).eps) / 2
WIDTH = blocked_qr.BLOCK


def _constant(shape: tuple) -> mx.array:
    return mx.array(np.zeros(shape, dtype=np.float32))


def count_panel(panel: str, r: int, b: int, *, split: bool) -> dict:
    """Launches of one (1, r, b) panel as ``blocked_qr.geqrf`` uses it (V, T, tau and R's
    rows): building-block calls (one launch each) plus the graph's launches (Concatenate
    inputs counted as copies)."""
    calls = collections.Counter()

    def qr_panel(a):
        calls["qr_panel"] += 1
        return a, _constant(a.shape[::2])

    def trsm(t, x, **_):
        calls["trsm_small"] += 1
        return mx.depends(x, t)

    blocks = KERNELS._replace(qr=qr_panel, trsm=trsm)
    a = mx.array(np.zeros((1, r, b), dtype=np.float32))
    with tf32(split):
        if panel == "tsqr":
            out = tsqr.panel(blocks, a, ops=tsqr_stubs(calls))
        else:
            out = blocked_qr.panel(blocks, a, leaf=None)
        rows = blocked_qr._upper(out.packed) if out.r is None else out.r
        _, launches = graph_counts([rows, out.v, out.t, out.tau])
    return {"launches": launches + sum(calls.values()), "calls": dict(calls)}


def _orthogonality(q: mx.array) -> float:
    k = q.shape[-1]
    gram = _precision.split_matmul(mx.swapaxes(q, -1, -2), q)
    return float(mx.linalg.norm(gram[0] - mx.eye(k))) / (k * U32)


def _relative(x: mx.array, y: mx.array) -> float:
    return float(mx.linalg.norm((x - y)[0]) / mx.linalg.norm(y[0]))


def qr_row(n: int, blocks, reps: int, rng, leaf_rows: tuple[int, ...] = ()) -> dict:
    """Times (ms) of the blocked QR with each panel and of PyTorch, on one n x n matrix
    (and with TSQR leaves of each of ``leaf_rows`` rows at most)."""
    a_np = rng.standard_normal((1, n, n)).astype(np.float32)
    a = mx.array(a_np)
    row = {"op": "qr", "n": n}
    results = {}
    for panel in blocked_qr.PANELS:

        def factor(panel=panel):
            return blocked_qr.qr(a, mode="reduced", blocks=blocks, panel=panel)[0]

        row[f"{panel}_ms"], results[panel] = best_ms(factor, mx_sync, reps, warmup=1)
        row[f"{panel}_orthogonality"] = _orthogonality(results[panel][0])
    row["r_difference"] = _relative(results["tsqr"][1], results["kernel"][1])
    default = tsqr.LEAF_ROWS
    for rows in leaf_rows:
        tsqr.LEAF_ROWS = rows
        try:
            row[f"tsqr_leaf{rows}_ms"], _ = best_ms(
                lambda: blocked_qr.qr(a, mode="reduced", blocks=blocks, panel="tsqr")[0],
                mx_sync,
                reps,
                warmup=1,
            )
        finally:
            tsqr.LEAF_ROWS = default
    if HAS_TORCH and blocks is KERNELS:
        at = torch.from_numpy(a_np[0]).cuda()

        def torch_sync(out):
            torch.cuda.synchronize()

        row["torch_ms"], _ = best_ms(lambda: torch.linalg.qr(at), torch_sync, reps, warmup=1)
    return row


def panel_row(r: int, blocks, reps: int, rng, leaf_rows: tuple[int, ...] = ()) -> dict:
    """Times (ms) of one r x WIDTH panel (with V and T) by each method, and launch counts."""
    a = mx.array(rng.standard_normal((1, r, WIDTH)).astype(np.float32))
    row = {"op": "panel", "n": r}
    factor = {
        "kernel": lambda: blocked_qr.panel(blocks, a, leaf=None),
        "tsqr": lambda: tsqr.panel(blocks, a),
    }
    for panel in blocked_qr.PANELS:
        fn = factor[panel]
        row[f"{panel}_ms"], _ = best_ms(lambda fn=fn: list(fn()[2:4]), mx_sync, reps, warmup=1)
        for split in (True, False):
            counted = count_panel(panel, r, WIDTH, split=split)
            row[f"{panel}_launches{'_tf32' if split else ''}"] = counted["launches"]
    return row


def markdown(rows: list[dict], info: dict) -> str:
    lines = table_head(
        "Blocked QR: qr_panel kernel vs TSQR panel (float32, ms, min over runs)",
        info,
        ["n", "kernel panel", "TSQR panel", "speedup", "PyTorch", "R difference"]
        + ["‖I−QᵀQ‖/(nu) kernel", "tsqr"],
    )
    for row in (r for r in rows if r["op"] == "qr"):
        lines.append(
            f"| {row['n']} | {row['kernel_ms']:.2f} | {row['tsqr_ms']:.2f} "
            f"| {row['kernel_ms'] / row['tsqr_ms']:.2f} | {cell(row.get('torch_ms'), '.2f')} "
            f"| {row['r_difference']:.1e} | {row['kernel_orthogonality']:.2f} "
            f"| {row['tsqr_orthogonality']:.2f} |"
        )
    for row in (r for r in rows if r["op"] == "qr"):
        others = [(k[len("tsqr_leaf") : -len("_ms")], v) for k, v in row.items() if "_leaf" in k]
        if others:
            cells = ", ".join(f"{leaf} rows {ms:.2f}" for leaf, ms in others)
            lines.append(f"\nn = {row['n']}, TSQR with leaves of at most {cells} ms")
    lines += [
        "",
        f"Panel alone (r x {WIDTH}, with V and T); launches per panel as MLX's TF32 default "
        "(products split) / float32 products:",
        "",
        "| r | kernel ms | TSQR ms | kernel launches | TSQR launches |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in (r for r in rows if r["op"] == "panel"):
        lines.append(
            f"| {row['n']} | {row['kernel_ms']:.3f} | {row['tsqr_ms']:.3f} "
            f"| {row['kernel_launches_tf32']} / {row['kernel_launches']} "
            f"| {row['tsqr_launches_tf32']} / {row['tsqr_launches']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--sizes", default="1024,2048,4096,8192")
    parser.add_argument("--panels", default="4096,8192", help="panel rows (x 32 columns)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--deadline", type=float, default=200.0)
    parser.add_argument(
        "--leaf-rows", default="", help="also time the QR with TSQR leaves of these rows (64,96)"
    )
    parser.add_argument("--cpu", action="store_true", help="smoke run: CPU, MLX-op blocks")
    args = parser.parse_args(argv)
    if args.cpu:
        mx.set_default_device(mx.cpu)
        blocks = REFERENCE
    elif mx.is_available(mx.gpu):
        mx.set_default_device(mx.gpu)
        blocks = KERNELS
    else:
        print("bench_qr_panel: no MLX GPU backend (--cpu for a smoke run)", file=sys.stderr)
        return 2
    info = machine(args.cpu, torch if HAS_TORCH else None, leaf_rows=tsqr.LEAF_ROWS, block=WIDTH)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def write() -> None:  # after every row, so a killed run keeps its rows
        (out / "qr_panel.json").write_text(
            json.dumps({"machine": info, "rows": rows}, indent=1) + "\n"
        )
        (out / "qr_panel.md").write_text(markdown(rows, info))

    rng = np.random.default_rng(0)
    leaf_rows = tuple(int(x) for x in args.leaf_rows.split(",") if x)
    start = time.perf_counter()
    jobs = [(panel_row, int(r)) for r in args.panels.split(",")]
    jobs += [(qr_row, int(n)) for n in args.sizes.split(",")]
    for job, size in jobs:
        if time.perf_counter() - start > args.deadline:
            print(f"bench_qr_panel: deadline reached before {job.__name__} {size}", flush=True)
            break
        rows.append(job(size, blocks, args.reps, rng, leaf_rows))
        print(json.dumps(rows[-1]), flush=True)
        write()
    print(markdown(rows, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
