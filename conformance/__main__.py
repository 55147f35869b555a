"""``python -m conformance``: every mlx_linalg op on the matrix zoo, held against SciPy.

Examples:
    python -m conformance --quick                      # the CI tier
    python -m conformance --full --device gpu          # the GPU paths, all sizes
    python -m conformance --large --device gpu         # blocked GPU paths, n = 2048..8192
    python -m conformance --large --sizes 8192 --device gpu   # one order of the large tier
    python -m conformance --quick --ops qr,svd --dtypes float32 --out /tmp/conf

Exit status: 0 when every case passes, 1 when any fails, 2 on a usage error.
"""

import argparse
import signal
import sys
import threading
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.split("\n")[0])
    tier = p.add_mutually_exclusive_group()
    tier.add_argument("--quick", dest="tier", action="store_const", const="quick",
                      help="CI tier: small sizes, a few minutes on 2 cores")
    tier.add_argument("--full", dest="tier", action="store_const", const="full",
                      help="all sizes up to 1024 and every condition number (default)")
    tier.add_argument("--large", dest="tier", action="store_const", const="large",
                      help="the blocked large-matrix GPU paths at n = 2048, 4096, 8192, float32 "
                      "only: QR, Cholesky, LU family, triangular solves, lstsq[gels], eigh, "
                      "eigvalsh, svd[reduced] and svdvals (at 8192 svd[reduced] only); skips the "
                      "other ops (full svd, eig, lstsq, norms, ...): minutes each for their "
                      "references at n = 8192 (see --large --list)")
    p.set_defaults(tier="full")
    p.add_argument("--device", choices=("cpu", "gpu"), default=None,
                   help="MLX default device for the run (default: MLX's default device)")
    p.add_argument("--ops", default=None,
                   help="comma-separated ops or function names (qr selects qr[complete] too)")
    p.add_argument("--dtypes", default=None,
                   help="comma-separated dtypes: float32,float64,complex64,float16,bfloat16")
    p.add_argument("--classes", default=None, help="comma-separated matrix classes")
    p.add_argument("--sizes", default=None,
                   help="large tier only: comma-separated orders of 2048,4096,8192; build and "
                   "run only the cases planned under them (the stacks, policy stacks and "
                   "the tall matrix belong to 2048), to split the tier over several runs")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="threads of each BLAS library of the process (NumPy's and SciPy's "
                   "OpenBLAS; through threadpoolctl) for the run; default: theirs")
    p.add_argument("--seed", type=int, default=0, help="zoo seed (default 0)")
    p.add_argument("--out", type=Path, default=Path("results/conformance"),
                   help="results folder (default results/conformance)")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--trace", type=Path, default=None,
                   help="write each case's name before it runs (locates a crash or a hang)")
    p.add_argument("--list", action="store_true", help="list ops, dtypes and classes, then exit")
    return p.parse_args(argv)


