"""Run op specs over the matrix zoo and collect one record per (op, dtype, case).

``run_suite`` is the entry point; its ``ops`` argument overrides the implementation of any
op (by spec name, e.g. "qr[complete]", or by function name, e.g. "qr", which covers every
spec of that function), which is how tests plant wrong implementations and check that the
suite reports them.
"""

import contextlib
import math
import os
import platform
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import mlx.core as mx
import numpy as np

import mlx_linalg as la
from conformance import checks as C
from conformance import metrics as M
from conformance import ops as O
from conformance import references as R
from conformance import zoo
from conformance.metrics import Metric

_NP_PEER = {"float32": np.float32, "complex64": np.complex64, "float16": np.float32,
            "bfloat16": np.float32}
_MX_NAME = {mx.float32: "float32", mx.float64: "float64", mx.complex64: "complex64",
            mx.float16: "float16", mx.bfloat16: "bfloat16"}


@dataclass
class Record:
    """The outcome of one (op, dtype, case)."""

    op: str
    dtype: str
    cls: str
    case: str
    shape: tuple
    cond: float | None
    policy: str | None
    metrics: list[Metric] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(m.passed for m in self.metrics)

    @property
    def worst(self) -> Metric | None:
        """The metric closest to (or furthest past) its threshold."""
        if not self.metrics:
            return None
        return max(self.metrics, key=lambda m: m.score)

    def to_json(self) -> dict:
        return {
            "op": self.op,
            "dtype": self.dtype,
            "class": self.cls,
            "case": self.case,
            "shape": list(self.shape),
            "cond": None if self.cond is None else M._finite_or_str(self.cond),
            "policy": self.policy,
            "passed": self.passed,
            "error": self.error,
            "seconds": round(self.seconds, 6),
            "metrics": [m.to_json() for m in self.metrics],
        }


@dataclass
class SuiteResult:
    records: list[Record]
    meta: dict
    phases: "Phases | None" = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.records)

    @property
    def failures(self) -> list[Record]:
        return [r for r in self.records if not r.passed]


# Phases of a run, in report order: building the matrices and their κ estimates (large tier),
# the float64 references and the LAPACK peer, the op under test (with its transfers), and
# the metrics (the products and norms of conformance.checks).
PHASES = ("matrix", "condition", "references", "ops", "metrics")


@dataclass
class Phases:
    """Seconds per phase of a run and per order (max(M, N) of a case's matrices): wall clock,
    and the process's CPU time (every thread: CPU/wall is the number of cores busy, e.g. how
    many BLAS threads did work) and its system part (page faults, thread wake-ups and
    yields: a large share means time lost to the OS rather than to arithmetic)."""

    wall: dict[tuple[str, int], float] = field(default_factory=dict)
    cpu: dict[tuple[str, int], float] = field(default_factory=dict)
    sys: dict[tuple[str, int], float] = field(default_factory=dict)

    def add(self, phase: str, order: int, wall: float, cpu: float, sys: float = 0.0) -> None:
        key = (phase, int(order))
        self.wall[key] = self.wall.get(key, 0.0) + wall
        self.cpu[key] = self.cpu.get(key, 0.0) + cpu
        self.sys[key] = self.sys.get(key, 0.0) + sys

    @contextlib.contextmanager
    def timed(self, phase: str, order: int):
        """Add the wall, CPU and system seconds of the ``with`` block to ``phase``."""
        wall, cpu = time.perf_counter(), os.times()
        try:
            yield
        finally:
            now = os.times()
            self.add(phase, order, time.perf_counter() - wall,
                     now.user + now.system - cpu.user - cpu.system, now.system - cpu.system)

    def to_json(self) -> list[dict]:
        """[{"phase", "order", "wall", "cpu", "sys"}] in PHASES order, then by order."""
        rank = {p: i for i, p in enumerate(PHASES)}
        keys = sorted(self.wall, key=lambda k: (rank.get(k[0], len(rank)), k[0], k[1]))
        return [{"phase": p, "order": n, "wall": round(self.wall[p, n], 3),
                 "cpu": round(self.cpu[p, n], 3), "sys": round(self.sys.get((p, n), 0.0), 3)}
                for p, n in keys]


def _timed(phases: Phases | None, phase: str, order: int):
    return contextlib.nullcontext() if phases is None else phases.timed(phase, order)


