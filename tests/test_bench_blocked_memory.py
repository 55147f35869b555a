"""tools/bench_blocked_memory.py's device-memory reading and a small CPU run (no GPU needed)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "bench_blocked_memory", ROOT / "tools/bench_blocked_memory.py"
)
bench_blocked_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_blocked_memory)


def test_largest_sample_of_nvidia_smi_output():
    assert bench_blocked_memory.largest_used_mib("1121\n78391\n13313\n") == 78391
    assert bench_blocked_memory.largest_used_mib("") is None
    assert bench_blocked_memory.largest_used_mib("[N/A]\n512\n") == 512


def test_cpu_run_reports_peak_and_each_call():
    """The blocked graph with the MLX-op building blocks on the CPU, two calls each, with
    the device-memory columns (no nvidia-smi on a machine without an NVIDIA GPU)."""
    run = subprocess.run(
        [
            sys.executable,
            "tools/bench_blocked_memory.py",
            "--device",
            "cpu",
            "--sizes",
            "128",
            "--ops",
            "cholesky,qr",
            "--calls",
            "2",
            "--device-memory",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = run.stdout.splitlines()
    assert [line.split()[1:4] for line in lines] == [
        ["cholesky", "n=", "128"],
        ["cholesky", "n=", "128"],
        ["qr", "n=", "128"],
        ["qr", "n=", "128"],
    ]
    for line in lines:
        peak = float(line.split("peak")[1].split()[0])
        assert 0 < peak < 30  # n² float32 units: a few arrays of the matrix's size
        assert "MLX cache after" in line
