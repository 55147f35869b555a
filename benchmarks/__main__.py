"""``python -m benchmarks``: mlx_linalg against its peers, side by side, on the same data.

Examples::

    python -m benchmarks --quick                      # CI smoke run (< 2 min on 2 CPU cores)
    python -m benchmarks --preset foundation-cpu --docs
    python -m benchmarks --preset gpu-h100 --docs     # on an NVIDIA GPU machine
    python -m benchmarks --ops qr,svd --sizes 256,1024 --batch none,100 --dtypes float32
    python -m benchmarks --list-presets

Results go to ``results/benchmarks/<preset>-<time>/`` (results.json, results.md, PNG plots),
or with ``--docs`` to ``docs/results/<preset>/``. The exit status is 0 whatever the speed:
checks are reported, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time
from pathlib import Path

from benchmarks import presets
from benchmarks.cases import OPS, build_cases, parse_batch
from benchmarks.machine import describe, summary
from benchmarks.peers import ALL_PEERS, OURS, limit_threads, load_peers, thread_environment
from benchmarks.report import Report, load_json, print_table, write_all
from benchmarks.runner import Result, measure_peak, peak_dtype, run_case

ROOT = Path(__file__).resolve().parent.parent


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time mlx_linalg against mx.linalg (CPU), NumPy, SciPy, PyTorch, CuPy and "
        "JAX on the same data; write JSON, Markdown and plots.",
    )
    parser.add_argument("--preset", default="default", choices=sorted(presets.PRESETS))
    parser.add_argument("--quick", action="store_true", help="the 'quick' preset (CI smoke run)")
    parser.add_argument("--ops", type=_csv, help=f"comma-separated, from: {', '.join(OPS)}")
    parser.add_argument(
        "--sizes",
        type=lambda t: [int(x) for x in _csv(t)],
        help="comma-separated n (square matrices)",
    )
    parser.add_argument(
        "--batch",
        type=lambda t: [parse_batch(x) for x in t.split(",")],
        help="comma-separated batch shapes: none,1000,8x4",
    )
    parser.add_argument("--dtypes", type=_csv, help="float32,float64,complex64")
    parser.add_argument("--device", choices=["cpu", "gpu"], help="where mlx_linalg runs")
    parser.add_argument("--peers", type=_csv, help=f"comma-separated, from: {', '.join(ALL_PEERS)}")
    parser.add_argument("--warmup", type=int, help="untimed runs per peer and case")
    parser.add_argument("--repeats", type=int, help="most timed runs per peer and case")
    parser.add_argument("--budget", type=float, help="seconds of timed runs per peer and case")
    parser.add_argument(
        "--max-call-s",
        type=float,
        help="a peer whose only warm-up, or last two, took longer is timed once",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        help="seconds; cases not started by then are skipped and the report is still written",
    )
    parser.add_argument("--cooldown", type=float, help="idle seconds between peers' runs")
    parser.add_argument(
        "--threads",
        type=int,
        help="cap BLAS, OpenMP, PyTorch and XLA CPU threads (default: the libraries' own)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        help="wall (default) or the process's CPU time: steadier on a shared machine with "
        "--threads 1",
    )
    parser.add_argument(
        "--peak-gflops",
        type=float,
        help="roofline peak in GFLOP/s (default: measured with a large matmul)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the accuracy check")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--out", type=Path, help="output folder (default results/benchmarks/…)")
    parser.add_argument(
        "--docs", action="store_true", help="write into docs/results/<preset>/ instead of results/"
    )
    parser.add_argument(
        "--tag",
        help="suffix of the output folder name, e.g. 1thread: docs/results/<preset>-1thread",
    )
    parser.add_argument("--note", help="a paragraph placed at the top of the Markdown report")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="re-render a results.json (Markdown, plots, table) without running anything, "
        "e.g. one made on a machine without matplotlib; with --docs, into docs/results/<preset>",
    )
    parser.add_argument("--list-presets", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.preset = "quick"
    return args


def configure(args: argparse.Namespace) -> presets.Preset:
    """The preset named by ``--preset`` with the command line's overrides applied."""
    preset = presets.get(args.preset)
    if any(v is not None for v in (args.ops, args.sizes, args.batch, args.dtypes)):
        ops = args.ops or list(dict.fromkeys(c.op for c in preset.cases))
        sizes = args.sizes or list(dict.fromkeys(c.n for c in preset.cases if not c.batch))
        batches = args.batch or [()]
        dtypes = args.dtypes or list(dict.fromkeys(c.dtype for c in preset.cases))
        preset.cases = build_cases(ops, sizes, batches, dtypes)
    if args.peers:
        unknown = [p for p in args.peers if p not in ALL_PEERS]
        if unknown:
            raise SystemExit(f"[benchmarks] unknown peers {unknown}; known: {', '.join(ALL_PEERS)}")
        preset.peers = [p for p in ALL_PEERS if p == OURS or p in args.peers]
    if args.device:
        preset.device = args.device
    if preset.device is None:
        import mlx.core as mx

        preset.device = "gpu" if mx.is_available(mx.gpu) else "cpu"
    overrides = {
        "warmup": args.warmup,
        "repeats": args.repeats,
        "budget_s": args.budget,
        "max_call_s": args.max_call_s,
        "clock": args.clock,
        "cooldown_s": args.cooldown,
    }
    preset.settings = dataclasses.replace(
        preset.settings, **{k: v for k, v in overrides.items() if v is not None}
    )
    if args.no_check:
        preset.settings.check_max_n = 0
    return preset