def order_of(case: zoo.Case) -> int:
    """The order a case is planned under (the large tier's ``--sizes``), else max(M, N)."""
    return case.order if case.order is not None else max(case.a.shape[-2:] + (0,))


# ----------------------------------------------------------------------------- conversions


def to_mx(x: np.ndarray, dtype: str) -> mx.array:
    """A NumPy float64/complex128 array (exact in dtype) as an MLX array of that dtype."""
    if dtype == "bfloat16":
        return mx.array(x.astype(np.float32)).astype(mx.bfloat16)
    return mx.array(np.asarray(x).astype(np.dtype(dtype)), dtype=zoo.MX_DTYPES[dtype])


def to_np(x) -> np.ndarray:
    """An MLX output as float64/complex128 NumPy (integers stay integers)."""
    if isinstance(x, bool | int | float):
        return np.asarray(x)
    if not isinstance(x, mx.array):
        return np.asarray(x)
    if x.dtype in (mx.bfloat16, mx.float16):
        x = x.astype(mx.float32)
    a = np.asarray(x)
    if np.issubdtype(a.dtype, np.complexfloating):
        return a.astype(np.complex128)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float64)
    return a


def _as64(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        v = np.asarray(v)
        if np.issubdtype(v.dtype, np.complexfloating):
            v = v.astype(np.complex128, copy=False)
        elif np.issubdtype(v.dtype, np.floating):
            v = v.astype(np.float64, copy=False)
        out[k] = v
    return out


def _perturbed(args: tuple, case: zoo.Case) -> tuple:
    """Inputs times (1 + 4u·r), r uniform in [-1, 1], symmetric for Hermitian inputs."""
    rng = case.rng("perturb")
    out = []
    for i, a in enumerate(args):
        r = rng.uniform(-1, 1, np.shape(a))
        if i == 0 and case.hermitian and r.ndim >= 2 and r.shape[-1] == r.shape[-2]:
            r = (r + np.swapaxes(r, -1, -2)) / 2
        out.append(a * (1 + 4 * zoo.UNIT_ROUNDOFF["float64"] * r))
    return tuple(out)


def _expected_dtype(rule: str, dtype: str) -> str | None:
    if rule == "int":
        return None
    if rule == "complex":
        return "complex64"
    if rule == "real":
        return {"complex64": "float32"}.get(dtype, dtype)
    return dtype


# ----------------------------------------------------------------------------- one case


def _references(spec, case, args, ref_fn, out_main_dtype: str | None):
    """(reference, LAPACK peer, forward-error peer) outputs, all float64/complex128."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _as64(ref_fn(*args))
        if case.dtype == "float64":
            peer_fwd = _as64(ref_fn(*_perturbed(args, case)))
            return ref, ref, peer_fwd
        low = _NP_PEER[case.dtype]
        cast = tuple(np.asarray(a).astype(low) for a in args)
        peer = _as64(ref_fn(*cast))
    return ref, peer, peer


def _rounded_like(ref: dict, dtypes: dict) -> dict:
    """The reference rounded to each output's dtype: the best answer that dtype can hold
    (a float32 determinant of 1e-72 is 0)."""
    out = dict(ref)
    for key, dtype in dtypes.items():
        v = out.get(key)
        if v is not None and dtype in ("float32", "complex64", "float16", "bfloat16") and (
                np.issubdtype(v.dtype, np.inexact)):
            with np.errstate(all="ignore"):
                out[key] = zoo.round_to(v if dtype == "complex64" else np.real(v), dtype) \
                    if dtype == "complex64" or not np.iscomplexobj(v) else v
    return out


def _unit_roundoff(case: zoo.Case, main_dtype: str | None) -> float:
    compute = {"float16": "float32", "bfloat16": "float32"}.get(case.dtype, case.dtype)
    u = zoo.UNIT_ROUNDOFF[compute]
    if main_dtype in zoo.UNIT_ROUNDOFF:
        u = max(u, zoo.UNIT_ROUNDOFF[main_dtype])
    return u


def _execute(call, fn, args_mx, stream) -> tuple[dict, dict]:
    # No MLX GPU has float64: mlx_linalg runs float64 on the CPU whatever the device, and the
    # harness's own slicing of its outputs (tril, [..., None]) must run there too.
    float64 = any(isinstance(a, mx.array) and a.dtype == mx.float64 for a in args_mx)
    with mx.stream(mx.cpu) if float64 else contextlib.nullcontext():
        out = call(fn, args_mx, stream)
    arrays = [v for v in out.values() if isinstance(v, mx.array)]
    mx.eval(*arrays)
    dtypes = {k: _MX_NAME.get(v.dtype, str(v.dtype)) for k, v in out.items()
              if isinstance(v, mx.array)}
    return {k: to_np(v) for k, v in out.items()}, dtypes


def _evaluate(spec: O.OpSpec, case: zoo.Case, args: tuple, out: dict, dtypes: dict,
              phases: Phases | None = None) -> list:
    """Every metric of a value case whose outputs are already computed."""
    with _timed(phases, "references", order_of(case)):
        main_dtype = dtypes.get(spec.main)
        ref_fn = R.reference_for_case(spec, case)
        ref, peer, peer_fwd = _references(spec, case, args, ref_fn, main_dtype)
    with _timed(phases, "metrics", order_of(case)):
        return _metrics(spec, case, args, out, dtypes, ref, peer, peer_fwd, main_dtype)


def _metrics(spec, case, args, out, dtypes, ref, peer, peer_fwd, main_dtype) -> list:
    """The metrics of ``_evaluate`` once the references are computed."""
    ref = _rounded_like(ref, dtypes)
    # A float32/complex64 peer's values are float32/complex64 already: rounding them again
    # is the identity (two passes over each output, 1 GiB of traffic at n = 8192).
    if case.dtype not in ("float32", "complex64"):
        peer = _rounded_like(peer, dtypes)
    peer_fwd = peer if case.dtype != "float64" else _rounded_like(peer_fwd, dtypes)
    metrics = []
    expected = _expected_dtype(spec.out_dtype, case.dtype)
    if expected is not None and main_dtype is not None:
        metrics.append(Metric("dtype", "shape", float(main_dtype != expected), 0.0,
                              note=f"{main_dtype}, expected {expected}"
                              if main_dtype != expected else ""))
    for key in ref:
        if key in out and np.shape(out[key]) != np.shape(ref[key]):
            metrics.append(Metric(f"shape:{key}", "shape", 1.0, 0.0,
                                  note=f"{np.shape(out[key])} != {np.shape(ref[key])}"))
            return metrics
    n = max(case.a.shape[-2:] + (1,))
    ctx = C.Ctx(case, args, out, ref, peer, peer_fwd, _unit_roundoff(case, main_dtype), n)
    with np.errstate(all="ignore"):
        metrics += spec.check(ctx)
    return metrics


def _subcase(case: zoo.Case, keep: list[int]) -> zoo.Case:
    sub = zoo.Case(case.cls, case.name, case.dtype, case.a[keep], hermitian=case.hermitian,
                   spd=case.spd, triangular=case.triangular, cond=case.cond,
                   cond_scaled=case.cond_scaled, seed=case.seed, order=case.order)
    return sub


def run_case(spec: O.OpSpec, case: zoo.Case, fn: Callable, stream=None,
             phases: Phases | None = None) -> Record:
    """Run one op on one case and measure it (a value case or a failure-policy case); each
    phase's seconds go to ``phases`` if given."""
    rec = Record(spec.name, case.dtype, case.cls, case.name, case.shape, case.cond, case.policy)
    call = O.call_for_case(spec, case)
    try:
        args = spec.make(case)
        with _timed(phases, "ops", order_of(case)):
            args_mx = [to_mx(a, case.dtype) for a in args]
            start = time.perf_counter()
            out, dtypes = _execute(call, fn, args_mx, stream)
            rec.seconds = time.perf_counter() - start
    except Exception as e:  # the op under test failed: that is a finding, not a crash
        rec.error = f"{type(e).__name__}: {e}"
        rec.metrics.append(Metric("exception", "policy", math.inf, 0.0, note=rec.error))
        return rec
    try:
        if case.policy is None:
            rec.metrics += _evaluate(spec, case, args, out, dtypes, phases)
        else:
            rec.metrics += _policy(spec, case, args, args_mx, out, dtypes, call, fn, stream,
                                   phases)
    except Exception:
        rec.error = "harness: " + traceback.format_exc()[-700:]
    return rec


def _policy(spec, case, args, args_mx, out, dtypes, call, fn, stream, phases=None) -> list:
    """DESIGN.md failure policy: the bad entry fails alone; raise mode names it."""
    metrics = []
    keep = [i for i in range(case.a.shape[0]) if i != case.bad]
    if case.policy in ("not_pd", "singular"):
        for key in spec.nan_on_failure:
            bad = np.asarray(out[key])[case.bad]
            metrics.append(Metric(f"failed_entry_nan:{key}", "policy",
                                  float(np.sum(~np.isnan(bad))), 0.0,
                                  note="entries of the failing matrix that are not NaN"))
        try:
            with la.errstate(linalg="raise"), _timed(phases, "ops", order_of(case)):
                _execute(call, fn, args_mx, stream)
            metrics.append(Metric("raise_mode", "policy", 1.0, 0.0, note="did not raise"))
        except la.LinAlgError as e:
            named = (case.bad,) in tuple(getattr(e, "indices", ()))
            metrics.append(Metric("raise_mode", "policy", float(not named), 0.0,
                                  note="" if named else f"indices {getattr(e, 'indices', None)}"))
        except Exception as e:
            metrics.append(Metric("raise_mode", "policy", 1.0, 0.0,
                                  note=f"raised {type(e).__name__}, not LinAlgError: {e}"))
    sub = _subcase(case, keep)
    sub_args = tuple(np.asarray(a)[keep] for a in args)
    sub_out = {k: np.asarray(v)[keep] if np.ndim(v) else v for k, v in out.items()}
    for m in _evaluate(spec, sub, sub_args, sub_out, dtypes, phases):
        m.name = f"others:{m.name}"
        metrics.append(m)
    return metrics


# ----------------------------------------------------------------------------- the suite


def select(names: Iterable[str] | None, available: list[str], what: str) -> list[str]:
    """Filter ``available`` by exact names or by function name (``qr`` selects qr[...])."""
    if not names:
        return list(available)
    names = list(names)
    chosen = [a for a in available if a in names or a.split("[")[0] in names]
    unknown = [n for n in names if not any(a == n or a.split("[")[0] == n for a in available)]
    if unknown:
        raise ValueError(f"[conformance] unknown {what}: {', '.join(unknown)}; "
                         f"choose from {', '.join(available)}")
    return chosen


def resolve(spec: O.OpSpec, overrides: dict[str, Callable] | None) -> Callable:
    overrides = overrides or {}
    if spec.name in overrides:
        return overrides[spec.name]
    if spec.fn in overrides:
        return overrides[spec.fn]
    return getattr(la, spec.fn)


def tier_ops(tier: str) -> list[str]:
    """The op names a tier runs (the large tier: those with a blocked GPU path)."""
    if tier == "large":
        from conformance import large

        return list(large.OPS)
    return O.op_names()


def tier_dtypes(tier: str) -> list[str]:
    """The dtypes a tier runs (the large tier: float32)."""
    if tier == "large":
        from conformance import large

        return list(large.DTYPES)
    return list(zoo.DTYPES)


def check_filters(tier: str, only_ops=None, dtypes=None, classes=None) -> None:
    """Raise ValueError for an op, dtype or class the tier does not have (builds nothing)."""
    if tier not in zoo.TIERS:
        raise ValueError(f"[conformance] unknown tier {tier!r}; choose from {zoo.TIERS}")
    names = tier_ops(tier)
    bases = {o.split("[")[0] for o in names}
    outside = [n for n in only_ops or () if n not in names and n.split("[")[0] not in bases
               and any(n == a or n == a.split("[")[0] for a in O.op_names())]
    if outside:
        raise ValueError(f"[conformance] not in the {tier} tier: {', '.join(outside)}; "
                         f"it runs {', '.join(names)}")
    select(only_ops, names, "ops")
    select(dtypes, tier_dtypes(tier), "dtypes")
    select(classes, zoo.class_names(tier), "classes")


def plan(tier: str, only_ops=None, dtypes=None, classes=None, seed: int = 0, sizes=None,
         log=None, phases: Phases | None = None):
    """The (spec, case) pairs to run, in order; ``sizes``, ``log`` and ``phases`` go to the
    large tier's build (``conformance.large.cases``)."""
    check_filters(tier, only_ops, dtypes, classes)
    op_names = select(only_ops, tier_ops(tier), "ops")
    dtype_names = select(dtypes, tier_dtypes(tier), "dtypes")
    class_set = set(select(classes, zoo.class_names(tier), "classes")) if classes else None
    pairs = []
    for dtype in dtype_names:
        for case in zoo.cases(tier, dtype, seed=seed, classes=class_set,
                              ops=set(op_names) if only_ops else None,
                              sizes=None if sizes is None else set(sizes), log=log,
                              phases=phases):
            for name in op_names:
                if case.ops is not None and name not in case.ops:
                    continue
                spec = O.SPECS[name]
                if case.policy is None and spec.applies(case):
                    pairs.append((spec, case))
                elif case.policy in spec.policies and spec.applies(replace(case, policy=None)):
                    pairs.append((spec, case))
    return pairs


def run_suite(
    tier: str = "quick",
    *,
    ops: dict[str, Callable] | None = None,
    only_ops: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    classes: Iterable[str] | None = None,
    device: str | None = None,
    seed: int = 0,
    progress: Callable[[int, int, Record], None] | None = None,
    trace=None,
    sizes: Iterable[int] | None = None,
    phases: Phases | None = None,
) -> SuiteResult:
    """Run the conformance suite.

    Args:
        tier: "quick" (CI), "full" or "large" (the blocked GPU paths at n = 2048..8192,
            float32; ``conformance.large``).
        ops: overrides: op or function name -> a callable with mlx_linalg's signature.
        only_ops: run only these ops (names or function names); None runs all.
        dtypes: run only these dtypes; None runs all five.
        classes: run only these matrix classes; None runs all.
        device: "cpu" or "gpu" sets MLX's default device; None keeps MLX's default.
        seed: zoo seed.
        progress: called after each case with (done, total, record).
        trace: a text file; each case's name is written (and flushed) before it runs and
            its time after, so a hard crash (segfault) or a hang can be located (the large
            tier also writes each matrix's build times there, before the cases).
        sizes: large tier only: build and run only the cases planned under these orders
            (``--sizes``; None: all).
        phases: where the seconds of each phase go (a new :class:`Phases` if None); the
            caller's own is readable while the run goes on, or after it was interrupted.

    Returns:
        A :class:`SuiteResult` with one record per (op, dtype, case), and the seconds of
        each phase per order (``SuiteResult.phases``, also in ``meta["phases"]``).
    """
    if sizes is not None and tier != "large":
        raise ValueError("[conformance] sizes: only for the large tier")
    if device is not None:
        mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
    start = time.time()
    phases = Phases() if phases is None else phases
    pairs = plan(tier, only_ops, dtypes, classes, seed, sizes=sizes, log=trace, phases=phases)
    records = []
    with warnings.catch_warnings():
        # Singular and ill-conditioned inputs are the point here; their warnings are noise.
        warnings.simplefilter("ignore")
        for i, (spec, case) in enumerate(pairs):
            if trace is not None:
                trace.write(f"{spec.name} {case.dtype} {case.name} ...")
                trace.flush()
            case_start = time.perf_counter()
            rec = run_case(spec, case, resolve(spec, ops), phases=phases)
            if trace is not None:
                bad = "; ".join(f"{m.name}={m.value:.3g} (err {m.error}, SciPy {m.peer_error}"
                                f"{', ' + m.note if m.note else ''})"
                                for m in rec.metrics if not m.passed)
                # the op's own time, then the case's with references and metrics
                whole = time.perf_counter() - case_start
                trace.write(f" {rec.seconds:.4f} s (case {whole:.2f} s) "
                            f"{'ok' if rec.passed else 'FAIL ' + bad}\n")
                trace.flush()
            records.append(rec)
            if progress is not None:
                progress(i + 1, len(pairs), rec)
    meta = {
        "tier": tier,
        "seed": seed,
        "device": str(mx.default_device()),
        "machine": f"{platform.system()} {platform.machine()} ({platform.node()})",
        "python": platform.python_version(),
        "mlx": getattr(mx, "__version__", "?"),
        "numpy": np.__version__,
        "mlx_linalg": la.__version__,
        "overridden": sorted((ops or {}).keys()),
        "seconds": round(time.time() - start, 2),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "thresholds": dict(M.RATIO_THRESHOLD),
        "forward_c": dict(M.FORWARD_C),
        "peer_factor": M.PEER_FACTOR,
        "ratio_floor": M.RATIO_FLOOR,
    }
    if tier == "large":
        from conformance import large

        meta["large_orders"] = sorted(sizes or large.SIZES)
    meta["phases"] = phases.to_json()
    try:
        import scipy

        meta["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover - scipy is a hard dependency of mlx_linalg
        pass
    return SuiteResult(records, meta, phases)
