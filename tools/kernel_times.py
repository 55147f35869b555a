"""GPU kernel time of mlx_linalg's public ops, by kernel, from Nsight Compute (CUDA only).

Where the time of a large factorization goes on the GPU: one warm call of each op is run
between ``cudaProfilerStart`` and ``cudaProfilerStop``, with a one-thread marker kernel
before each op, under ``ncu`` recording every kernel's duration; ``summarize`` splits the
record at the markers and sums the durations by kernel name. ncu runs the kernels one at
a time, so the sum is GPU busy time without overlap, not wall time (compare it with the
wall time of the same call: the difference is host-side work and launch gaps).

Usage, on a machine with an NVIDIA GPU and MLX's CUDA backend::

    ncu --profile-from-start off --clock-control none --cache-control none \\
        --metrics gpu__time_duration.sum --csv --log-file kernels.csv \\
        python tools/kernel_times.py run --ops solve,cholesky --n 4096  # benchmark op names
    python tools/kernel_times.py summarize kernels.csv --top 20

(``--clock-control none --cache-control none``: the GPU's own clocks and warm caches, as
in a real run; ncu's defaults lock the clocks at base and flush caches before every kernel.)
Used for docs/kernels-blocked.md ("Column-major working copy", "The gather_rows kernel").

``timeline`` measures without ncu, with the kernels running as they do (concurrently
where MLX's CUDA graphs let them): PyTorch's profiler records the CUDA activity of the
whole process through CUPTI, MLX's kernels included. For each of a few warm calls it
reports the kernels' span (first start to last end), busy time (their union: overlapping
kernels counted once), summed durations and the call's wall time; the gap between wall
and span is host work before the first kernel and after the last::

    python tools/kernel_times.py timeline --ops cholesky --n 4096 --top 10

Used for docs/kernels-blocked.md ("Where the Cholesky's GPU time goes").
"""

import argparse
import csv
import ctypes
import ctypes.util
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

MARKER = "op_marker"
# Calls of :func:`timeline` are this far apart; half this gap between two kernels ends a call.
GAP_MS = 100.0
UNITS_US = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}


def _cudart():
    """The CUDA runtime library, for cudaProfilerStart/Stop (MLX's CUDA backend loads it)."""
    found = ctypes.util.find_library("cudart")
    for name in (found, "libcudart.so", "libcudart.so.13", "libcudart.so.12"):
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    raise RuntimeError("[kernel_times] no CUDA runtime library (libcudart) found")


def _warm_calls(ops: list[str], n: int) -> list:
    """The benchmark's mlx_linalg calls of ``ops`` at order n on the GPU, each run three
    times (the first compiles kernels, the second traces the graph), then synchronized."""
    import mlx.core as mx
    from bench_timing import benchmark_calls

    calls = benchmark_calls([(op, n) for op in ops], "gpu", "kernel_times")
    for call in calls:
        for _ in range(3):
            call()
    mx.synchronize()
    return calls


def run(ops: list[str], n: int) -> None:
    """One warm call of each op at order n, float32, through the benchmark's mlx_linalg
    peer on the GPU (its op names and its inputs, ``benchmarks.cases.make_inputs``),
    profiled, each after a marker kernel; prints each call's wall time."""
    import mlx.core as mx

    calls = _warm_calls(ops, n)
    marker = mx.fast.cuda_kernel(
        name=MARKER, input_names=["x"], output_names=["y"], source="y[0] = x[0];"
    )
    one = mx.zeros((1,), dtype=mx.float32)
    cudart = _cudart()
    cudart.cudaProfilerStart()
    for op, call in zip(ops, calls, strict=True):
        mx.eval(
            marker(
                inputs=[one],
                output_shapes=[(1,)],
                output_dtypes=[mx.float32],
                grid=(1, 1, 1),
                threadgroup=(1, 1, 1),
            )[0]
        )
        mx.synchronize()
        start = time.perf_counter()
        call()
        mx.synchronize()
        print(f"{op} {n}: {(time.perf_counter() - start) * 1e3:.1f} ms wall", flush=True)
    cudart.cudaProfilerStop()


