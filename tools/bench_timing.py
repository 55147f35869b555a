"""The timing loop of the kernel benchmarks in tools/: the best of synchronized runs.

``sync(out)`` must wait for the work behind ``out`` (``mx.eval`` plus ``mx.synchronize``,
``torch.cuda.synchronize``...), so that a timed run covers the whole computation.
"""

import time


def once_s(fn, sync) -> tuple[float, object]:
    """Seconds of one run of ``fn`` up to ``sync`` of its result, and the result."""
    start = time.perf_counter()
    out = fn()
    sync(out)
    return time.perf_counter() - start, out


def best_ms(fn, sync, repeat: int, *, warmup: int = 2) -> tuple[float, object]:
    """Minimum in ms over ``repeat`` timed runs after ``warmup`` untimed ones, and the
    last result."""
    out = None
    for _ in range(warmup):
        _, out = once_s(fn, sync)
    best = float("inf")
    for _ in range(repeat):
        seconds, out = once_s(fn, sync)
        best = min(best, seconds)
    return best * 1e3, out
