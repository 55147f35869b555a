"""What summing long float32 products from chunks costs (``mlx_linalg._precision``).

On a GPU, ``_precision.matmul`` sums every float32 product with an inner dimension K above
``_precision.CHUNK`` from products of at most that many terms (split ones where MLX
multiplies float32 in TF32). For two Gaussian n x n float32 matrices per order (seeds 1, 2)
this times, on the default device:

- *chunked*: ``_precision.matmul`` as the library calls it;
- *whole*: one product over the whole K, split where products are split
  (``_precision.split_operands`` summed by ``_precision._summed``), else ``mx.matmul``;
- *mx.matmul*: the device's own product (TF32 where MLX enables it);

each the minimum of ``--reps`` synchronized runs after two warm-ups, with its error
‖C − AB‖_F/‖AB‖_F and max |C − AB|/(|A||B|) against float64 on the host, and the device
memory it takes above its inputs in one call (``mx.get_peak_memory``). ``--eigh`` adds the
peak memory and time of ``mlx_linalg.eigh`` of a symmetric Gaussian matrix per order (one
call each, under ``--memory-limit`` GiB). MLX_ENABLE_TF32 is the process's: run the tool
once with it unset and once with ``MLX_ENABLE_TF32=0`` to compare.

Usage: ``python tools/bench_long_products.py --sizes 4096,8192 --eigh 8192,16384``
(docs/kernels-spectral-blocks.md, "Long products, summed from chunks").
"""

import argparse
import os
import time

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, mlx_sync

import mlx_linalg as la
from mlx_linalg import _precision

GIB = 2.0**30


def products(split: bool) -> dict:
    """The three products timed, by name: (a, b) -> a @ b."""

    def split_whole(a: mx.array, b: mx.array) -> mx.array:
        return _precision._summed(None, _precision.split_operands(a, b))

    whole = split_whole if split else mx.matmul
    return {"chunked": _precision.matmul, "whole": whole, "mx.matmul": mx.matmul}


def reference(a: mx.array, b: mx.array) -> tuple[np.ndarray, np.ndarray]:
    """(AB, |A||B|) in float64 on the host: what :func:`errors` measures against."""
    a64, b64 = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    return a64 @ b64, np.abs(a64) @ np.abs(b64)


def errors(c: mx.array, exact: np.ndarray, scale: np.ndarray) -> tuple[float, float]:
    """(‖C − AB‖_F/‖AB‖_F, max |C − AB|/(|A||B|)) for ``exact`` = AB and ``scale`` =
    |A||B| (:func:`reference`)."""
    difference = np.abs(np.array(c, dtype=np.float64) - exact)
    relative = np.linalg.norm(difference) / np.linalg.norm(exact)
    return float(relative), float(np.max(difference / scale))


def peak_gib(build) -> float:
    """Device memory in GiB that one evaluated call of ``build`` takes above what is live."""
    mx.synchronize()
    base = mx.get_active_memory()
    mx.reset_peak_memory()
    out = build()
    mlx_sync(out)
    return (mx.get_peak_memory() - base) / GIB


def product_rows(n: int, reps: int, split: bool) -> list[str]:
    """One line per product of two n x n matrices: time, errors, memory."""
    a = mx.random.normal((n, n), key=mx.random.key(1))
    b = mx.random.normal((n, n), key=mx.random.key(2))
    mx.eval(a, b)
    exact, scale = reference(a, b)  # two float64 products, once for the three timed
    rows = []
    for name, product in products(split).items():
        ms, c = best_ms(lambda product=product: product(a, b), mlx_sync, reps)
        frobenius, largest = errors(c, exact, scale)
        del c
        memory = peak_gib(lambda product=product: product(a, b))
        rows.append(
            f"n={n} {name:9s} {ms:8.2f} ms  ‖C − AB‖/‖AB‖ {frobenius:.2e}  "
            f"max |C − AB|/(|A||B|) {largest:.2e}  peak {memory:.2f} GiB"
        )
    return rows


def eigh_row(n: int) -> str:
    """Time and peak memory of one ``la.eigh`` of a symmetric Gaussian n x n matrix."""
    g = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    x = mx.array((g + g.T) / 2)
    mlx_sync(x)
    start = time.perf_counter()
    memory = peak_gib(lambda: la.eigh(x))
    seconds = time.perf_counter() - start
    return f"eigh n={n}: {seconds * 1e3:.0f} ms (one call), peak {memory:.1f} GiB above its input"


def _sizes(text: str) -> list[int]:
    return [int(size) for size in text.split(",") if size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=_sizes, default=[4096, 8192], help="orders n of the products"
    )
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--eigh", type=_sizes, default=[], help="orders n of eigh's memory")
    parser.add_argument("--memory-limit", type=float, default=80.0, help="GiB, for --eigh")
    args = parser.parse_args()
    split = _precision.needs_split()
    print(
        f"device {mx.default_device()}, MLX_ENABLE_TF32={os.environ.get('MLX_ENABLE_TF32')}, "
        f"products split: {split}, chunk {_precision.CHUNK} terms",
        flush=True,
    )
    for n in args.sizes:
        print("\n".join(product_rows(n, args.reps, split)), flush=True)
        mx.clear_cache()
    if args.eigh:
        mx.set_memory_limit(int(args.memory_limit * GIB))
    for n in args.eigh:
        print(eigh_row(n), flush=True)
        mx.clear_cache()


if __name__ == "__main__":
    main()
