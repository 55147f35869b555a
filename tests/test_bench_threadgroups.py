"""tools/bench_threadgroups.py on the CPU: its case parser, its table rows, and its sweep's
bit-equality check (with stand-in launches and timer; the kernels need a GPU)."""

import numpy as np
import pytest
import tool_scripts

bench = tool_scripts.load("tools/bench_threadgroups.py")


def test_parse_cases():
    assert bench.parse_cases("1000x32x32, 4X128x32") == [(1000, 32, 32), (4, 128, 32)]
    for bad in ("1000x32", "10x0x3", "axbxc"):
        with pytest.raises(ValueError, match="BATCHxMxN"):
            bench.parse_cases(bad)


def test_sweep_times_every_size_and_checks_the_outputs():
    calls = []

    def launch(size):
        calls.append(size)
        return [np.arange(6.0).reshape(2, 3), np.array([size > 4])]

    times, same = bench.sweep([1, 2, 4], launch, lambda f: float(len(f()[0])))
    assert times == {1: 2.0, 2: 2.0, 4: 2.0} and same
    assert sorted(set(calls)) == [1, 2, 4]
    _, same = bench.sweep([2, 8], launch, lambda f: 1.0)
    assert not same  # size 8 gave another second output


def test_sweep_counts_nan_in_the_same_place_as_equal():
    def launch(size):
        return [np.array([1.0, np.nan])]

    assert bench.sweep([1, 2], launch, lambda f: 1.0)[1]


def test_row_names_the_rule_and_its_time():
    line = bench.row("qr_small 1000 x 32 x 32", {8: 69.6, 4: 75.2}, True, 4, "G")
    assert line.startswith("qr_small 1000 x 32 x 32: G8    69.6  G4    75.2")
    assert line.endswith("bit-equal True  rule G4 (75.2)")
    assert bench.row("x", {8: 1.0}, False, 2, "G").endswith("rule G2 (not timed)")
