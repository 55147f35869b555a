"""Benchmark the blocked large-matrix GPU algorithms of mlx_linalg (issue #7), same data.

Times the blocked graphs of ``mlx_linalg._gpu.blocked_*`` with the small-matrix kernels as
building blocks on one GPU for n = 256 ... 8192, float32, against mlx_linalg's CPU path
(LAPACK through SciPy, on the same machine) and, when importable with a CUDA device,
PyTorch and CuPy on the same matrices. The graphs run as the dispatch runs them
(``compiled_graphs.cached``: traced at a shape's second call, replayed after), or with
``--eager`` built anew at every call. The table ends with each op's crossover
(:func:`crossovers`): the smallest order from which the blocked graph beat the CPU path at
every order timed, what ``blocked_rules.CROSSOVER`` is set from.
Each row also gives DESIGN.md's accuracy ratio of the blocked result, computed on the GPU
with the float32-accurate split product (``mlx_linalg._precision.split_matmul``, float32
accumulation, so at large n it slightly overstates the error), and the normwise relative
difference from the CPU path's result.

Timing: the minimum over ``--reps`` runs after one warm-up (the warm-up also compiles the
kernels; for compiled graphs a second untimed run traces the graph), MLX to
``mx.synchronize()``, PyTorch/CuPy to a device synchronize. A column whose warm-up takes
more than ``--budget`` seconds twice (the first run also JIT-compiles the process's kernels)
is timed by those runs and not run at larger n. Sizes run smallest first, every op at each
size, and no row starts after ``--deadline`` seconds.
Writes ``blocked.json`` and ``blocked.md`` to ``--out`` (default docs/results) after every
row, naming the machine, and prints the table.

Each op is timed with every block size of ``--blocks`` (the outer block size of the
blocked loops; diagonal blocks above 64 are themselves blocked), to pick ``BLOCK``; an
entry ``BLOCK/LEAF`` also sets the leaf width of LU's and QR's recursive tall panels
(``none``: the whole panel in one kernel call), and is skipped for the other ops.

Usage: ``python tools/bench_blocked.py [--out DIR] [--sizes 256,1024] [--ops cholesky,solve]
[--blocks 64,128/16,128/none] [--batch 1] [--reps 3] [--budget 20] [--skip cpu,cupy]
[--eager]``; the crossovers as dispatched: ``--blocks default --skip cupy``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, cell, cuda_torch, mlx_sync, once_s, release_memory
from bench_timing import machine as gpu_machine

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mlx_linalg as la  # noqa: E402
from mlx_linalg import _precision  # noqa: E402
from mlx_linalg._gpu import (  # noqa: E402
    blocked_panel,
    blocked_rules,
    compiled_graphs,
)

torch = cuda_torch()  # the optional PyTorch peer
HAS_TORCH = torch is not None
try:
    import cupy

    HAS_CUPY = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # optional peer: ImportError, or CUDA errors without a device
    cupy = None
    HAS_CUPY = False

OPS = ("cholesky", "lu_factor", "solve", "inv", "solve_triangular", "cho_solve", "qr")
U32 = float(np.finfo(np.float32).eps) / 2
# Best of PyTorch 2.11 / CuPy / JAX on one H100, float32, ms (DESIGN.md).
PUBLISHED_PEER_MS = {
    ("qr", 1024): 4.6,
    ("qr", 4096): 29.2,
    ("qr", 8192): 96.1,
    ("cholesky", 1024): 0.42,
    ("cholesky", 4096): 1.93,
    ("cholesky", 8192): 8.8,
    ("solve", 1024): 2.75,
    ("solve", 4096): 18.7,
    ("solve", 8192): 67.7,
    ("inv", 1024): 2.69,
    ("inv", 4096): 18.5,
    ("inv", 8192): 67.2,
}


def _inputs(op: str, batch: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """float32 inputs: SPD for Cholesky, well-conditioned general or triangular matrices,
    n right-hand sides for the solves."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((batch, n, n)).astype(np.float32)
    if op in ("cholesky", "cho_solve"):
        a = a @ np.swapaxes(a, -1, -2) / n + np.eye(n, dtype=np.float32)
        if op == "cho_solve":
            a = np.linalg.cholesky(a.astype(np.float64))
    elif op == "solve_triangular":
        a = np.tril(a) / np.sqrt(n) + 1.5 * np.eye(n, dtype=np.float32)
    else:
        a = a / np.sqrt(n) + 2 * np.eye(n, dtype=np.float32)
    out = {"a": a.astype(np.float32)}
    if op in ("solve", "solve_triangular", "cho_solve"):
        out["b"] = rng.standard_normal((batch, n, n)).astype(np.float32)
    return out


LEAF_OPS = {"lu_factor", "solve", "inv", "qr"}  # recursive tall panels (``leaf=``)


