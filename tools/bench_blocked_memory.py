"""Peak memory and time of the dispatched large-matrix ops at large n (issue #7: "a few
n×n temporaries at most; n=16384 float32 runs on the H100").

For each op and n, one float32 matrix (SPD for cholesky), ``mx.get_peak_memory()`` after
``mx.reset_peak_memory()`` and ``mx.clear_cache()``, less the memory active before the call
(the inputs), reported in units of n² float32 (4n² bytes), with the time of that call (the
first compiles kernels, the second traces the graph: ``--calls 3`` for a replayed one).

``--device gpu`` (the default) runs the public mlx_linalg function on the GPU (the kernels'
graph). ``--device cpu`` runs the blocked graph itself on the CPU with the MLX-op building
blocks (``blocked_common.REFERENCE``): the same graph with each kernel swapped for its
reference, so its memory is measurable on any machine (at smaller n: the references are
slow). The two need not agree exactly (the kernels and their references allocate
differently), but a graph that keeps too many n×n buffers alive shows on both.

With ``--device-memory`` (NVIDIA GPUs) the device's own used memory is sampled by
``nvidia-smi`` every 50 ms during each call and its largest value reported, with MLX's
buffer cache after the call: MLX keeps freed buffers cached up to its memory limit, so the
device can fill far beyond the peak of active memory (docs/benchmarks.md, fourth run).
``--memory-limit GIB`` sets ``mx.set_memory_limit`` first; ``--calls N`` repeats each call.

Usage: ``python tools/bench_blocked_memory.py [--device gpu|cpu] [--sizes 8192,16384]
[--ops cholesky,solve] [--device-memory] [--memory-limit 30] [--calls 3]``.
"""

import argparse
import contextlib
import functools
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import mlx.core as mx

import mlx_linalg as la
from mlx_linalg._gpu import blocked_cholesky, blocked_lu, blocked_qr, blocked_triangular
from mlx_linalg._gpu.blocked_common import REFERENCE

# The public functions (on the GPU they dispatch to the blocked graphs with the kernels).
CALLS = {
    "cholesky": lambda a, b: la.cholesky(a),
    "solve": lambda a, b: la.solve(a, b),
    "inv": lambda a, b: la.inv(a),
    "slogdet": lambda a, b: la.slogdet(a),
    "qr": lambda a, b: la.qr(a),
    "qr_complete": lambda a, b: la.qr(a, mode="complete"),
    "solve_triangular": lambda a, b: la.solve_triangular(a, b),
}
# The same ops as the blocked graphs themselves with the MLX-op building blocks (any device).
REFERENCE_CALLS = {
    "cholesky": lambda a, b: blocked_cholesky.cholesky(a, upper=False, blocks=REFERENCE),
    "solve": lambda a, b: blocked_lu.solve(a, b, blocks=REFERENCE),
    "inv": lambda a, b: blocked_lu.inv(a, blocks=REFERENCE),
    "slogdet": lambda a, b: blocked_lu.slogdet(a, blocks=REFERENCE),
    "qr": lambda a, b: blocked_qr.qr(a, mode="reduced", blocks=REFERENCE),
    "qr_complete": lambda a, b: blocked_qr.qr(a, mode="complete", blocks=REFERENCE),
    "solve_triangular": lambda a, b: blocked_triangular.solve_triangular(
        a, b, lower=False, unit_diagonal=False, trans=0, blocks=REFERENCE
    ),
}


def largest_used_mib(samples: str) -> int | None:
    """The largest ``memory.used`` value (MiB) of ``nvidia-smi --query-gpu=memory.used
    --format=csv,noheader,nounits`` output, one sample per line; None without samples."""
    values = [int(line) for line in samples.split() if line.strip().isdigit()]
    return max(values) if values else None


@contextlib.contextmanager
def device_memory_sampler():
    """Samples the GPU's used memory with ``nvidia-smi`` every 50 ms while the block runs;
    yields a callable giving the largest sample in MiB (None: no nvidia-smi or no sample)."""
    if shutil.which("nvidia-smi") is None:
        yield lambda: None
        return
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "used.txt"
        with log.open("w") as out:
            sampler = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=memory.used",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "50",
                ],
                stdout=out,
            )
            try:
                yield lambda: largest_used_mib(log.read_text())
            finally:
                sampler.terminate()
                sampler.wait()


def _measure(op: str, n: int, call: int, run, args) -> None:
    """One call of ``run`` after emptying MLX's cache: its peak of active memory in n²
    float32 units and its time, and with ``--device-memory`` MLX's cache after it and the
    GPU's largest used memory during it."""
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    label = f"{args.device} {op:17s} n={n:6d} call {call}"
    sampler = device_memory_sampler() if args.device_memory else contextlib.nullcontext(None)
    try:
        with sampler as device_max:
            start = time.perf_counter()
            mx.eval(run())
            seconds = time.perf_counter() - start
            time.sleep(0.1 if device_max else 0)  # a last sample after the call
            used = device_max() if device_max else None
    except RuntimeError as error:  # out of memory: report, go on
        print(f"{label}  failed: {error}", flush=True)
        return
    peak = (mx.get_peak_memory() - base) / (4 * n * n)
    line = f"{label}  peak {peak:6.1f} n^2 float32  {seconds:7.2f} s"
    if args.device_memory:
        line += f"  MLX cache after {mx.get_cache_memory() / 2**30:5.1f} GiB"
        line += f"  device max {used} MiB" if used is not None else "  no nvidia-smi"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--sizes", default=None, help="default 8192,16384 (gpu), 512,1024 (cpu)")
    parser.add_argument("--ops", default=",".join(CALLS))
    parser.add_argument(
        "--device-memory", action="store_true", help="also the GPU's used memory (nvidia-smi)"
    )
    parser.add_argument("--memory-limit", type=float, default=None, help="GiB, for MLX")
    parser.add_argument("--calls", type=int, default=1, help="calls per op and size")
    args = parser.parse_args()
    cpu = args.device == "cpu"
    calls = REFERENCE_CALLS if cpu else CALLS
    sizes = args.sizes or ("512,1024" if cpu else "8192,16384")
    mx.set_default_device(mx.cpu if cpu else mx.gpu)
    if args.memory_limit is not None:
        mx.set_memory_limit(int(args.memory_limit * 2**30))
    for n in (int(s) for s in sizes.split(",")):
        for op in args.ops.split(","):
            g = mx.random.normal((n, n), key=mx.random.key(n)) / n**0.5
            a = g @ g.T + mx.eye(n) if op == "cholesky" else g + 4 * mx.eye(n)
            b = mx.random.normal((n, 16), key=mx.random.key(1))
            mx.eval(a, b)
            del g
            for call in range(1, args.calls + 1):
                _measure(op, n, call, functools.partial(calls[op], a, b), args)
            del a, b
            mx.clear_cache()


if __name__ == "__main__":
    main()
