"""Wall-clock timing of several peers on one case: warm-up, then blocks of repeats.

Each callable must include its framework's synchronization (``mx.eval``,
``torch.cuda.synchronize``, ``block_until_ready``...), so that a call returns only when the
work is done. Each peer's runs go back to back, with an idle pause between peers (see
:func:`measure` for why), optionally in several passes over the peers. The statistics are the
median and the minimum of the timed runs; the minimum is the least disturbed by noise and is
what ratios use."""

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
        single_run: True when the peer was timed once because its warm-ups took longer than
            the ``max_call_s`` limit.
        error: the exception text when the peer failed on this case.
    """

    times: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)
    single_run: bool = False
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
            "single_run": self.single_run,
            "error": self.error,
        }


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
"""``wall``: elapsed time. ``cpu``: CPU time of the whole process (all its threads), which on a
machine shared with other processes is far less disturbed by them; use it with one BLAS thread
(``--threads 1``), since idle worker threads that spin count as CPU time."""


def _timed(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        fn()
        return clock() - start
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
    warmup_for: dict[str, int] | None = None,
    repeats: int = 5,
    budget_s: float = 2.0,
    max_call_s: float = math.inf,
    rounds: int = 1,
    cooldown_s: float = 0.15,
    clock: str = "wall",
) -> dict[str, Timing]:
    """Time each callable: ``warmup`` untimed runs, then up to ``repeats`` timed runs.

    The runs of one peer go in blocks, back to back; between blocks of different peers the
    machine idles ``cooldown_s`` so that the previous framework's worker threads, which spin
    for a while after a call (OpenBLAS about 2^28 cycles, OpenMP, XLA), have gone to sleep and
    do not compete with the next peer's threads. With ``rounds`` > 1 the timed runs are split
    into that many passes over the peers (A A B B C C A A B B C C), so that a change in the
    machine's load (other processes) affects every peer alike.

    Args:
        fns: peer name -> a callable doing one complete, synchronized run.
        warmup: untimed runs per peer before timing (at least one is always done: it also
            estimates the duration of a call).
        warmup_for: peer name -> its untimed runs, for peers that need another number.
        repeats: most timed runs per peer.
        budget_s: the timed runs of one peer are capped at about this many seconds: a peer
            whose warm-up took ``t`` gets ``clamp(budget_s // t, 1, repeats)`` runs.
        max_call_s: a peer whose only warm-up, or whose last two warm-ups, took longer than
            this stops warming up and is timed once (``Timing.single_run``). A warm-up is
            never a sample: a first call compiles kernels (and mlx_linalg's second traces its
            graph), so even a slow peer's time is a warm call's.
        rounds: passes over the peers for the timed runs.
        cooldown_s: idle seconds after each block of runs.
        clock: a key of :data:`CLOCKS`.

    Returns:
        peer name -> :class:`Timing`; a peer that raised has ``error`` set and no times.
    """
    read = CLOCKS[clock]
    results = {name: Timing() for name in fns}
    gc.collect()  # once: a full collection takes ~0.2 s with PyTorch and JAX loaded
    planned: dict[str, int] = {}
    rounds = max(1, rounds)
    for round_ in range(rounds):
        for name, fn in fns.items():
            timing = results[name]
            if timing.error is not None or (round_ > 0 and name not in planned):
                continue
            try:
                if round_ == 0:
                    _warm_up(fn, timing, (warmup_for or {}).get(name, warmup), max_call_s, read)
                    last = timing.warmup[-1]
                    timing.single_run = _slow(timing.warmup, max_call_s)
                    runs = 1 if timing.single_run else budget_s // max(last, 1e-9)
                    planned[name] = int(min(repeats, max(1, runs)))
                share = planned[name] // rounds + (round_ < planned[name] % rounds)
                for _ in range(share):
                    timing.times.append(_timed(fn, read))
            except Exception as exc:  # a peer's failure on one case must not end the run
                timing.error, timing.times = _error_text(exc), []
            time.sleep(cooldown_s)
    return results


def _slow(warmup: list[float], max_call_s: float) -> bool:
    """Whether the warm-ups so far say that a peer is too slow for more than one more call:
    its only call, or its last two calls, took longer than ``max_call_s``."""
    return all(t > max_call_s for t in warmup[-2:])


def _warm_up(fn, timing: Timing, warmup: int, max_call_s: float, clock) -> None:
    for _ in range(max(1, warmup)):
        timing.warmup.append(_timed(fn, clock))
        if len(timing.warmup) > 1 and _slow(timing.warmup, max_call_s):
            return