def parse_config(text: str) -> tuple[int | None, int | None | str]:
    """``"128"`` -> (128, "default"); ``"128/16"`` -> (128, 16); ``"128/none"`` ->
    (128, None): the outer block and the recursive panel's leaf width; ``"default"`` ->
    (None, "default"): each op's own defaults (what the dispatcher runs)."""
    if text == "default":
        return None, "default"
    block, _, leaf = text.partition("/")
    if not leaf:
        return int(block), "default"
    return int(block), None if leaf == "none" else int(leaf)


_COMPILED: dict = {}  # blocked implementation -> its compiled_graphs.cached form


def _graph(impl, compiled: bool):
    """``impl`` as the dispatch runs it (``compiled_graphs.cached``, one wrapper per
    implementation for the whole run, so its traces are kept) or, if not ``compiled``,
    as it is (the graph built at every call)."""
    return _COMPILED.setdefault(impl, compiled_graphs.cached(impl)) if compiled else impl


def _blocked_call(op: str, x: dict, config: str, compiled: bool = True):
    block, leaf = parse_config(config)
    a, b = x["a"], x.get("b")
    k = {} if block is None else {"block": block}
    if leaf != "default" and op in LEAF_OPS:
        k["leaf"] = leaf
    impl = _graph(blocked_rules.RULES[op][1], compiled)  # the op's dispatched implementation
    calls = {
        "cholesky": lambda: impl(a, upper=False, **k)[0][0],
        "lu_factor": lambda: impl(a, **k)[0],
        "solve": lambda: impl(a, b, **k)[0][0],
        "inv": lambda: impl(a, **k)[0][0],
        "solve_triangular": lambda: impl(
            a, b, lower=True, unit_diagonal=False, trans=0, **k
        )[0][0],
        "cho_solve": lambda: impl(a, b, lower=True, **k)[0][0],
        "qr": lambda: impl(a, mode="reduced", **k)[0],
    }
    return calls[op]


def _cpu_call(op: str, x: dict):
    a, b, cpu = x["a"], x.get("b"), mx.cpu
    calls = {
        "cholesky": lambda: la.cholesky(a, stream=cpu),
        "lu_factor": lambda: tuple(la.lu_factor(a, stream=cpu)),
        "solve": lambda: la.solve(a, b, stream=cpu),
        "inv": lambda: la.inv(a, stream=cpu),
        "solve_triangular": lambda: la.solve_triangular(a, b, lower=True, stream=cpu),
        "cho_solve": lambda: la.cho_solve((a, True), b, stream=cpu),
        "qr": lambda: tuple(la.qr(a, stream=cpu)),
    }
    return calls[op]


def _torch_call(op: str, x: dict):
    a, b = x["a"], x.get("b")
    tl = torch.linalg
    calls = {
        "cholesky": lambda: tl.cholesky(a),
        "lu_factor": lambda: tl.lu_factor(a),
        "solve": lambda: tl.solve(a, b),
        "inv": lambda: tl.inv(a),
        "solve_triangular": lambda: tl.solve_triangular(a, b, upper=False),
        "cho_solve": lambda: torch.cholesky_solve(b, a),
        "qr": lambda: tl.qr(a),
    }
    return calls[op]


def _cupy_call(op: str, x: dict):
    a, b = x["a"], x.get("b")
    calls = {
        "cholesky": lambda: cupy.linalg.cholesky(a),
        "solve": lambda: cupy.linalg.solve(a, b),
        "inv": lambda: cupy.linalg.inv(a),
        "qr": lambda: cupy.linalg.qr(a),
    }
    return calls.get(op)


def _time(fn, sync, reps: int, budget: float, warmup: int = 0) -> tuple[float, object, bool]:
    """(best ms, last result, whether the warm-up took over ``budget`` seconds): the first
    run and ``warmup`` more untimed, then ``reps`` timed. A first run over the budget gets
    a second before the column counts as slow: the first call of a kernel in the process
    pays its JIT compilation (NVRTC on CUDA, seconds per kernel; an LU took 26 s at n = 256
    that way on an H200)."""
    first, out = once_s(fn, sync)
    if first > budget:
        second, out = once_s(fn, sync)
        if second > budget:
            return min(first, second) * 1e3, out, True
        warmup = max(warmup - 1, 0)
    best, out = best_ms(fn, sync, reps, warmup=warmup)
    return best, out, False


def _torch_sync(_) -> None:
    torch.cuda.synchronize()


def _cupy_sync(_) -> None:
    cupy.cuda.Device().synchronize()


def _fro(x: mx.array) -> mx.array:
    return mx.sqrt(mx.sum(x * x, axis=(-2, -1)))


