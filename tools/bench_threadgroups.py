"""Kernel time of single launches by threadgroup size: the tables behind two launch rules.

- ``lu-panel``: the ``lu_panel`` kernel (one threadgroup per panel) by panel height and
  threads per threadgroup, for ``blocked_panel.lu_panel_threads``;
- ``qr-small``: the ``qr_small`` kernel (one threadgroup per matrix) by stack size, shape
  and simdgroups per threadgroup, for ``small_spectral.qr_groups``;
- ``qr-panel``: the ``qr_panel`` kernel (one threadgroup per panel) by panel height and
  threads, for ``blocked_panel.panel_threads`` (256 threads below 1024 rows, 1024 from
  there, the LU panel's rule before ``lu_panel_threads``; not re-tuned: the default QR
  panel is TSQR, which does not launch ``qr_panel``).

Each cell is the median kernel time (µs) of ``--reps`` synchronized launches after two
warm-ups, read from CUPTI through PyTorch's profiler (CUDA only: the record holds MLX's
kernels too). Each row ends with whether the outputs were the same bit for bit for every
threadgroup size (``lu_panel`` and ``qr_small`` give every entry the same operations for
any size; ``qr_panel``'s column norms are sums over the threads, whose order may change)
and the size the library's rule picks, with its time.

Usage, on a machine with an NVIDIA GPU, MLX's CUDA backend and PyTorch::

    python tools/bench_threadgroups.py lu-panel --rows 512,1024,2048,4096,8192
    python tools/bench_threadgroups.py qr-panel --width 32
    python tools/bench_threadgroups.py qr-small --cases 100x32x32,4000x128x32

(docs/kernels-blocked.md, "Threads of the LU panel"; docs/kernels-spectral.md,
"Simdgroups of qr_small").
"""

import argparse
import statistics
from collections.abc import Callable, Sequence

import mlx.core as mx
import numpy as np

from mlx_linalg import _kernels
from mlx_linalg._gpu import blocked_panel, small_spectral

PANEL_THREADS = (256, 512, 768, 1024)
QR_GROUPS = (1, 2, 4, 8, 16)
WARM_UPS = 2


def parse_cases(text: str) -> list[tuple[int, int, int]]:
    """``"1000x32x32,100x128x32"`` as [(batch, M, N), ...]."""
    cases = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"[bench_threadgroups] expected BATCHxMxN, got {item!r}")
        cases.append(tuple(int(p) for p in parts))
    return cases


def cupti_us(launch: Callable[[], list], reps: int) -> float:
    """Median kernel time (µs) of ``reps`` synchronized calls of ``launch`` (one kernel
    each), after :data:`WARM_UPS` untimed ones, from PyTorch's CUPTI record."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(WARM_UPS):
        mx.eval(launch())
        mx.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as record:
        for _ in range(reps):
            mx.eval(launch())
            mx.synchronize()
    torch.cuda.synchronize()
    times = [event.device_time for event in record.events() if "mlx_linalg" in event.name]
    if not times:
        raise RuntimeError("[bench_threadgroups] CUPTI recorded no mlx_linalg kernel")
    return statistics.median(times)


def sweep(
    sizes: Sequence[int],
    launch: Callable[[int], list],
    time_us: Callable[[Callable[[], list]], float],
) -> tuple[dict[int, float], bool]:
    """``({size: µs}, same)``: the time of ``launch(size)`` for each threadgroup size, and
    whether every size gave the same outputs bit for bit as the first."""
    times, first, same = {}, None, True
    for size in sizes:
        times[size] = time_us(lambda size=size: launch(size))
        outputs = [np.asarray(x) for x in launch(size)]
        if first is None:
            first = outputs
        else:
            same = same and all(
                np.array_equal(x, y, equal_nan=True) for x, y in zip(outputs, first, strict=True)
            )
    return times, same


def row(label: str, times: dict[int, float], same: bool, rule: int, unit: str) -> str:
    """One table line: the times by size, bit equality, and the rule's pick."""
    cells = "  ".join(f"{unit}{size} {us:7.1f}" for size, us in times.items())
    picked = f"{times[rule]:.1f}" if rule in times else "not timed"
    return f"{label}: {cells}  bit-equal {same}  rule {unit}{rule} ({picked})"


