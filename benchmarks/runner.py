"""Run the cases: every peer on the same data, timed side by side, then checked for accuracy.

Also measures the roofline peak: the GFLOP/s of a large matmul on the device, once per real
dtype, by the fastest framework available there (NumPy on the CPU; PyTorch, CuPy, JAX or
MLX on a GPU, all at full float32 precision). ``--peak-gflops`` replaces the measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmarks.accuracy import error_in_u
from benchmarks.cases import Case, make_inputs
from benchmarks.peers import OURS, Peer
from benchmarks.timing import Timing, measure

PEAK_PEERS = {"cpu": ("numpy",), "gpu": ("torch", "cupy", "jax", OURS)}
PEAK_SIZE = {"cpu": 2048, "gpu": 8192}


@dataclass
class Settings:
    """How to time: see :func:`benchmarks.timing.measure` for the first seven.

    Attributes:
        warmup_for: peer -> its warm-up runs where it needs another number than ``warmup``.
        peer_max_n: peer -> largest n it runs (slow peers skip big cases; others are timed).
        check_max_n: largest n whose outputs get the accuracy check (0: none).
    """

    warmup: int = 1
    repeats: int = 5
    budget_s: float = 2.0
    max_call_s: float = 60.0
    rounds: int = 1
    cooldown_s: float = 0.15
    clock: str = "wall"
    warmup_for: dict[str, int] = field(default_factory=dict)
    peer_max_n: dict[str, int] = field(default_factory=dict)
    check_max_n: int = 2048


@dataclass
class Result:
    """One peer on one case."""

    case: Case
    peer: str
    status: str  # "ok", "error", "unsupported", "skipped"
    timing: Timing | None = None
    error_u: float | None = None
    note: str | None = None
    held_bytes: int | None = None  # the peer's GPU memory after the case (Peer.held_bytes)

    @property
    def min_s(self) -> float:
        return self.timing.min if self.timing is not None and self.timing.ok else math.nan

    @property
    def median_s(self) -> float:
        return self.timing.median if self.timing is not None and self.timing.ok else math.nan

    @property
    def gflops(self) -> float:
        return self.case.flops / self.min_s / 1e9 if self.status == "ok" else math.nan

    def as_dict(self, peak_gflops: float | None) -> dict:
        ok = self.status == "ok"
        return {
            "case": self.case.label,
            "peer": self.peer,
            "status": self.status,
            "note": self.note,
            **(self.timing.as_dict() if self.timing is not None else {}),
            "gflops": self.gflops if ok else None,
            "percent_of_peak": 100 * self.gflops / peak_gflops if ok and peak_gflops else None,
            "error_in_u": self.error_u,
            "gpu_memory_held_bytes": self.held_bytes,
        }


def _skip_reason(peer: Peer, case: Case, settings: Settings) -> tuple[str, str] | None:
    if not peer.supports(case):
        return "unsupported", f"{peer.name} has no {case.op} for {case.dtype}"
    limit = settings.peer_max_n.get(peer.name)
    if limit is not None and case.n > limit:
        return "skipped", f"n > {limit} for {peer.name} in this preset"
    return None


def run_case(case: Case, peers: dict[str, Peer], settings: Settings) -> list[Result]:
    """Time every peer on ``case`` (same inputs), then check each output's accuracy."""
    inputs = make_inputs(case)
    results: dict[str, Result] = {}
    fns: dict[str, Callable[[], object]] = {}
    outputs: dict[str, dict] = {}
    for name, peer in peers.items():
        reason = _skip_reason(peer, case, settings)
        if reason is not None:
            results[name] = Result(case, name, reason[0], note=reason[1])
            continue
        try:
            operands = peer.prepare(inputs.arrays)
        except Exception as exc:  # a conversion failure is that peer's failure alone
            results[name] = Result(case, name, "error", note=f"{type(exc).__name__}: {exc}")
            continue
        holder = outputs[name] = {}
        fns[name] = _keeping(peer.runner(case, operands), holder)
    timings = measure(
        fns,
        warmup=settings.warmup,
        warmup_for=settings.warmup_for,
        repeats=settings.repeats,
        budget_s=settings.budget_s,
        max_call_s=settings.max_call_s,
        rounds=settings.rounds,
        cooldown_s=settings.cooldown_s,
        clock=settings.clock,
    )
    for name, timing in timings.items():
        result = results[name] = Result(case, name, "ok" if timing.ok else "error", timing)
        if not timing.ok:
            result.note = timing.error
        elif timing.single_run:
            result.note = f"one timed run: its warm-ups took more than {settings.max_call_s:g} s"
        if timing.ok and case.n <= settings.check_max_n and "out" in outputs[name]:
            try:
                result.error_u = error_in_u(
                    case, inputs.arrays, peers[name].to_numpy(outputs[name]["out"])
                )
            except Exception as exc:
                result.note = f"accuracy check failed: {type(exc).__name__}: {exc}"
    outputs.clear()
    for peer in peers.values():
        peer.release()
    for name, result in results.items():
        try:
            result.held_bytes = peers[name].held_bytes()
        except Exception:  # a diagnostic: a framework that cannot say must not end the run
            result.held_bytes = None
    return [results[name] for name in peers if name in results]


def _keeping(run: Callable[[], object], holder: dict) -> Callable[[], None]:
    """``run`` that keeps its latest output in ``holder["out"]`` (for the accuracy check)."""

    def call() -> None:
        holder["out"] = run()

    return call


def measure_peak(
    peers: dict[str, Peer], device: str, dtype: str, *, quick: bool, clock: str = "wall"
) -> dict:
    """Achieved GFLOP/s of an n x n matmul, the roofline's peak, by the first capable peer."""
    n = PEAK_SIZE[device] // (2 if quick else 1)
    case = Case(op="matmul", n=n, dtype=dtype)
    for name in PEAK_PEERS[device]:
        peer = peers.get(name)
        if peer is None or not peer.supports(case):
            continue
        operands = peer.prepare(make_inputs(case).arrays)
        timing = measure(
            {name: peer.runner(case, operands)}, warmup=2, repeats=5, budget_s=3.0, clock=clock
        )[name]
        peer.release()
        if timing.ok:
            return {
                "dtype": dtype,
                "gflops": case.flops / timing.min / 1e9,
                "source": f"measured: {name} matmul {n}x{n} {dtype}, min of {len(timing.times)}",
            }
    return {"dtype": dtype, "gflops": None, "source": "not measured: no capable peer"}


def peak_dtype(dtype: str) -> str:
    """The real dtype whose matmul peak applies to ``dtype`` (complex64 -> float32)."""
    return np.dtype(dtype).type(0).real.dtype.name
