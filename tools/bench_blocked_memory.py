"""Peak GPU memory and time of the dispatched large-matrix ops at large n (issue #7: "a few
n×n temporaries at most; n=16384 float32 runs on the H100").

For each op and n, one float32 matrix (SPD for cholesky), the public mlx_linalg function on
the GPU, ``mx.get_peak_memory()`` after ``mx.reset_peak_memory()`` and ``mx.clear_cache()``,
reported in units of n² float32 (4n² bytes), with the time of that one (first) call.

Usage: ``python tools/bench_blocked_memory.py [--sizes 8192,16384] [--ops cholesky,solve]``.
"""

import argparse
import time

import mlx.core as mx

import mlx_linalg as la

CALLS = {
    "cholesky": lambda a, b: la.cholesky(a),
    "solve": lambda a, b: la.solve(a, b),
    "inv": lambda a, b: la.inv(a),
    "slogdet": lambda a, b: la.slogdet(a),
    "qr": lambda a, b: la.qr(a),
    "solve_triangular": lambda a, b: la.solve_triangular(a, b),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8192,16384")
    parser.add_argument("--ops", default=",".join(CALLS))
    args = parser.parse_args()
    mx.set_default_device(mx.gpu)
    for n in (int(s) for s in args.sizes.split(",")):
        for op in args.ops.split(","):
            g = mx.random.normal((n, n), key=mx.random.key(n)) / n**0.5
            a = g @ g.T + mx.eye(n) if op == "cholesky" else g + 4 * mx.eye(n)
            b = mx.random.normal((n, 16), key=mx.random.key(1))
            mx.eval(a, b)
            mx.clear_cache()
            mx.reset_peak_memory()
            base = mx.get_active_memory()
            start = time.perf_counter()
            try:
                mx.eval(CALLS[op](a, b))
                seconds = time.perf_counter() - start
                peak = (mx.get_peak_memory() - base) / (4 * n * n)
                print(
                    f"{op:17s} n={n:6d}  peak {peak:6.1f} n^2 float32  first call {seconds:7.2f} s",
                    flush=True,
                )
            except RuntimeError as error:  # out of memory: report, go on
                print(f"{op:17s} n={n:6d}  failed: {error}", flush=True)
            del a, b, g
            mx.clear_cache()


if __name__ == "__main__":
    main()
