"""Benchmark the dispatched tall-skinny QR and SVD of mlx_linalg (``mlx_linalg._gpu.tall_rules``)
against the paths they replace and the peers, to set the rules' thresholds.

For M x N float32 matrices with N in ``--cols`` and M = r·N for r in ``--ratios`` (M·N capped
by ``--max-elements``), on the GPU:

* QR (reduced): the tall rule (``tall_rules.qr``: CholeskyQR2, Householder fallback with one
  host read), the same on rank-deficient input (a repeated column: every matrix takes the
  fallback, the rule's worst case), the blocked Householder QR (``blocked_qr.qr``), the small
  kernel (``small_spectral.qr``) where it applies, mlx_linalg's CPU path (LAPACK on the CPU
  stream), ``torch.linalg.qr``, ``cupy.linalg.qr`` and ``jnp.linalg.qr``;
* SVD (N <= 64, the Jacobi kernel's limit on R): the tall rule (``tall_rules.svd``,
  reduced), its svdvals, the small Jacobi kernel where it applies, the CPU path, the peers'
  reduced ``svd``; and with ``full_matrices=True`` for M <= ``--full-max`` (the complete
  Householder QR, a T x T U) against the CPU path and ``torch.linalg.svd``.

Every call is timed directly (not through the dispatch, whose thresholds are what this sets).
Timing: the minimum over ``--repeat`` runs after one warm-up (which compiles the kernels),
each synchronized (MLX: ``mx.eval`` + ``mx.synchronize``; PyTorch/CuPy: a device
synchronize; JAX: ``block_until_ready``). A column whose warm-up takes longer than
``--budget`` s is timed by that one run and not run for larger M at that N. No row starts
after ``--deadline`` s. Accuracy (DESIGN.md's QR ratio and the largest SVD ratio, float64
NumPy) for M·N <= ``--check-max``. Writes ``bench_tall.json`` and ``bench_tall.md`` to
``--out`` after every row, naming the machine, then prints the table and the thresholds the
timings suggest (``suggest``).

``--device cpu`` is a smoke run without a GPU: the graphs run with their MLX-op building
blocks (``tall_skinny.REFERENCE``, ``blocked_common.REFERENCE``, the Jacobi kernels' MLX-op
references) on the CPU; its timings say nothing about the GPU.

Usage: ``python tools/bench_tall.py --out DIR [--cols 16,32,64,128,256,512]
[--ratios 2,4,8,16,64,256,1024] [--max-elements 16777216] [--full-max 4096] [--repeat 3]
[--budget 10] [--deadline 180] [--peers torch,cupy,jax] [--skip-peers]
[--device gpu|cpu]``.
"""

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, cell, mlx_sync, once_s

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mlx_linalg as la  # noqa: E402
from mlx_linalg import _precision  # noqa: E402
from mlx_linalg._gpu import (  # noqa: E402
    blocked_common,
    blocked_qr,
    reference_spectral,
    small_spectral,
    tall_rules,
    tall_skinny,
)

U32 = float(np.finfo(np.float32).eps) / 2
QR_COLUMNS = ("tall", "tall_fallback", "blocked", "small", "cpu", "torch", "cupy", "jax")
SVD_COLUMNS = ("tall", "tall_svdvals", "small", "cpu", "torch", "cupy", "jax")
FULL_COLUMNS = ("tall", "cpu", "torch")


class Setup:
    """The building blocks and the synchronization of one device."""

    def __init__(self, device: str):
        self.device = device
        gpu = device == "gpu"
        self.factor = tall_skinny.KERNELS if gpu else tall_skinny.REFERENCE
        self.blocks = blocked_common.KERNELS if gpu else blocked_common.REFERENCE
        if not gpu:  # the Jacobi launches replaced by their MLX-op references
            sweeps = small_spectral.MAX_SWEEPS
            small_spectral.jacobi_svd = functools.partial(
                reference_spectral.jacobi_svd, max_sweeps=sweeps
            )
            small_spectral.jacobi_svd_simd = functools.partial(
                reference_spectral.jacobi_svd_simd, max_sweeps=sweeps
            )
            small_spectral.qr_small = reference_spectral.qr_small


