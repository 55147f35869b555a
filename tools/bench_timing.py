"""The timing loop of the kernel benchmarks in tools/ (the best of synchronized runs), and
their table cells.

``sync(out)`` must wait for the work behind ``out`` (``mx.eval`` plus ``mx.synchronize``,
``torch.cuda.synchronize``...), so that a timed run covers the whole computation.
"""

import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx

ROOT = Path(__file__).resolve().parents[1]


def benchmark_calls(cases: list[tuple[str, int]], device: str, tool: str) -> list[Callable]:
    """One call per (op, n) of the benchmark's mlx_linalg peer (``python -m benchmarks``'s
    op names, its inputs ``benchmarks.cases.make_inputs``, float32), each run to
    synchronization, on ``device`` ("gpu" or "cpu"); ops the benchmark does not run exit
    with a message naming ``tool``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.cases import Case, make_inputs
    from benchmarks.peers import MLXLinalg

    peer = MLXLinalg(device)
    peer.load()
    chosen = [Case(op, n) for op, n in cases]
    unknown = [case.op for case in chosen if not peer.supports(case)]
    if unknown:
        raise SystemExit(f"[{tool}] ops the benchmark does not run: {unknown}")
    return [peer.runner(case, peer.prepare(make_inputs(case).arrays)) for case in chosen]


def mlx_sync(out) -> None:
    """``sync`` for MLX results: evaluate ``out`` and wait for the device."""
    mx.eval(out)
    mx.synchronize()


def once_s(fn, sync) -> tuple[float, object]:
    """Seconds of one run of ``fn`` up to ``sync`` of its result, and the result."""
    start = time.perf_counter()
    out = fn()
    sync(out)
    return time.perf_counter() - start, out


def best_ms(
    fn, sync, repeat: int, *, warmup: int = 2, min_seconds: float = 0.0, max_repeat: int = 0
) -> tuple[float, object]:
    """Minimum in ms over at least ``repeat`` timed runs after ``warmup`` untimed ones, and
    the last result.

    With ``min_seconds``, runs continue (up to ``max_repeat`` in all) until the timed runs
    add up to that long, so that the minimum of a fast call is taken over as many runs as
    a slow call's few (timeit's rule; the same for every library timed).
    """
    out = None
    for _ in range(warmup):
        _, out = once_s(fn, sync)
    best, total, runs = float("inf"), 0.0, 0
    while runs < repeat or (total < min_seconds and runs < max_repeat):
        seconds, out = once_s(fn, sync)
        best, total, runs = min(best, seconds), total + seconds, runs + 1
    return best * 1e3, out


def cell(value, spec: str) -> str:
    """A markdown table cell: ``value`` formatted by ``spec``, empty for None."""
    return "" if value is None else format(value, spec)


def table_head(title: str, info: dict, columns: list[str]) -> list[str]:
    """The first lines of a benchmark's markdown report: the title, the machine (``info``,
    as :func:`machine` gives it), and the header of a table with these ``columns``."""
    return [
        f"# {title}",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| " + " | ".join(columns) + " |",
        "|" + " --- |" * len(columns),
    ]


def cuda_torch():
    """PyTorch when it is importable with CUDA (the benchmarks' peer column), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def mx_sync(out) -> None:
    """Wait for MLX work: evaluate ``out`` and synchronize the default stream."""
    mx.eval(out)
    mx.synchronize()


def release_memory(torch=None) -> None:
    """Return the cached device memory of MLX (and of PyTorch, when given) between the rows
    of a benchmark, so that one row's cached buffers do not crowd the next row's: a
    benchmark process holds two libraries' caches, and the large rows ran out of GPU
    memory there (docs/kernels-blocked.md, docs/kernels-spectral-blocks.md)."""
    mx.clear_cache()
    if torch is not None:
        torch.cuda.empty_cache()


def machine(cpu: bool, torch=None, **extra) -> dict:
    """What a GPU benchmark ran on: MLX, Python, platform, device, whether MLX multiplies
    float32 in TF32 there, the GPU's name and PyTorch's version (when ``torch`` with CUDA is
    given), and ``extra`` entries."""
    from mlx_linalg import _precision

    info = {
        "mlx": mx.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": "cpu (MLX-op building blocks)" if cpu else "gpu",
        "tf32_detected": False if cpu else _precision.reduced_precision(mx.gpu),
        **extra,
    }
    if torch is not None and not cpu:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["torch"] = torch.__version__
    return info