def timeline(ops: list[str], n: int, calls: int, top: int) -> None:
    """``calls`` warm calls of each op at order n (as :func:`run`) under PyTorch's profiler,
    ``GAP_MS`` apart; prints :func:`timeline_summary` of each call and the kernels of the
    op's last call by total time."""
    import mlx.core as mx
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.zeros(1, device="cuda")  # CUDA and CUPTI initialized before the record starts
    benchmarks = _warm_calls(ops, n)
    walls = []
    with profile(activities=[ProfilerActivity.CUDA]) as record:
        for call in benchmarks:
            for _ in range(calls):
                time.sleep(GAP_MS / 1e3)
                start = time.perf_counter()
                call()
                mx.synchronize()
                walls.append((time.perf_counter() - start) * 1e3)
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        record.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    kernels = [
        (event["ts"], event["ts"] + event["dur"], event["name"])
        for event in events
        if event.get("cat") == "kernel"
    ]
    summary = timeline_summary(kernels)
    for index, ((count, span, busy, total, by_name), wall) in enumerate(
        zip(summary, walls, strict=False)
    ):
        op = ops[index // calls]
        print(
            f"{op} {n}: {count} kernels, span {span / 1e3:.2f} ms, busy {busy / 1e3:.2f} ms, "
            f"sum {total / 1e3:.2f} ms, wall {wall:.2f} ms"
        )
        if index % calls == calls - 1:
            _print_ranked(by_name, top)


def timeline_summary(kernels, names_width: int = 70) -> list[tuple]:
    """Kernel records ``(start µs, end µs, name)`` split into calls wherever no kernel runs
    for ``GAP_MS / 2``: per call ``(kernels, span µs, busy µs, summed µs, {name: (launches,
    µs)})``, busy being the length of the union of the kernels' intervals."""
    calls: list[list] = []
    end = None
    for start, stop, name in sorted(kernels):
        if end is None or start - end > GAP_MS * 1e3 / 2:
            calls.append([])
            end = start
        calls[-1].append((start, stop, name))
        end = max(end, stop)
    summary = []
    for call in calls:
        busy, covered, by_name = 0.0, call[0][0], {}
        for start, stop, name in call:
            busy += max(0.0, stop - max(start, covered))
            covered = max(covered, stop)
            launches, us = by_name.get(name[:names_width], (0, 0.0))
            by_name[name[:names_width]] = (launches + 1, us + stop - start)
        span = covered - call[0][0]
        summary.append((len(call), span, busy, sum(s - a for a, s, _ in call), by_name))
    return summary


def summarize(lines, names_width: int = 70) -> list[tuple[int, dict[str, tuple[int, float]]]]:
    """ncu's ``--csv`` record (its lines) split at the markers: for each profiled op, the
    number of kernels and {kernel name: (launches, total µs)}."""
    rows = csv.DictReader(line for line in lines if line.startswith('"'))
    ops: list[tuple[Counter, Counter]] = []
    for row in rows:
        name = row["Kernel Name"]
        if MARKER in name:
            ops.append((Counter(), Counter()))
            continue
        if not ops or row["Metric Name"] != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", "")) * UNITS_US[row["Metric Unit"]]
        key = name[:names_width]
        ops[-1][0][key] += 1
        ops[-1][1][key] += value
    return [
        (sum(count.values()), {k: (count[k], micros[k]) for k in micros}) for count, micros in ops
    ]


def _print(summary, labels: list[str], top: int) -> None:
    for label, (kernels, by_name) in zip(labels, summary, strict=False):
        total = sum(us for _, us in by_name.values())
        print(f"{label}: {kernels} kernels, {total / 1e3:.2f} ms of GPU time")
        _print_ranked(by_name, top)


def _print_ranked(by_name: dict[str, tuple[int, float]], top: int) -> None:
    """The ``top`` kernels of {name: (launches, total µs)} by total time, one line each."""
    ranked = sorted(by_name.items(), key=lambda item: -item[1][1])[:top]
    for name, (count, us) in ranked:
        print(f"  {us / 1e3:8.2f} ms {count:6d} x {us / count:8.1f} us  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="profile one warm call of each op (under ncu)")
    run_p.add_argument("--ops", default="solve,cholesky")
    run_p.add_argument("--n", type=int, default=4096)
    line_p = sub.add_parser("timeline", help="kernel span and busy time (PyTorch profiler)")
    line_p.add_argument("--ops", default="cholesky")
    line_p.add_argument("--n", type=int, default=4096)
    line_p.add_argument("--calls", type=int, default=3)
    line_p.add_argument("--top", type=int, default=10)
    sum_p = sub.add_parser("summarize", help="GPU time by kernel from ncu's CSV record")
    sum_p.add_argument("csv", type=Path)
    sum_p.add_argument("--ops", default=None, help="labels of the profiled ops, in order")
    sum_p.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    if args.command == "run":
        run(args.ops.split(","), args.n)
        return
    if args.command == "timeline":
        timeline(args.ops.split(","), args.n, args.calls, args.top)
        return
    with args.csv.open() as lines:
        summary = summarize(lines)
    labels = args.ops.split(",") if args.ops else [f"op {i + 1}" for i in range(len(summary))]
    _print(summary, labels, args.top)


if __name__ == "__main__":
    main()