def _accuracy(op: str, x: dict, out) -> float:
    """DESIGN.md's ratio for the blocked result, on the GPU with the split product."""
    a, b = x["a"], x.get("b")
    n = a.shape[-1]
    mm = _precision.split_matmul
    if op == "cholesky":
        value = _fro(mm(out, mx.swapaxes(out, -1, -2)) - a) / (n * _fro(a) * U32)
    elif op == "lu_factor":
        packed, piv = out
        lower = mx.tril(packed, -1) + mx.eye(n, dtype=a.dtype)
        perm = blocked_panel.permutation(piv.reshape(-1, n), n)
        pa = mx.take_along_axis(a.reshape(-1, n, n), perm[..., None], axis=1)
        value = _fro(pa - mm(lower, mx.triu(packed)).reshape(-1, n, n)) / (n * _fro(a) * U32)
    elif op == "qr":
        q, r = out
        factor = _fro(a - mm(q, r)) / (n * _fro(a) * U32)
        gram = mm(mx.swapaxes(q, -1, -2), q)
        value = mx.maximum(factor, _fro(mx.eye(n) - gram) / (n * U32))
    elif op == "inv":
        value = _fro(mx.eye(n) - mm(out, a)) / (n * _fro(a) * _fro(out) * U32)
    else:
        op_a = a if op != "cho_solve" else mm(a, mx.swapaxes(a, -1, -2))
        value = _fro(b - mm(op_a, out)) / (_fro(op_a) * _fro(out) * U32)
    return float(mx.max(value).item())


def _rel_diff(ours, theirs) -> float:
    """Normwise relative difference of the first outputs (for QR: of |R|, sign-free)."""
    if isinstance(ours, tuple) and len(ours) == 2 and ours[1].ndim == ours[0].ndim:
        ours, theirs = (mx.abs(ours[1]),), (mx.abs(theirs[1]),)
    o = np.asarray(ours[0] if isinstance(ours, tuple) else ours, dtype=np.float64)
    t = np.asarray(theirs[0] if isinstance(theirs, tuple) else theirs, dtype=np.float64)
    return float(np.linalg.norm(o - t) / max(np.linalg.norm(t), np.finfo(np.float32).tiny))


def machine() -> dict:
    info = gpu_machine(False, torch)
    if HAS_CUPY:
        info["cupy"] = cupy.__version__
    return info


def run(
    ops: list[str],
    sizes: list[int],
    blocks: list[str],
    batch: int,
    reps: int,
    budget: float,
    deadline: float,
    on_row,
    skip: frozenset = frozenset(),
    compiled: bool = True,
) -> list[dict]:
    """Rows for every (n, op), smallest n first; none started after ``deadline`` seconds."""
    rows = []
    start = time.perf_counter()
    # columns not run: those in ``skip``, and those that ran over the budget (at larger n)
    skipped = {op: set(skip) for op in ops}
    for n in sizes:
        for op in ops:
            if time.perf_counter() - start > deadline:
                print(f"bench_blocked: deadline reached, {op} n={n} not run", flush=True)
                continue
            over = skipped[op]
            data = _inputs(op, batch, n, seed=n)
            gpu = {k: mx.array(v) for k, v in data.items()}
            mx.eval(gpu)
            row = {"op": op, "batch": batch, "n": n}
            row["published_peer_ms"] = PUBLISHED_PEER_MS.get((op, n)) if batch == 1 else None
            blocked = None
            for block in blocks:
                key = f"blocked_{block}"
                if key in over or ("/" in block and op not in LEAF_OPS):
                    continue
                fn = _blocked_call(op, gpu, block, compiled)
                ms, blocked, slow = _time(fn, mlx_sync, reps, budget, warmup=int(compiled))
                row[f"{key}_ms"] = round(ms, 3)
                row[f"{key}_ratio"] = round(_accuracy(op, gpu, blocked), 3)
                over |= {key} if slow else set()
            if "cpu" not in over:
                ms, cpu_out, slow = _time(_cpu_call(op, data), mlx_sync, min(reps, 2), budget)
                row["cpu_ms"] = round(ms, 3)
                if blocked is not None:
                    row["rel_diff_cpu"] = _rel_diff(blocked, cpu_out)
                over |= {"cpu"} if slow else set()
            if HAS_TORCH and "torch" not in over:
                tdata = {k: torch.from_numpy(v).cuda() for k, v in data.items()}
                ms, _, slow = _time(_torch_call(op, tdata), _torch_sync, reps, budget)
                row["torch_ms"] = round(ms, 3)
                over |= {"torch"} if slow else set()
            if HAS_CUPY and _cupy_call(op, data) is not None and "cupy" not in over:
                cdata = {k: cupy.asarray(v) for k, v in data.items()}
                ms, _, slow = _time(_cupy_call(op, cdata), _cupy_sync, reps, budget)
                row["cupy_ms"] = round(ms, 3)
                over |= {"cupy"} if slow else set()
            rows.append(row)
            print(json.dumps(row), flush=True)
            on_row(rows)
            gpu = blocked = cpu_out = tdata = cdata = None  # the row's arrays, then the caches
            release_memory(torch)
    return rows