def panel_kernel_launch(name: str, a: mx.array) -> Callable[[int], list]:
    """``threads -> outputs`` of the ``lu_panel`` or ``qr_panel`` kernel on the (B, M, NB)
    stack ``a`` (its scratch output left out)."""

    def launch(threads: int) -> list:
        inputs = blocked_panel.lu_panel_inputs(a) if name == "lu_panel" else [a]
        outputs = _kernels.launch(
            name, inputs, **blocked_panel.panel_launch(name, a.shape, threads)
        )
        return outputs[:3] if name == "lu_panel" else outputs

    return launch


def qr_small_launch(a: mx.array) -> Callable[[int], list]:
    """``groups -> outputs`` of the ``qr_small`` kernel (thin Q) on the (B, M, N) stack
    ``a``, ``groups`` simdgroups per threadgroup."""

    def launch(groups: int) -> list:
        arguments = small_spectral.qr_small_launch(a.shape, complete=False, groups=groups)
        return _kernels.launch("qr_small", [a], **arguments)

    return launch


PANELS = {
    "lu-panel": ("lu_panel", blocked_panel.lu_panel_threads),
    "qr-panel": ("qr_panel", blocked_panel.panel_threads),
}


def panel_rows(
    command: str, rows: Sequence[int], width: int, threads: Sequence[int], reps: int
) -> None:
    """A row per panel height of the ``lu-panel`` or ``qr-panel`` sweep."""
    name, rule = PANELS[command]
    rng = np.random.default_rng(0)
    for m in rows:
        a = mx.array(rng.standard_normal((1, m, width)).astype(np.float32))
        times, same = sweep(threads, panel_kernel_launch(name, a), lambda f: cupti_us(f, reps))
        print(row(f"{name} {m} x {width}", times, same, rule(m), "T"), flush=True)


def qr_small_rows(cases: Sequence[tuple], groups: Sequence[int], reps: int) -> None:
    rng = np.random.default_rng(0)
    for batch, m, n in cases:
        a = mx.array(rng.standard_normal((batch, m, n)).astype(np.float32))
        k = min(m, n)
        sizes = [g for g in groups if g <= max(n, k)]
        times, same = sweep(sizes, qr_small_launch(a), lambda f: cupti_us(f, reps))
        rule = small_spectral.qr_groups(batch, n, k)
        print(row(f"qr_small {batch} x {m} x {n}", times, same, rule, "G"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    panels = []
    for command, (name, _) in PANELS.items():
        panel = commands.add_parser(command, help=f"{name} by panel height and threads")
        panel.add_argument("--rows", default="512,768,1024,1536,2048,3072,4096,6144,8192")
        panel.add_argument("--width", type=int, default=16)
        panel.add_argument("--threads", default=",".join(map(str, PANEL_THREADS)))
        panels.append(panel)
    qr = commands.add_parser("qr-small", help="qr_small by stack, shape and simdgroups")
    qr.add_argument("--cases", default="100x32x32,1000x32x32,4000x32x32,1000x64x64,4000x128x32")
    qr.add_argument("--groups", default=",".join(map(str, QR_GROUPS)))
    for command in (*panels, qr):
        command.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    import torch

    torch.zeros(1, device="cuda")  # CUDA and CUPTI initialized before any record starts
    if args.command in PANELS:
        panel_rows(
            args.command,
            [int(r) for r in args.rows.split(",")],
            args.width,
            [int(t) for t in args.threads.split(",")],
            args.reps,
        )
    else:
        qr_small_rows(parse_cases(args.cases), [int(g) for g in args.groups.split(",")], args.reps)


if __name__ == "__main__":
    main()
