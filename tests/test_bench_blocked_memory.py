"""tools/bench_blocked_memory.py's device-memory reading and a small CPU run (no GPU needed)."""

import tool_scripts

bench_blocked_memory = tool_scripts.load("tools/bench_blocked_memory.py")


def test_largest_sample_of_nvidia_smi_output():
    assert bench_blocked_memory.largest_used_mib("1121\n78391\n13313\n") == 78391
    assert bench_blocked_memory.largest_used_mib("") is None
    assert bench_blocked_memory.largest_used_mib("[N/A]\n512\n") == 512


def test_cpu_run_reports_peak_and_each_call():
    """The blocked graph with the MLX-op building blocks on the CPU, two calls each, with
    the device-memory columns (no nvidia-smi on a machine without an NVIDIA GPU)."""
    lines = tool_scripts.run(
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
    ).splitlines()
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
