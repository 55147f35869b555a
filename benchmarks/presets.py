"""Named runs: the cases, peers, timing settings and pass/fail checks of each preset.

- ``quick``: a smoke run for CI, well under 2 minutes on a 2-core CPU machine.
- ``foundation-cpu``: the Foundation issue's criterion, measured side by side: on the CPU,
  n = 1024 float32, mlx_linalg at least 5x faster than ``mx.linalg`` on the CPU stream and no
  more than 1.25x the time of the faster of NumPy and SciPy, for qr, cholesky, eigh, svd,
  solve and inv.
- ``gpu-h100``: DESIGN.md's peer table on one GPU: six ops at n = 1024, 4096, 8192 (svd to
  4096, as the table), and the batched 10000x32x32 and 1000x64x64 stacks, against PyTorch,
  CuPy and JAX; ``mx.linalg`` (CPU) and NumPy only at n <= 1024 and on the batches. About six
  minutes on an H100.
- ``default``: what ``python -m benchmarks`` runs without ``--preset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.cases import Case, build_cases
from benchmarks.report import Criterion
from benchmarks.runner import Settings

MAIN_OPS = ["cholesky", "qr", "eigh", "svd", "solve", "inv"]


@dataclass
class Preset:
    """A named run.

    Attributes:
        cases: the cases, in table order.
        peers: the peers to load (those not importable here are reported as skipped).
        device: "cpu" or "gpu"; None picks the GPU when MLX has one.
        settings: timing settings and per-peer size limits.
        criteria: pass/fail checks reported per case.
        description: one line for ``--list-presets`` and the report title.
        time_limit_s: cases not started within this many seconds are skipped (None: no limit).
    """

    cases: list[Case]
    peers: list[str]
    device: str | None
    settings: Settings
    criteria: list[Criterion] = field(default_factory=list)
    description: str = ""
    time_limit_s: float | None = None


ALL = ["mlx_linalg", "mx.linalg", "numpy", "scipy", "torch", "cupy", "jax"]


def _quick() -> Preset:
    cases = build_cases(MAIN_OPS, [32, 128], [()], ["float32"])
    cases += build_cases(MAIN_OPS, [8], [(64,)], ["float32"])
    return Preset(
        cases=cases,
        peers=ALL,
        device=None,
        settings=Settings(
            warmup=1, repeats=3, budget_s=0.2, max_call_s=5.0, cooldown_s=0.05, check_max_n=128
        ),
        description="smoke run: six ops at n=32, 128 and 64x8x8, float32",
    )


def _foundation_cpu() -> Preset:
    return Preset(
        cases=build_cases(
            ["qr", "cholesky", "eigh", "svd", "solve", "inv"], [1024], [()], ["float32"]
        ),
        peers=["mlx_linalg", "mx.linalg", "numpy", "scipy"],
        device="cpu",
        settings=Settings(
            warmup=1, repeats=9, budget_s=6.0, max_call_s=30.0, rounds=3, check_max_n=1024
        ),
        criteria=[
            Criterion(("mx.linalg",), "min_speedup", 5.0),
            Criterion(("numpy", "scipy"), "max_ratio", 1.25),
        ],
        description="Foundation criterion: CPU, n=1024 float32, vs mx.linalg (CPU) and NumPy/SciPy",
    )


def _gpu_h100() -> Preset:
    # Smallest first, so that a run cut short by the time limit still has every op.
    cases = build_cases(MAIN_OPS, [1024], [()], ["float32"])
    cases += build_cases(MAIN_OPS, [32], [(10000,)], ["float32"])
    cases += build_cases(MAIN_OPS, [64], [(1000,)], ["float32"])
    cases += build_cases(MAIN_OPS, [4096], [()], ["float32"])
    cases += [c for c in build_cases(MAIN_OPS, [8192], [()], ["float32"]) if c.op != "svd"]
    return Preset(
        cases=cases,
        peers=["mlx_linalg", "mx.linalg", "numpy", "torch", "cupy", "jax"],
        device="gpu",
        settings=Settings(
            warmup=1,
            # mlx_linalg's large GPU factorizations run eagerly on the first call of a shape
            # and trace their graph on the second (mlx_linalg/_gpu/compiled_graphs.py): two
            # warm-up runs, so that every timed run replays the traced graph.
            warmup_for={"mlx_linalg": 2},
            repeats=5,
            budget_s=2.5,
            max_call_s=10.0,
            peer_max_n={"mx.linalg": 1024, "numpy": 1024},
            check_max_n=1024,
        ),
        criteria=[Criterion(("torch", "cupy", "jax"), "max_ratio", 1.0)],
        time_limit_s=420.0,
        description="DESIGN.md peer table on one GPU: six ops at n=1024/4096/8192 and "
        "10000x32x32, 1000x64x64, float32",
    )


def _default() -> Preset:
    return Preset(
        cases=build_cases(
            ["cholesky", "lu", "qr", "eigh", "svd", "solve", "inv"], [256, 1024], [()], ["float32"]
        ),
        peers=ALL,
        device=None,
        settings=Settings(warmup=1, repeats=5, budget_s=2.0, max_call_s=30.0),
        description="seven ops at n=256 and 1024, float32",
    )


PRESETS = {
    "quick": _quick,
    "foundation-cpu": _foundation_cpu,
    "gpu-h100": _gpu_h100,
    "default": _default,
}


def get(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"[benchmarks] unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()
