"""A/B of settings: time the public ops under variants of module constants or environment
variables, one process per variant, the variants alternating.

A variant is a space-separated list of assignments: ``module.NAME=value`` sets a module
constant before the first call (a Python literal; e.g.
``mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX_K=64``), ``NAME=value`` (no dot) sets an
environment variable before MLX starts (e.g. ``MLX_MAX_OPS_PER_BUFFER=100``); an empty
variant is the code as it is. Only settings read at call time take effect (not, e.g., a
keyword default bound when its function was defined). Each process runs every case
through the benchmark's mlx_linalg peer on its inputs (``benchmarks.cases.make_inputs``):
three untimed calls (the first compiles kernels, the second traces the graph), then
``--reps`` timed calls, and prints the minimum and median. The variants run in turn for
``--rounds`` rounds, so the spread between processes of one variant shows next to the
difference between variants (on a GPU it is often several ms).

Usage, e.g. on the GPU machine::

    python tools/ab_settings.py --cases solve:4096,cholesky:8192 \\
        --variant "" --variant "mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX_K=128"

Used for docs/kernels-blocked.md ("The rank_update kernel": the same method, in a one-off
script).
"""

import argparse
import ast
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def parse_variant(text: str) -> tuple[dict[str, object], dict[str, str]]:
    """``(constants, environment)`` of a variant: {"module.NAME": value} (Python literals)
    and {"NAME": "value"}."""
    constants: dict[str, object] = {}
    environment: dict[str, str] = {}
    for token in text.split():
        name, sep, value = token.partition("=")
        if not sep or not name:
            raise ValueError(f"[ab_settings] expected NAME=value, got {token!r}")
        if "." in name:
            constants[name] = ast.literal_eval(value)
        else:
            environment[name] = value
    return constants, environment


def apply_constants(constants: dict[str, object]) -> None:
    """Set each ``module.NAME`` (the module imported, the name already defined there)."""
    for dotted, value in constants.items():
        module_name, _, name = dotted.rpartition(".")
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            raise ValueError(f"[ab_settings] {module_name} has no {name}")
        setattr(module, name, value)


def time_cases(cases: list[tuple[str, int]], device: str, reps: int) -> list[dict]:
    """Each case's timed calls (ms) through the benchmark's mlx_linalg peer."""
    from bench_timing import benchmark_calls

    rows = []
    for (op, n), call in zip(cases, benchmark_calls(cases, device, "ab_settings"), strict=True):
        start = time.perf_counter()
        for _ in range(3):
            call()
        setup = time.perf_counter() - start
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
        rows.append({"op": op, "n": n, "setup_s": setup, "ms": times})
    return rows


def _child(args) -> None:
    constants, _ = parse_variant(args.variant_text)
    apply_constants(constants)
    rows = time_cases(_cases(args.cases), args.device, args.reps)
    print("AB_RESULT " + json.dumps(rows), flush=True)


def _cases(text: str) -> list[tuple[str, int]]:
    cases = []
    for item in text.split(","):
        op, _, n = item.partition(":")
        cases.append((op, int(n)))
    return cases


def run_variant(variant: str, args) -> list[dict]:
    """One process of ``variant``: its rows (:func:`time_cases`)."""
    _, environment = parse_variant(variant)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        variant,
        "--cases",
        args.cases,
        "--device",
        args.device,
        "--reps",
        str(args.reps),
    ]
    done = subprocess.run(
        command,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=args.timeout,
    )
    for line in done.stdout.splitlines():
        if line.startswith("AB_RESULT "):
            return json.loads(line[len("AB_RESULT ") :])
    raise RuntimeError(f"[ab_settings] variant {variant!r} failed:\n{done.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", required=True, help="op:n,... (benchmark op names)")
    parser.add_argument("--variant", action="append", default=None, help="repeatable")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per process")
    parser.add_argument("--child", dest="variant_text", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant_text is not None:
        _child(args)
        return
    variants = args.variant or [""]
    for variant in variants:
        parse_variant(variant)  # a typo fails before any process starts
    for round_ in range(1, args.rounds + 1):
        for variant in variants:
            for row in run_variant(variant, args):
                print(
                    f"round {round_}  [{variant or 'as is'}]  {row['op']} {row['n']}: "
                    f"min {min(row['ms']):.2f} median {statistics.median(row['ms']):.2f} ms "
                    f"(first three calls {row['setup_s']:.1f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
