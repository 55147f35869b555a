"""Peak memory and time of the dispatched large-matrix ops at large n (issue #7: "a few
n×n temporaries at most; n=16384 float32 runs on the H100").

For each op and n, one float32 matrix (SPD for cholesky), ``mx.get_peak_memory()`` after
``mx.reset_peak_memory()`` and ``mx.clear_cache()``, less the memory active before the call
(the inputs), reported in units of n² float32 (4n² bytes), with the time of that one
(first) call.

``--device gpu`` (the default) runs the public mlx_linalg function on the GPU (the kernels'
graph). ``--device cpu`` runs the blocked graph itself on the CPU with the MLX-op building
blocks (``blocked_common.REFERENCE``): the same graph with each kernel swapped for its
reference, so its memory is measurable on any machine (at smaller n: the references are
slow). The two need not agree exactly (the kernels and their references allocate
differently), but a graph that keeps too many n×n buffers alive shows on both.

Usage: ``python tools/bench_blocked_memory.py [--device gpu|cpu] [--sizes 8192,16384]
[--ops cholesky,solve]``.
"""

import argparse
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--sizes", default=None, help="default 8192,16384 (gpu), 512,1024 (cpu)")
    parser.add_argument("--ops", default=",".join(CALLS))
    args = parser.parse_args()
    cpu = args.device == "cpu"
    calls = REFERENCE_CALLS if cpu else CALLS
    sizes = args.sizes or ("512,1024" if cpu else "8192,16384")
    mx.set_default_device(mx.cpu if cpu else mx.gpu)
    for n in (int(s) for s in sizes.split(",")):
        for op in args.ops.split(","):
            g = mx.random.normal((n, n), key=mx.random.key(n)) / n**0.5
            a = g @ g.T + mx.eye(n) if op == "cholesky" else g + 4 * mx.eye(n)
            b = mx.random.normal((n, 16), key=mx.random.key(1))
            mx.eval(a, b)
            del g
            mx.clear_cache()
            mx.reset_peak_memory()
            base = mx.get_active_memory()
            start = time.perf_counter()
            try:
                mx.eval(calls[op](a, b))
                seconds = time.perf_counter() - start
                peak = (mx.get_peak_memory() - base) / (4 * n * n)
                print(
                    f"{args.device} {op:17s} n={n:6d}  peak {peak:6.1f} n^2 float32"
                    f"  first call {seconds:7.2f} s",
                    flush=True,
                )
            except RuntimeError as error:  # out of memory: report, go on
                print(f"{args.device} {op:17s} n={n:6d}  failed: {error}", flush=True)
            del a, b
            mx.clear_cache()


if __name__ == "__main__":
    main()
