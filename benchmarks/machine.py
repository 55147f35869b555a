"""A description of the machine a benchmark ran on: CPU, cores, BLAS, GPU, driver, versions.

Everything is read without side effects on the measurement: ``/proc/cpuinfo``, ``os``,
``threadpoolctl`` (when installed, for the BLAS that NumPy and SciPy load), ``nvidia-smi``
(GPU name, driver, memory), and installed package versions through ``importlib.metadata``.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = (
    "mlx",
    "mlx-linalg",
    "mlx-cuda",
    "numpy",
    "scipy",
    "torch",
    "cupy-cuda12x",
    "cupy-cuda13x",
    "cupy",
    "jax",
    "jaxlib",
    "jax-cuda12-plugin",
    "jax-cuda13-plugin",
    "threadpoolctl",
)

ENVIRONMENT = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MLX_ENABLE_TF32",
    "CUPY_TF32",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "CUDA_VISIBLE_DEVICES",
)


def cpu_model() -> dict:
    """CPU model name, family/model/stepping and flags of note, from ``/proc/cpuinfo``."""
    info: dict = {"processor": platform.processor() or platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    info.update(
        {
            "model_name": fields.get("model name"),
            "vendor": fields.get("vendor_id"),
            "family": fields.get("cpu family"),
            "model": fields.get("model"),
            "stepping": fields.get("stepping"),
            "cache_size": fields.get("cache size"),
            "simd": sorted(
                f
                for f in flags
                if f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "neon", "sve")
            ),
        }
    )
    return info


def cores() -> dict:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"logical": os.cpu_count(), "usable": usable}


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def blas() -> list[dict]:
    """The BLAS/LAPACK libraries loaded by NumPy and SciPy (threadpoolctl), else NumPy's config.

    threadpoolctl also lists OpenMP runtimes loaded by then (PyTorch's, say): ``user_api``
    tells them apart.
    """
    import numpy  # load the libraries threadpoolctl reports
    import scipy.linalg  # noqa: F401

    try:
        import threadpoolctl
    except ImportError:
        try:
            config = numpy.show_config(mode="dicts") or {}
        except TypeError:  # NumPy < 1.26 only prints its configuration
            config = {}
        found = config.get("Build Dependencies", {}).get("blas", {})
        return [
            {
                "source": "numpy.show_config",
                "name": found.get("name"),
                "version": found.get("version"),
                "config": found.get("openblas configuration"),
            }
        ]
    return [
        {
            "source": "threadpoolctl",
            "library": Path(pool.get("filepath", "")).name,
            "loaded_by": Path(pool.get("filepath", "")).parent.name.removesuffix(".libs"),
            "user_api": pool.get("user_api"),
            "internal_api": pool.get("internal_api"),
            "version": pool.get("version"),
            "architecture": pool.get("architecture"),
            "threads": pool.get("num_threads"),
        }
        for pool in threadpoolctl.threadpool_info()
    ]


def gpus() -> list[dict]:
    """GPU name, driver and memory from ``nvidia-smi``; empty when there is none."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = "name,driver_version,memory.total,compute_cap"
    try:
        text = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    cards = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            cards.append(
                {
                    "name": parts[0],
                    "driver": parts[1],
                    "memory": parts[2],
                    "compute_capability": parts[3] if len(parts) > 3 else None,
                }
            )
    return cards


def cuda_runtime() -> str | None:
    """The CUDA version PyTorch was built with, when torch is already imported."""
    torch = sys.modules.get("torch")
    return getattr(getattr(torch, "version", None), "cuda", None) if torch else None


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        return (
            subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def describe() -> dict:
    """The whole machine description, as stored in the JSON results."""
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": cores(),
        "memory_gib": memory_gib(),
        "blas": blas(),
        "gpus": gpus(),
        "cuda_runtime_torch": cuda_runtime(),
        "versions": versions(),
        "environment": {k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
        "git_commit": git_commit(),
    }


def summary(machine: dict) -> str:
    """One line naming the machine: ``2-core x86_64, AMD EPYC, OpenBLAS 0.3.31 (SkylakeX)``."""
    cpu = machine["cpu"].get("model_name") or machine["cpu"].get("processor")
    text = (
        f"{machine['cores']['usable'] or machine['cores']['logical']}-core "
        f"{platform.machine()}, {cpu}"
    )
    blases = []
    for lib in machine.get("blas") or []:
        if lib.get("user_api", "blas") != "blas":  # OpenMP runtimes threadpoolctl also lists
            continue
        name = lib.get("internal_api") or lib.get("name") or "BLAS"
        text_ = f"{name} {lib.get('version')}"
        if lib.get("architecture"):
            text_ += f" {lib['architecture']} kernels"
        if lib.get("loaded_by"):
            text_ = f"{lib['loaded_by']}: {text_}"
        blases.append(text_)
    if blases:
        text += ", BLAS " + "; ".join(sorted(set(blases)))
    for gpu in machine.get("gpus") or []:
        text += f"; GPU {gpu['name']} (driver {gpu['driver']}, {gpu['memory']})"
    return text
