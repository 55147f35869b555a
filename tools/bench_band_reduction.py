"""Benchmark the two-stage tridiagonal reduction (issue #8): stage 1 ``band_reduction.sy2sb``
(dense symmetric to band, float32), stage 2, the eigenvalues and eigenvectors, against
``torch.linalg.eigh`` and ``eigvalsh`` on the same matrices.

Times ``sy2sb`` (the band matrix and the reflectors' V and T) at n = 1024 ... 8192 for each
band width in ``--bands``, and ``apply_q`` on an n x n block (the back-transformation of
stage 1, as the eigenvectors will need it), on symmetric Gaussian matrices; for scale,
``torch.linalg.eigh`` (cuSOLVER's syevd: the whole eigendecomposition) where PyTorch with
CUDA is importable. On a GPU, for bands up to ``band_chase.MAX_BAND``, also stage 2
(``band_chase.band_to_tridiagonal`` on the band matrix), the bisection
(``tridiagonal.tridiagonal_eigenvalues`` on its result) and the whole eigenvalue route
(``two_stage.eigvalsh``, from the dense matrix), against ``torch.linalg.eigvalsh``; rows
up to ``--check-max`` give the route's eigenvalue error max|λ − λ₆₄|/(n u ‖A‖₂) against
``numpy.linalg.eigvalsh`` in float64. Rows up to ``--check-max`` also give the similarity ratio
‖QᵀAQ − Band‖_F/(n‖A‖_F u) (Q applied by ``apply_q``, split products) and whether the band
is zero outside the band. Launches per block column are counted without running anything
(the method of tools/count_launches.py: the lazy graph exported, building blocks as
one-launch stand-ins), as on an H100 (TF32 products split, split operands and narrow
updates one kernel launch each), the same with the splits formed by MLX ops, and with
float32 products, on one n x n matrix (n = ``--count-n``), total divided by the block
columns.

Timing: the minimum over ``--reps`` runs after one warm-up, to ``mx.synchronize()``
(PyTorch: ``torch.cuda.synchronize()``); no row starts after ``--deadline`` seconds.
Writes ``band_reduction.json`` and ``band_reduction.md`` to ``--out`` after every row.

Usage: ``python tools/bench_band_reduction.py [--out DIR] [--sizes 1024,2048,4096,8192]
[--bands 32,64] [--reps 3] [--deadline 200] [--check-max 4096] [--simdgroups 8,16,32]
[--cpu]`` (``--cpu``: a
smoke run on the CPU with the MLX-op building blocks, e.g. ``--cpu --sizes 200 --bands 16,32
--reps 1 --count-n 200``).
"""

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, cell, cuda_torch, machine, mx_sync, release_memory, table_head
from count_launches import (
    evaluation_deferred,
    gpu_stubbed,
    graph_counts,
    stubs,
    tf32,
    tsqr_stubbed,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mlx_linalg  # noqa: E402
from mlx_linalg._gpu import (  # noqa: E402
    band_chase,
    band_q_blocks,
    band_reduction,
    blocked_qr,
    tridiagonal,
    tridiagonal_dc,
    two_stage,
)
from mlx_linalg._gpu.blocked_common import KERNELS, REFERENCE  # noqa: E402

torch = cuda_torch()  # the optional PyTorch peer
HAS_TORCH = torch is not None

U32 = float(np.finfo(np.float32).eps) / 2


def _constant(shape: tuple) -> mx.array:
    return mx.array(np.zeros(shape, dtype=np.float32))


def count(n: int, band: int, *, split: bool, gpu: bool = False) -> dict:
    """Launches of ``sy2sb`` on one (1, n, n) float32 matrix with the GPU's building blocks
    (``KERNELS``, TSQR panels where they apply), per block column: building-block calls
    (one launch each) plus the graph's launches (Concatenate inputs counted as copies).
    ``gpu`` (with ``split``): as on a GPU that splits float32 products, split operands and
    narrow updates one launch each (count_launches' ``gpu_stubbed``)."""
    calls = collections.Counter()
    with tf32(split), tsqr_stubbed(calls), gpu_stubbed(calls, gpu), evaluation_deferred():
        banded, reflectors = band_reduction.sy2sb(
            _constant((1, n, n)), band=band, blocks=stubs(calls)
        )
        outputs = [banded] + [x for r in reflectors for x in (r.v, r.t)]
        _, launches = graph_counts(outputs)
    columns = max(len(reflectors), 1)
    total = launches + sum(calls.values())
    return {
        "launches": total,
        "per_column": total / columns,
        "columns": len(reflectors),
        "calls_per_column": {k: v / columns for k, v in calls.items()},
    }


def _symmetric(rng, n: int) -> np.ndarray:
    a = rng.standard_normal((1, n, n)).astype(np.float32)
    return (a + np.swapaxes(a, -1, -2)) / 2


def _similarity_ratio(a: mx.array, banded: mx.array, reflectors) -> float:
    """‖QᵀAQ − Band‖_F/(n‖A‖_F u): QᵀA by apply_q, then Qᵀ(QᵀA)ᵀ = QᵀAQ (A symmetric)."""
    n = a.shape[-1]
    qta = band_reduction.apply_q(reflectors, a, transpose=True)
    similar = band_reduction.apply_q(reflectors, mx.swapaxes(qta, -1, -2), transpose=True)
    residual = mx.linalg.norm((similar - banded)[0]) / mx.linalg.norm(a[0])
    return float(residual) / (n * U32)


def _eigenvalue_route(
    out: dict,
    a_np,
    a,
    banded,
    band: int,
    reps: int,
    check: bool,
    simdgroups: list[int],
    cpu_max: int,
) -> None:
    """Times (ms) of stage 2 (also with each of ``simdgroups`` per threadgroup), the
    bisection, the whole eigenvalue route and the eigh route into ``out``, with the
    routes' peak memory (GB), the eigenvalue error in units of n u ‖A‖₂ and eigh's
    ‖I − ZᵀZ‖/(n u) and ‖AZ − ZΛ‖/(n u ‖A‖₂) when ``check``, PyTorch's eigvalsh, the
    eigh route's divide and conquer and stage-2 back-transformation alone, and
    ``mlx_linalg.eigvalsh`` and ``eigh`` on the CPU path (up to n = ``cpu_max``, one run
    after a warm-up) and as dispatched (three calls)."""
    n = a.shape[-1]
    out["stage2_ms"], (d, e) = best_ms(
        lambda: band_chase.band_to_tridiagonal(banded, band), mx_sync, reps, warmup=1
    )
    default = band_chase.SIMDGROUPS
    by_simdgroups = {}
    try:
        for count in simdgroups:
            band_chase.SIMDGROUPS = count
            try:
                by_simdgroups[str(count)], _ = best_ms(
                    lambda: band_chase.band_to_tridiagonal(banded, band), mx_sync, reps, warmup=1
                )
            except RuntimeError as error:  # too many threads for the kernel's registers
                print(f"stage 2 with {count} simdgroups: {error}", file=sys.stderr)
    finally:
        band_chase.SIMDGROUPS = default
    if by_simdgroups:
        out["stage2_ms_by_simdgroups"] = by_simdgroups
    out["bisection_ms"], _ = best_ms(
        lambda: tridiagonal.tridiagonal_eigenvalues(d, e), mx_sync, reps, warmup=1
    )
    mx.reset_peak_memory()
    out["eigvalsh_ms"], w = best_ms(
        lambda: two_stage.eigvalsh(a, band=band), mx_sync, reps, warmup=1
    )
    out["eigvalsh_peak_gb"] = mx.get_peak_memory() / 1e9
    if check:
        a64 = a_np[0].astype(np.float64)
        exact = np.linalg.eigvalsh(a64)
        error = np.max(np.abs(np.array(w[0], dtype=np.float64) - exact))
        out["eigenvalue_error"] = error / (n * U32 * np.linalg.norm(a64, 2))
    if HAS_TORCH:
        at = torch.from_numpy(a_np[0]).cuda()
        out["torch_eigvalsh_ms"], _ = best_ms(
            lambda: torch.linalg.eigvalsh(at), lambda _: torch.cuda.synchronize(), reps, warmup=1
        )
    mx.reset_peak_memory()
    out["eigh_ms"], (w, z) = best_ms(lambda: two_stage.eigh(a, band=band), mx_sync, reps, warmup=1)
    out["eigh_peak_gb"] = mx.get_peak_memory() / 1e9
    if check:
        a64 = a_np[0].astype(np.float64)
        w, z = np.array(w[0], dtype=np.float64), np.array(z[0], dtype=np.float64)
        out["eigh_orthogonality"] = np.linalg.norm(np.eye(n) - z.T @ z) / (n * U32)
        residual = np.linalg.norm(a64 @ z - z * w) / np.linalg.norm(a64, 2)
        out["eigh_residual"] = residual / (n * U32)
    d, e, kept = band_chase.band_to_tridiagonal_q(banded, band)
    mx.eval(d, e, kept)
    out["dc_ms"], (_, z_t) = best_ms(
        lambda: tridiagonal_dc.eigh_tridiagonal(d, e), mx_sync, reps, warmup=1
    )
    if n <= band_chase.APPLY_ORDERS[-1]:  # the kernel holds a vector in threadgroup memory
        out["apply_band_q_ms"], _ = best_ms(
            lambda: band_chase.apply_band_q(kept, z_t), mx_sync, reps, warmup=1
        )
    for group in (32, 64):
        out[f"apply_band_q_blocks_{group}_ms"], _ = best_ms(
            lambda group=group: band_q_blocks.apply_band_q_blocks(kept, z_t, group=group),
            mx_sync,
            reps,
            warmup=1,
        )
    for name in ("eigvalsh", "eigh"):
        op = getattr(mlx_linalg, name)
        if n <= cpu_max:  # LAPACK on the host, the path below the crossover
            out[f"cpu_{name}_ms"], _ = best_ms(
                lambda op=op: op(a, stream=mx.cpu), mx_sync, 1, warmup=1
            )
        # As dispatched, three calls (the first compiles what the process has not yet).
        out[f"dispatched_{name}_calls_ms"] = [
            best_ms(lambda op=op: op(a), mx_sync, 1, warmup=0)[0] for _ in range(3)
        ]


def row(
    n: int,
    band: int,
    blocks,
    reps: int,
    rng,
    check_max: int,
    simdgroups: list[int] | None = None,
    cpu_max: int = 0,
) -> dict:
    """Times (ms) of sy2sb and apply_q at one (n, band), PyTorch's eigh, and on a GPU the
    eigenvalue route (:func:`_eigenvalue_route`)."""
    a_np = _symmetric(rng, n)
    a = mx.array(a_np)
    out = {"n": n, "band": band}

    def reduce():
        banded, reflectors = band_reduction.sy2sb(a, band=band, blocks=blocks)
        return [banded] + [x for r in reflectors for x in (r.v, r.t)]

    out["sy2sb_ms"], _ = best_ms(reduce, mx_sync, reps, warmup=1)
    banded, reflectors = band_reduction.sy2sb(a, band=band, blocks=blocks)
    mx.eval(banded, [(r.v, r.t) for r in reflectors])
    c = mx.array(rng.standard_normal((1, n, n)).astype(np.float32))
    out["apply_q_ms"], _ = best_ms(
        lambda: band_reduction.apply_q(reflectors, c), mx_sync, reps, warmup=1
    )
    if n <= check_max:
        out["similarity_ratio"] = _similarity_ratio(a, banded, reflectors)
        rows, cols = np.indices((n, n))
        outside = mx.array(np.abs(rows - cols) > band)
        out["zero_outside_band"] = bool(mx.all(mx.where(outside, banded[0], 0.0) == 0))
    if HAS_TORCH and blocks is KERNELS:
        at = torch.from_numpy(a_np[0]).cuda()
        out["torch_eigh_ms"], _ = best_ms(
            lambda: torch.linalg.eigh(at), lambda _: torch.cuda.synchronize(), reps, warmup=1
        )
    if blocks is KERNELS and band <= band_chase.MAX_BAND:
        _eigenvalue_route(
            out, a_np, a, banded, band, reps, n <= check_max, simdgroups or [], cpu_max
        )
    return out


def _calls(times: list[float] | None) -> str:
    return " / ".join(f"{t:.1f}" for t in times) if times else ""


def markdown(rows: list[dict], counts: list[dict], info: dict) -> str:
    lines = table_head(
        "Two-stage tridiagonal reduction, stage 1: sy2sb (dense to band, float32, ms, "
        "min over runs)",
        info,
        ["n", "band", "sy2sb", "apply_q (n x n)", "torch eigh (all of it)", "sy2sb / eigh"]
        + ["‖QᵀAQ−B‖/(n‖A‖u)", "zero outside"],
    )
    for r in rows:
        ratio = r["sy2sb_ms"] / r["torch_eigh_ms"] if "torch_eigh_ms" in r else None
        lines.append(
            f"| {r['n']} | {r['band']} | {r['sy2sb_ms']:.2f} | {r['apply_q_ms']:.2f} "
            f"| {cell(r.get('torch_eigh_ms'), '.2f')} | {cell(ratio, '.2f')} "
            f"| {cell(r.get('similarity_ratio'), '.3f')} | {r.get('zero_outside_band', '')} |"
        )
    routes = [r for r in rows if "eigvalsh_ms" in r]
    if routes:
        lines += [
            "",
            "Eigenvalues and eigenvectors (float32, ms): stage 2 (band to tridiagonal), "
            "bisection, the whole eigenvalue route from the dense matrix "
            "(`two_stage.eigvalsh`), PyTorch's eigvalsh, error max|λ − λ₆₄|/(n u ‖A‖₂); "
            "the eigh route (`two_stage.eigh`: divide and conquer, both back-transformations) "
            "against PyTorch's eigh, with its orthogonality and residual; both routes' peak "
            "memory (GB); the eigh route's divide and conquer and stage-2 "
            "back-transformation alone; `mlx_linalg.eigvalsh` / `eigh` on the CPU path "
            "(LAPACK, one run after a warm-up) and as dispatched (three calls):",
            "",
            "| n | band | stage 2 | bisection | eigvalsh (all) | torch eigvalsh | ours / torch "
            "| error | stage 2 by simdgroups | eigh (all) | torch eigh | ours / torch "
            "| ‖I−ZᵀZ‖/(nu) | ‖AZ−ZΛ‖/(nu‖A‖) | peak GB | D&C | Q₂ Z (kernel / blocks of 32 "
            "/ 64) | CPU path "
            "| dispatched eigvalsh | dispatched eigh |",
            "|" + " --- |" * 20,
        ]
        for r in routes:
            torch_ms = r.get("torch_eigvalsh_ms")
            ratio = r["eigvalsh_ms"] / torch_ms if torch_ms else None
            torch_eigh = r.get("torch_eigh_ms")
            eigh_ratio = r["eigh_ms"] / torch_eigh if torch_eigh and "eigh_ms" in r else None
            by = r.get("stage2_ms_by_simdgroups", {})
            lines.append(
                f"| {r['n']} | {r['band']} | {r['stage2_ms']:.2f} | {r['bisection_ms']:.2f} "
                f"| {r['eigvalsh_ms']:.2f} | {cell(torch_ms, '.2f')} | {cell(ratio, '.2f')} "
                f"| {cell(r.get('eigenvalue_error'), '.3f')} "
                f"| {', '.join(f'{k}: {v:.2f}' for k, v in by.items())} "
                f"| {cell(r.get('eigh_ms'), '.2f')} | {cell(torch_eigh, '.2f')} "
                f"| {cell(eigh_ratio, '.2f')} | {cell(r.get('eigh_orthogonality'), '.3f')} "
                f"| {cell(r.get('eigh_residual'), '.3f')} "
                f"| {cell(r.get('eigvalsh_peak_gb'), '.2f')} / "
                f"{cell(r.get('eigh_peak_gb'), '.2f')} "
                f"| {cell(r.get('dc_ms'), '.1f')} | {cell(r.get('apply_band_q_ms'), '.1f')} / "
                f"{cell(r.get('apply_band_q_blocks_32_ms'), '.1f')} / "
                f"{cell(r.get('apply_band_q_blocks_64_ms'), '.1f')} "
                f"| {cell(r.get('cpu_eigvalsh_ms'), '.1f')} / {cell(r.get('cpu_eigh_ms'), '.1f')} "
                f"| {_calls(r.get('dispatched_eigvalsh_calls_ms'))} "
                f"| {_calls(r.get('dispatched_eigh_calls_ms'))} |"
            )
    lines += [
        "",
        "Launches per block column (total / block columns): as on a GPU that splits float32 "
        "products (split operands and narrow updates one kernel launch each) / the same split "
        "products formed by MLX ops / float32 products:",
        "",
        "| n | band | block columns | launches per column | building blocks per column |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in counts:
        calls = ", ".join(f"{k} {v:.1f}" for k, v in sorted(c["calls_per_column"].items()))
        lines.append(
            f"| {c['n']} | {c['band']} | {c['columns']} | {c['per_column_gpu']:.1f} / "
            f"{c['per_column_tf32']:.1f} / {c['per_column']:.1f} | {calls} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--sizes", default="1024,2048,4096,8192")
    parser.add_argument("--bands", default="32,64")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=200.0)
    parser.add_argument("--check-max", type=int, default=4096, help="largest n checked")
    parser.add_argument(
        "--cpu-max", type=int, default=4096, help="largest n of the CPU path's eigh timed"
    )
    parser.add_argument("--count-n", type=int, default=1024, help="n of the launch count")
    parser.add_argument("--cpu", action="store_true", help="smoke run: CPU, MLX-op blocks")
    parser.add_argument(
        "--simdgroups", default="", help="stage 2 also timed with these threadgroup sizes: 8,16,32"
    )
    args = parser.parse_args(argv)
    bands = [int(b) for b in args.bands.split(",")]
    simdgroups = [int(s) for s in args.simdgroups.split(",") if s]
    counts = []
    for band in bands:  # before any device work: the graph is built on the CPU
        split, plain = (count(args.count_n, band, split=s) for s in (True, False))
        gpu = count(args.count_n, band, split=True, gpu=True)
        counts.append(
            {
                **plain,
                "n": args.count_n,
                "band": band,
                "per_column_tf32": split["per_column"],
                "per_column_gpu": gpu["per_column"],
            }
        )
        print(json.dumps(counts[-1]), flush=True)
    if args.cpu:
        mx.set_default_device(mx.cpu)
        blocks = REFERENCE
    elif mx.is_available(mx.gpu):
        mx.set_default_device(mx.gpu)
        blocks = KERNELS
        # PyTorch shares the GPU: MLX's limit bounds its active memory and cache (and how
        # far its evaluation runs ahead); half, as benchmarks/peers.py caps it.
        mx.set_memory_limit(mx.get_memory_limit() // 2)
    else:
        print("bench_band_reduction: no MLX GPU backend (--cpu for a smoke run)", file=sys.stderr)
        return 2
    info = machine(args.cpu, torch if HAS_TORCH else None, panel=blocked_qr.PANEL)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def write() -> None:  # after every row, so a killed run keeps its rows
        (out / "band_reduction.json").write_text(
            json.dumps({"machine": info, "rows": rows, "launches": counts}, indent=1) + "\n"
        )
        (out / "band_reduction.md").write_text(markdown(rows, counts, info))

    write()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for n in (int(s) for s in args.sizes.split(",")):
        for band in bands:
            if time.perf_counter() - start > args.deadline:
                print(f"bench_band_reduction: deadline reached before n={n} band={band}")
                break
            rows.append(
                row(n, band, blocks, args.reps, rng, args.check_max, simdgroups, args.cpu_max)
            )
            print(json.dumps(rows[-1]), flush=True)
            write()
            release_memory(torch)
    print(markdown(rows, counts, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
