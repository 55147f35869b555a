"""tools/bench_long_products.py runs its products and eigh on the CPU (no split, no
chunks there: the three products agree) and reports float32-level errors."""

import mlx.core as mx
import numpy as np
import tool_scripts

bench = tool_scripts.load("tools/bench_long_products.py")


def test_product_rows_name_the_three_products_with_float32_errors():
    with mx.stream(mx.cpu):
        rows = bench.product_rows(300, 1, split=False)
    assert [row.split()[1] for row in rows] == ["chunked", "whole", "mx.matmul"]
    for row in rows:
        frobenius = float(row.split("‖C − AB‖/‖AB‖ ")[1].split()[0])
        assert 0 < frobenius < 1e-5, row


def test_errors_are_zero_for_the_exact_product_and_grow_with_a_perturbation():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((20, 30)), rng.standard_normal((30, 10))
    reference = bench.reference(mx.array(a, dtype=mx.float32), mx.array(b, dtype=mx.float32))
    c = mx.array(reference[0], dtype=mx.float32)
    small = bench.errors(c, *reference)
    assert small[0] < 1e-6 and small[1] < 1e-6
    large = bench.errors(c * 1.001, *reference)
    assert large[0] > 5e-4 and large[1] > 5e-4


def test_eigh_row_reports_time_and_memory():
    with mx.stream(mx.cpu):
        row = bench.eigh_row(40)
    assert row.startswith("eigh n=40:") and "GiB above its input" in row