def crossovers(rows: list[dict], block: str) -> dict[str, int | None]:
    """Per op, the smallest n from which the blocked graph (config ``block``) took less
    time than the CPU path at every n timed with both (batch 1); None where it lost at the
    largest such n, or no n had both."""
    result: dict[str, int | None] = {}
    for op in dict.fromkeys(r["op"] for r in rows):
        timed = sorted(
            (r["n"], r[f"blocked_{block}_ms"] < r["cpu_ms"])
            for r in rows
            if r["op"] == op
            and r["batch"] == 1
            and f"blocked_{block}_ms" in r
            and "cpu_ms" in r
        )
        found = None
        for n, wins in reversed(timed):
            if not wins:
                break
            found = n
        result[op] = found
    return result


def markdown(rows: list[dict], info: dict, blocks: list[str], compiled: bool = True) -> str:
    blocked_heads = "".join(f"block {b} (ms) | ratio | " for b in blocks)
    graphs = (
        "compiled graphs (as dispatched: traced once per shape, then replayed)"
        if compiled
        else "eager graphs (built at every call)"
    )
    lines = [
        "# Blocked large-matrix algorithms (issue #7)",
        "",
        f"GPU: {info.get('gpu', 'unknown')}; MLX {info['mlx']}; TF32 detected: "
        f"{info['tf32_detected']}; PyTorch {info.get('torch', 'n/a')}; CuPy "
        f"{info.get('cupy', 'n/a')}. float32, {graphs}, minimum of the timed runs after "
        "one warm-up. "
        "CPU = mlx_linalg's LAPACK path on the same machine. ratio = DESIGN.md's metric "
        "(threshold 30). peer = DESIGN.md's best published H100 time.",
        "",
        f"| op | batch x n | {blocked_heads}CPU (ms) | PyTorch (ms) | CuPy (ms) | "
        "peer (ms) | rel. diff vs CPU |",
        "|" + " --- |" * (7 + 2 * len(blocks)),
    ]
    for r in rows:
        cells = [
            r["op"],
            f"{r['batch']}x{r['n']}",
            *(
                cell(r.get(f"blocked_{b}_{part}"), spec)
                for b in blocks
                for part, spec in (("ms", ".3f"), ("ratio", ".2f"))
            ),
            cell(r.get("cpu_ms"), ".1f"),
            cell(r.get("torch_ms"), ".3f"),
            cell(r.get("cupy_ms"), ".3f"),
            cell(r.get("published_peer_ms"), ""),
            cell(r.get("rel_diff_cpu"), ".1e"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    found = crossovers(rows, blocks[0])
    if any(n is not None for n in found.values()):
        lines += [
            "",
            f"Crossovers (block {blocks[0]}: the smallest n from which it beat the CPU path "
            "at every n timed): "
            + ", ".join(f"{op} {'-' if n is None else n}" for op, n in found.items())
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--sizes", default="256,512,1024,2048,4096,8192")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument(
        "--blocks",
        default="64,128,256",
        help="outer block sizes to time; BLOCK/LEAF (a leaf width, or none: one panel "
        "kernel call per block) sets the recursive panel's leaves of LU and QR; default: "
        "each op's own defaults",
    )
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument(
        "--skip", default="", help="comparison columns not to time: cpu, torch, cupy"
    )
    parser.add_argument(
        "--deadline", type=float, default=400.0, help="start no row after this many seconds"
    )
    parser.add_argument(
        "--eager", action="store_true", help="build each graph at every call (not replayed)"
    )
    args = parser.parse_args(argv)
    if not mx.is_available(mx.gpu):
        print("bench_blocked: no MLX GPU backend", file=sys.stderr)
        return 2
    mx.set_default_device(mx.gpu)
    info = machine()
    sizes = [int(s) for s in args.sizes.split(",")]
    blocks = args.blocks.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def write(rows: list[dict]) -> None:  # after every row, so a killed run keeps its rows
        (out / "blocked.json").write_text(
            json.dumps({"machine": info, "rows": rows}, indent=1) + "\n"
        )
        (out / "blocked.md").write_text(markdown(rows, info, blocks, not args.eager))

    ops = args.ops.split(",")
    skip = frozenset(filter(None, args.skip.split(",")))
    rows = run(
        ops,
        sizes,
        blocks,
        args.batch,
        args.reps,
        args.budget,
        args.deadline,
        write,
        skip,
        compiled=not args.eager,
    )
    write(rows)
    print(markdown(rows, info, blocks, not args.eager))
    return 0


if __name__ == "__main__":
    sys.exit(main())