def _peers(wanted: set) -> dict:
    """Those of PyTorch, CuPy and JAX in ``wanted`` that are importable with a GPU."""
    peers: dict = {}
    if "torch" in wanted:
        _import_torch(peers)
    if "cupy" in wanted:
        _import_cupy(peers)
    if "jax" in wanted:
        _import_jax(peers)
    return peers


def _import_torch(peers: dict) -> None:
    try:
        import torch

        if torch.cuda.is_available():
            peers["torch"] = torch
    except ImportError:
        pass


def _import_cupy(peers: dict) -> None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            peers["cupy"] = cupy
    except Exception:  # ImportError, or CUDA errors without a device
        pass


def _import_jax(peers: dict) -> None:
    # JAX would otherwise take most of the GPU memory at its first use.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import jax

        if any(d.platform == "gpu" for d in jax.devices()):
            jax.config.update("jax_default_matmul_precision", "highest")
            peers["jax"] = jax
    except Exception:  # ImportError, or no GPU backend
        pass


def _peer_calls(peers: dict, a: np.ndarray, op: str, full: bool = False) -> dict:
    """name -> (fn, sync, to_numpy) of each peer's qr or svd of ``a``."""
    calls = {}
    if "torch" in peers:
        torch = peers["torch"]
        t = torch.from_numpy(a).cuda()
        fn = (
            (lambda: torch.linalg.qr(t))
            if op == "qr"
            else (lambda: torch.linalg.svd(t, full_matrices=full))
        )
        calls["torch"] = (
            fn,
            lambda o: torch.cuda.synchronize(),
            lambda o: [x.cpu().numpy() for x in o],
        )
    if "cupy" in peers and not full:
        cp = peers["cupy"]
        c = cp.asarray(a)
        fn = (
            (lambda: cp.linalg.qr(c))
            if op == "qr"
            else (lambda: cp.linalg.svd(c, full_matrices=False))
        )
        calls["cupy"] = (
            fn,
            lambda o: cp.cuda.Device().synchronize(),
            lambda o: [cp.asnumpy(x) for x in o],
        )
    if "jax" in peers and not full:
        jax = peers["jax"]
        j = jax.device_put(a)
        if op == "qr":
            jfn = jax.jit(jax.numpy.linalg.qr)
        else:
            jfn = jax.jit(lambda x: jax.numpy.linalg.svd(x, full_matrices=False))
        calls["jax"] = (lambda: jfn(j), jax.block_until_ready, lambda o: [np.asarray(x) for x in o])
    return calls


def qr_ratio(a: np.ndarray, q, r) -> float:
    """max(‖A − QR‖/(m‖A‖u), ‖I − QᵀQ‖/(m u)), float64."""
    a, q, r = (np.asarray(x, dtype=np.float64) for x in (a, q, r))
    m = a.shape[-2]
    back = np.linalg.norm(a - q @ r) / (m * np.linalg.norm(a) * U32)
    orth = np.linalg.norm(q.T @ q - np.eye(q.shape[-1])) / (m * U32)
    return float(max(back, orth))


def svd_ratio(a: np.ndarray, u, s, vh) -> float:
    """The largest of DESIGN.md's three SVD ratios, float64 (reduced or full factors)."""
    a, u, s, vh = (np.asarray(x, dtype=np.float64) for x in (a, u, s, vh))
    m, n = a.shape[-2:]
    k = min(m, n)
    back = np.linalg.norm(a - (u[:, :k] * s) @ vh[:k]) / (max(m, n) * np.linalg.norm(a) * U32)
    orth_u = np.linalg.norm(u.T @ u - np.eye(u.shape[-1])) / (m * U32)
    orth_v = np.linalg.norm(vh @ vh.T - np.eye(vh.shape[0])) / (n * U32)
    return float(max(back, orth_u, orth_v))


