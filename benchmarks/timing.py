"""Wall-clock timing of several peers on one case: warm-up, then interleaved repeats.

Each callable must include its framework's synchronization (``mx.eval``,
``torch.cuda.synchronize``, ``block_until_ready``...), so that a call returns only when the
work is done. Peers are timed round-robin (peer A, B, C, A, B, C, ...) rather than one after
the other, so that a change in machine load (other processes on a shared machine) hits every
peer alike. The statistics are the median and the minimum of the timed runs; the minimum is
the least disturbed by noise and is what ratios use.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timing:
    """Timed runs of one peer on one case, in seconds.

    Attributes:
        times: the timed runs (empty when ``error`` is set).
        warmup: the duration of each warm-up run (the first includes compilation, caches).
        from_warmup: True when the only sample is the last warm-up run, because one call took
            longer than the ``max_call_s`` limit.
        error: the exception text when the peer failed on this case.
    """

    times: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)
    from_warmup: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan

    @property
    def min(self) -> float:
        return min(self.times) if self.times else math.nan

    def as_dict(self) -> dict:
        return {
            "times_s": self.times,
            "warmup_s": self.warmup,
            "median_s": self.median if self.ok else None,
            "min_s": self.min if self.ok else None,
            "runs": len(self.times),
            "from_warmup": self.from_warmup,
            "error": self.error,
        }


def _timed(fn: Callable[[], object]) -> float:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def measure(
    fns: dict[str, Callable[[], object]],
    *,
    warmup: int = 1,
    repeats: int = 5,
    budget_s: float = 2.0,
    max_call_s: float = math.inf,
) -> dict[str, Timing]:
    """Time each callable: ``warmup`` untimed runs, then up to ``repeats`` interleaved runs.

    Args:
        fns: peer name -> a callable doing one complete, synchronized run.
        warmup: untimed runs per peer before timing (at least one is always done: it also
            estimates the duration of a call).
        repeats: most timed runs per peer.
        budget_s: the timed runs of one peer are capped at about this many seconds: a peer
            whose warm-up took ``t`` gets ``clamp(budget_s // t, 1, repeats)`` runs.
        max_call_s: a peer whose warm-up took longer than this is not run again; its last
            warm-up is its only sample (``Timing.from_warmup``).

    Returns:
        peer name -> :class:`Timing`; a peer that raised has ``error`` set and no times.
    """
    results: dict[str, Timing] = {}
    planned: dict[str, int] = {}
    for name, fn in fns.items():
        timing = results[name] = Timing()
        try:
            for _ in range(max(1, warmup)):
                timing.warmup.append(_timed(fn))
                if timing.warmup[-1] > max_call_s:
                    break
        except Exception as exc:  # a peer's failure on one case must not end the run
            timing.error = _error_text(exc)
            continue
        last = timing.warmup[-1]
        if last > max_call_s:
            timing.times, timing.from_warmup = [last], True
            continue
        planned[name] = int(min(repeats, max(1, budget_s // max(last, 1e-9))))
    for round_ in range(max(planned.values(), default=0)):
        gc.collect()
        for name, count in planned.items():
            timing = results[name]
            if round_ >= count or timing.error is not None:
                continue
            try:
                timing.times.append(_timed(fns[name]))
            except Exception as exc:
                timing.error, timing.times = _error_text(exc), []
    return results