def _progress(total: int):
    """A (advance(label), close()) pair: a rich progress bar, or plain lines without rich."""
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        state = {"done": 0}

        def advance(label: str) -> None:
            state["done"] += 1
            print(f"[{state['done']}/{total}] {label}", flush=True)

        return advance, lambda: None
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    task = bar.add_task("benchmarks", total=total)
    bar.start()

    def advance(label: str) -> None:
        bar.update(task, advance=1, description=label)

    return advance, bar.stop


def _out_dir(args: argparse.Namespace, name: str) -> Path:
    if args.docs:
        return ROOT / "docs" / "results" / name
    if args.out is not None:
        return args.out
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return ROOT / "results" / "benchmarks" / f"{name}-{stamp}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_presets:
        for name, make in presets.PRESETS.items():
            preset = make()
            print(f"{name:16s} {len(preset.cases):3d} cases  {preset.description}")
        return 0
    if args.from_json is not None:
        report = load_json(json.loads(args.from_json.read_text()))
        print_table(report)
        name = args.tag and f"{report.config['preset']}-{args.tag}" or report.config["preset"]
        out = _out_dir(args, name)
        paths = write_all(report, out, plots=not args.no_plots)
        print("[benchmarks] wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    preset = configure(args)
    if args.threads:
        thread_environment(args.threads)
    peers, skipped = load_peers(preset.peers, preset.device)
    threads = limit_threads(args.threads, peers) if args.threads else None
    if OURS not in peers:
        raise SystemExit(f"[benchmarks] mlx_linalg cannot run on {preset.device}: {skipped[OURS]}")
    machine = describe()
    print(
        f"[benchmarks] {args.preset}: {len(preset.cases)} cases on {preset.device}; "
        f"{summary(machine)}",
        flush=True,
    )
    print(
        f"[benchmarks] peers: {', '.join(peers)}"
        + (f"; not here: {', '.join(skipped)}" if skipped else ""),
        flush=True,
    )
    started = time.perf_counter()
    load_start = os.getloadavg()
    peaks = {}
    for dtype in dict.fromkeys(peak_dtype(c.dtype) for c in preset.cases):
        if args.peak_gflops:
            peaks[dtype] = {
                "dtype": dtype,
                "gflops": args.peak_gflops,
                "source": "given by --peak-gflops",
            }
        else:
            peaks[dtype] = measure_peak(
                peers,
                preset.device,
                dtype,
                quick=args.preset == "quick",
                clock=preset.settings.clock,
            )
    time_limit = args.time_limit if args.time_limit is not None else preset.time_limit_s
    results = []
    advance, close = _progress(len(preset.cases))
    try:
        for case in preset.cases:
            if time_limit is not None and time.perf_counter() - started > time_limit:
                note = f"not run: the run's time limit of {time_limit:g} s was reached"
                results += [Result(case, name, "skipped", note=note) for name in peers]
            else:
                results += run_case(case, peers, preset.settings)
            advance(case.label)
    finally:
        close()
    elapsed = time.perf_counter() - started
    config = {
        "preset": args.preset,
        "device": preset.device,
        "elapsed_s": round(elapsed, 1),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "threads": threads,
        "time_limit_s": time_limit,
        "note": args.note,
        **dataclasses.asdict(preset.settings),
        "peer_settings": {name: peer.settings() for name, peer in peers.items()},
        "peer_versions": {name: peer.version for name, peer in peers.items()},
        "command": " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)]),
    }
    report = Report(
        title=f"mlx_linalg benchmarks: {args.preset} ({preset.description})",
        machine=machine,
        config=config,
        peaks=peaks,
        peers=list(peers),
        skipped_peers=skipped,
        results=results,
        criteria=preset.criteria,
    )
    print_table(report)
    name = f"{args.preset}-{args.tag}" if args.tag else args.preset
    out = _out_dir(args, name)
    paths = write_all(report, out, plots=not args.no_plots)
    print(f"[benchmarks] {elapsed:.0f} s; wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