def _inputs(m: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian m x n float32 matrix (κ small) and a rank-deficient copy (a repeated
    column, so CholeskyQR2 fails and the Householder fallback runs)."""
    a = np.random.default_rng(seed).standard_normal((m, n)).astype(np.float32)
    deficient = a.copy()
    if n > 1:
        deficient[:, -1] = deficient[:, 0]
    else:
        deficient[:] = 0
    return a, deficient


class Runner:
    """Times the columns of each row, dropping a column at larger M once it ran over budget."""

    def __init__(self, args, setup: Setup, peers: dict):
        self.args, self.setup, self.peers = args, setup, peers
        self.over: set = set()  # (table, column, n)

    def time(self, row: dict, table: str, column: str, n: int, fn, sync, check=None) -> None:
        key = (table, column, n)
        if key in self.over:
            return
        try:
            first, out = once_s(fn, sync)
            if first > self.args.budget:
                ms = first * 1e3
                self.over.add(key)
            else:
                ms, out = best_ms(fn, sync, self.args.repeat, warmup=0)
        except Exception as error:  # out of memory, a peer's unsupported case: say so
            row[f"{column}_error"] = f"{type(error).__name__}: {str(error)[:120]}"
            self.over.add(key)
            return
        row[f"{column}_ms"] = round(ms, 3)
        if check is not None:
            row[f"{column}_ratio"] = round(check(out), 3)


def qr_row(runner: Runner, m: int, n: int) -> dict:
    setup, args = runner.setup, runner.args
    a, deficient = _inputs(m, n, seed=m + n)
    x, xd = mx.array(a), mx.array(deficient)
    mx.eval(x, xd)
    row = {"op": "qr", "m": m, "n": n, "ratio": m // n}
    row["rule_applies"] = tall_rules.qr_applies(x, mode="reduced")
    check = m * n <= args.check_max

    def qr_check(source):
        return (lambda o: qr_ratio(source, *o)) if check else None

    runner.time(
        row,
        "qr",
        "tall",
        n,
        lambda: tall_rules.qr(x, mode="reduced", factor=setup.factor)[0],
        mlx_sync,
        qr_check(a),
    )
    runner.time(
        row,
        "qr",
        "tall_fallback",
        n,
        lambda: tall_rules.qr(xd, mode="reduced", factor=setup.factor)[0],
        mlx_sync,
        qr_check(deficient),
    )
    runner.time(
        row,
        "qr",
        "blocked",
        n,
        lambda: blocked_qr.qr(x, mode="reduced", blocks=setup.blocks)[0],
        mlx_sync,
        qr_check(a),
    )
    if small_spectral.qr_applies(x, mode="reduced"):
        runner.time(
            row, "qr", "small", n, lambda: small_spectral.qr(x, mode="reduced")[0], mlx_sync
        )
    runner.time(row, "qr", "cpu", n, lambda: tuple(la.qr(x, stream=mx.cpu)), mlx_sync, qr_check(a))
    for name, (fn, sync, to_np) in _peer_calls(runner.peers, a, "qr").items():
        runner.time(
            row,
            "qr",
            name,
            n,
            fn,
            sync,
            (lambda o, to_np=to_np: qr_ratio(a, *to_np(o))) if check else None,
        )
    return row


def svd_row(runner: Runner, m: int, n: int, full: bool) -> dict:
    setup, args = runner.setup, runner.args
    a, _ = _inputs(m, n, seed=m + 2 * n)
    x = mx.array(a)
    mx.eval(x)
    op = "svd_full" if full else "svd"
    row = {"op": op, "m": m, "n": n, "ratio": m // n}
    row["rule_applies"] = tall_rules.svd_applies(x, full_matrices=full)
    check = (lambda o: svd_ratio(a, *o)) if m * n <= args.check_max and m <= 16384 else None
    runner.time(
        row,
        op,
        "tall",
        n,
        lambda: tall_rules.svd(x, full_matrices=full, factor=setup.factor, blocks=setup.blocks)[0],
        mlx_sync,
        check,
    )
    if not full:
        runner.time(
            row,
            op,
            "tall_svdvals",
            n,
            lambda: tall_rules.svdvals(x, factor=setup.factor)[0],
            mlx_sync,
        )
    if small_spectral.svd_applies(x):
        runner.time(
            row,
            op,
            "small",
            n,
            lambda: small_spectral.svd(x, full_matrices=full)[0],
            mlx_sync,
        )
    runner.time(
        row,
        op,
        "cpu",
        n,
        lambda: tuple(la.svd(x, full_matrices=full, stream=mx.cpu)),
        mlx_sync,
        check,
    )
    for name, (fn, sync, to_np) in _peer_calls(runner.peers, a, "svd", full).items():
        runner.time(
            row, op, name, n, fn, sync, (lambda o, to_np=to_np: check(to_np(o))) if check else None
        )
    return row


def _gpu_columns(row: dict, columns: tuple) -> dict:
    return {c: row[f"{c}_ms"] for c in columns if f"{c}_ms" in row}


def _least_winning_m(rows: list[dict], op: str, rivals: tuple) -> dict:
    """For each N: the least M from which the tall path beats every rival timed in the row
    at every larger M measured (None: it loses at the largest)."""
    by_n: dict[int, list] = {}
    for r in rows:
        if r["op"] == op and "tall_ms" in r:
            times = [r[f"{c}_ms"] for c in rivals if f"{c}_ms" in r]
            by_n.setdefault(r["n"], []).append((r["m"], bool(times) and r["tall_ms"] < min(times)))
    least_by_n = {}
    for n, results in sorted(by_n.items()):
        least = None
        for m, wins in sorted(results, reverse=True):
            if not wins:
                break
            least = m
        least_by_n[n] = least
    return least_by_n


def suggest(rows: list[dict]) -> dict:
    """Thresholds the timings suggest. Shape (QR against the blocked QR and the small
    kernel, the other GPU paths): for each N the least M from which the tall QR is faster at
    every larger M; QR_TALL_RATIO the largest such M/N, QR_MAX_COLS the widest N that has
    one. Size (against the CPU path): for each N the least M from which the tall path is
    faster than LAPACK at every larger M; QR_MIN_WORK / SVD_MIN_WORK the largest such M·N²
    (the work measure of the rules). SVD_TALL_RATIO: the least M/N at which the tall SVD
    beats the CPU path and the small kernel for some N. SVD_FULL_MAX_ROWS: the largest M at
    which the full SVD's tall path beats the CPU path."""
    qr_gpu = _least_winning_m(rows, "qr", ("blocked", "small"))
    qr_cpu = _least_winning_m(rows, "qr", ("cpu",))
    svd_cpu = _least_winning_m(rows, "svd", ("cpu", "small"))
    out: dict = {
        "qr_least_m_vs_gpu_paths_by_n": qr_gpu,
        "qr_least_m_vs_cpu_by_n": qr_cpu,
        "svd_least_m_vs_cpu_by_n": svd_cpu,
    }
    qr_gpu_won = {n: m for n, m in qr_gpu.items() if m is not None}
    out["QR_TALL_RATIO"] = max((m // n for n, m in qr_gpu_won.items()), default=None)
    both = [n for n in qr_gpu_won if qr_cpu.get(n) is not None]
    out["QR_MAX_COLS"] = max(both, default=None)
    out["QR_MIN_WORK"] = max((m * n * n for n, m in qr_cpu.items() if m), default=None)
    svd_won = {n: m for n, m in svd_cpu.items() if m is not None}
    out["SVD_TALL_RATIO"] = min((m // n for n, m in svd_won.items()), default=None)
    out["SVD_MIN_WORK"] = max((m * n * n for n, m in svd_won.items()), default=None)
    full_wins = [
        r["m"]
        for r in rows
        if r["op"] == "svd_full" and "tall_ms" in r and "cpu_ms" in r and r["tall_ms"] < r["cpu_ms"]
    ]
    out["SVD_FULL_MAX_ROWS"] = max(full_wins, default=None)
    return out


def machine(device: str, peers: dict) -> dict:
    info = {
        "device": device,
        "mlx": mx.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "peers": sorted(peers),
        "tf32_detected": _precision.reduced_precision(mx.gpu) if device == "gpu" else None,
        "thresholds": {
            name: getattr(tall_rules, name)
            for name in (
                "QR_TALL_RATIO",
                "QR_MAX_COLS",
                "QR_MIN_WORK",
                "SVD_TALL_RATIO",
                "SVD_MIN_WORK",
                "SVD_FULL_MAX_ROWS",
            )
        },
    }
    if "torch" in peers:
        info["gpu"] = peers["torch"].cuda.get_device_name(0)
        info["torch"] = peers["torch"].__version__
    if "cupy" in peers:
        info["cupy"] = peers["cupy"].__version__
    if "jax" in peers:
        info["jax"] = peers["jax"].__version__
    return info


def markdown(rows: list[dict], info: dict, suggested: dict) -> str:
    lines = [
        "# Tall-skinny QR and SVD (tall_rules) against the paths they replace",
        "",
        f"Device: {info['device']} ({info.get('gpu', 'unknown')}); MLX {info['mlx']}; TF32 "
        f"detected: {info['tf32_detected']}; peers: {', '.join(info['peers']) or 'none'}. "
        "float32, ms, minimum of the timed runs after one warm-up; ratio = DESIGN.md's QR "
        "ratio or largest SVD ratio (threshold 30 / 50). tall (fallback) = rank-deficient "
        "input, every matrix through the Householder fallback. Thresholds at this run: "
        f"{info['thresholds']}.",
        "",
    ]
    tables = (
        ("qr", "QR (reduced)", QR_COLUMNS),
        ("svd", "SVD (reduced)", SVD_COLUMNS),
        ("svd_full", "SVD (full_matrices=True)", FULL_COLUMNS),
    )
    for op, title, columns in tables:
        selected = [r for r in rows if r["op"] == op]
        if not selected:
            continue
        lines += [
            f"## {title}",
            "",
            "| M x N | M/N | rule | " + " | ".join(columns) + " | tall ratio |",
            "|" + " --- |" * (len(columns) + 4),
        ]
        for r in selected:
            cells = [
                cell(r.get(f"{c}_ms"), ".3f") or ("err" if f"{c}_error" in r else "")
                for c in columns
            ]
            lines.append(
                f"| {r['m']} x {r['n']} | {r['ratio']} | {'yes' if r['rule_applies'] else 'no'} | "
                + " | ".join(cells)
                + f" | {cell(r.get('tall_ratio'), '.3f')} |"
            )
        lines.append("")
    lines += ["## Suggested thresholds", "", "```", json.dumps(suggested, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--cols", default="16,32,64,128,256,512")
    parser.add_argument("--ratios", default="2,4,8,16,64,256,1024")
    parser.add_argument("--max-elements", type=int, default=1 << 24)
    parser.add_argument("--full-max", type=int, default=4096)
    parser.add_argument("--check-max", type=int, default=1 << 21)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--deadline", type=float, default=180.0)
    parser.add_argument("--ops", default="qr,svd,svd_full")
    parser.add_argument(
        "--peers",
        default="torch,cupy,jax",
        help="peers to time where importable (JAX "
        "compiles each shape: leave it out for a shorter run)",
    )
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    args = parser.parse_args(argv)
    if args.device == "gpu":
        if not mx.is_available(mx.gpu):
            print(
                "bench_tall: no MLX GPU backend (use --device cpu for a smoke run)", file=sys.stderr
            )
            return 2
        mx.set_default_device(mx.gpu)
    else:
        mx.set_default_device(mx.cpu)
    setup = Setup(args.device)
    skip = args.skip_peers or args.device == "cpu"
    peers = _peers(set() if skip else set(args.peers.split(",")))
    info = machine(args.device, peers)
    print(json.dumps(info), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(args, setup, peers)
    ops = args.ops.split(",")
    rows: list[dict] = []

    def write() -> dict:
        suggested = suggest(rows)
        (out / "bench_tall.json").write_text(
            json.dumps({"machine": info, "rows": rows, "suggested": suggested}, indent=1) + "\n"
        )
        (out / "bench_tall.md").write_text(markdown(rows, info, suggested))
        return suggested

    start = time.perf_counter()
    cases = []
    for n in (int(v) for v in args.cols.split(",")):
        for r in (int(v) for v in args.ratios.split(",")):
            m = r * n
            if m * n > args.max_elements:
                continue
            if "qr" in ops:
                cases.append((qr_row, m, n, ()))
            if "svd" in ops and n <= small_spectral.SVD_MAX_COLS:
                cases.append((svd_row, m, n, (False,)))
            if "svd_full" in ops and n <= small_spectral.SVD_MAX_COLS and m <= args.full_max:
                cases.append((svd_row, m, n, (True,)))
    cases.sort(key=lambda case: (case[1] * case[2], case[0].__name__))  # smallest first
    for fn, m, n, extra in cases:
        if time.perf_counter() - start > args.deadline:
            print(f"bench_tall: deadline reached, {fn.__name__} {m}x{n} not run", flush=True)
            continue
        row = fn(runner, m, n, *extra)
        rows.append(row)
        print(json.dumps(row), flush=True)
        write()
    suggested = write()
    print(markdown(rows, info, suggested))
    return 0


if __name__ == "__main__":
    sys.exit(main())