def _split(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def _escape(text: str) -> str:
    """``text`` safe from rich's markup (op names such as qr[complete] are not tags)."""
    from conformance import report

    if not report.HAVE_RICH:
        return text
    from rich.markup import escape

    return escape(text)


def _sizes(args: argparse.Namespace) -> frozenset[int] | None:
    """The ``--sizes`` orders, checked against the large tier's; ValueError if wrong."""
    if args.sizes is None:
        return None
    from conformance import large

    if args.tier != "large":
        raise ValueError("[conformance] --sizes: only with --large")
    try:
        sizes = frozenset(int(x) for x in _split(args.sizes) or [])
    except ValueError:
        raise ValueError(f"[conformance] --sizes: not integers: {args.sizes!r}") from None
    if not sizes or not sizes <= set(large.SIZES):
        raise ValueError(f"[conformance] --sizes: {sorted(sizes)} not among the large tier's "
                         f"orders {list(large.SIZES)}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from conformance import report

    console = report.console()
    try:
        sizes = _sizes(args)
    except ValueError as e:
        console.print(f"[red]{_escape(str(e))}[/red]")
        return 2
    if args.blas_threads is None:
        return _main(args, sizes, console)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        console.print("[red]" + _escape("[conformance] --blas-threads needs threadpoolctl; "
                                        "set OPENBLAS_NUM_THREADS instead") + "[/red]")
        return 2
    if args.blas_threads < 1:
        console.print("[red]" + _escape("[conformance] --blas-threads: at least 1") + "[/red]")
        return 2
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        return _main(args, sizes, console)


def _main(args: argparse.Namespace, sizes: frozenset[int] | None, console) -> int:
    from conformance import large, runner, zoo

    if args.list:
        print(f"tier: {args.tier}")
        print("ops:", ", ".join(runner.tier_ops(args.tier)))
        print("dtypes:", ", ".join(runner.tier_dtypes(args.tier)))
        print("classes:", ", ".join(zoo.class_names(args.tier)))
        if args.tier == "large":
            print("skipped:", large.SKIPPED)
            print("cases (matrix: ops that run where they apply):")
            for name, _, names in large.plan_table(sizes):
                print(f"  {name}: {', '.join(names)}")
        return 0
    if args.device == "gpu":
        import mlx.core as mx

        if not mx.is_available(mx.gpu):
            console.print("[red]" + _escape("[conformance] --device gpu: no MLX GPU backend here")
                          + "[/red]")
            return 2
    try:
        runner.check_filters(args.tier, _split(args.ops), _split(args.dtypes),
                             _split(args.classes))
    except ValueError as e:
        console.print(f"[red]{_escape(str(e))}[/red]")
        return 2
    if args.tier == "large":
        kept = large.keep_freed_memory()
        rates = large.host_rates()
        print(large.host_summary(rates) + (f"\n  {kept}" if kept else ""))
        guess = large.estimate(sizes, _split(args.classes), _split(args.ops), rates)
        print("[conformance] estimated host seconds (build, references, metrics; a model, "
              "see large.estimate): " + ", ".join(f"{s:.0f} at {n}" for n, s in
                                                  sorted(guess.items())), flush=True)
        console.print(_escape("[conformance] large tier: building the matrices and their "
                              "condition estimates first (float64, on the host"
                              + (", times in the trace)" if args.trace else ")")))

    trace = args.trace.open("w") if args.trace else None
    phases = runner.Phases()
    kwargs = dict(only_ops=_split(args.ops), dtypes=_split(args.dtypes),
                  classes=_split(args.classes), device=args.device, seed=args.seed,
                  trace=trace, sizes=sizes, phases=phases)
    if args.tier != "large":
        return _run(args, console, kwargs)
    # A large run stopped by SIGTERM (``timeout``) still says where its time went.
    start = time.perf_counter()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return _run(args, console, kwargs)
    except _Stopped:
        print(f"[conformance] stopped by SIGTERM after {time.perf_counter() - start:.0f} s",
              flush=True)
        print(large.phase_table(phases), flush=True)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Stopped(BaseException):
    """SIGTERM arrived during a large run (a BaseException, like KeyboardInterrupt, so that
    the runner's handlers of failing ops do not take it for one)."""


def _stop(signum, frame):
    raise _Stopped()


def _run(args: argparse.Namespace, console, kwargs: dict) -> int:
    """Run the suite with a progress display, print and write the report (and, for the
    large tier, the seconds of each phase)."""
    from conformance import large, report, runner

    if args.no_progress:
        result = runner.run_suite(args.tier, **kwargs)
    elif not report.HAVE_RICH:
        def plain(done, total, rec):
            if done % 500 == 0 or done == total:
                print(f"conformance {args.tier}: {done}/{total}", flush=True)

        result = runner.run_suite(args.tier, progress=plain, **kwargs)
    else:
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("[bold]conformance[/bold] {task.description}"), BarColumn(),
                      MofNCompleteColumn(), TextColumn("{task.fields[fails]} failing"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                      transient=False) as bar:
            task = bar.add_task(args.tier, total=None, fails=0)
            fails = 0

            def progress(done, total, rec):
                nonlocal fails
                fails += not rec.passed
                bar.update(task, completed=done, total=total, fails=fails,
                           description=escape(f"{args.tier} {rec.op:<18.18} {rec.dtype:<9}"))

            result = runner.run_suite(args.tier, progress=progress, **kwargs)
    report.print_summary(result, console)
    paths = report.write_all(result, args.out, plots=not args.no_plots and report.HAVE_MPL)
    console.print(f"report: {paths['markdown']}  json: {paths['json']}")
    if args.tier == "large":
        print(large.phase_table(result.phases, result.meta["seconds"]), flush=True)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
