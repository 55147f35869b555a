"""tools/kernel_times.py's summary of an ncu CSV record (no GPU needed)."""

import pytest
import tool_scripts

kernel_times = tool_scripts.load("tools/kernel_times.py")

HEADER = (
    '"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream",'
    '"Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit",'
    '"Metric Value"'
)


def _row(i: int, name: str, unit: str, value: str) -> str:
    return (
        f'"{i}","1","python3","host","{name}","1","14","(256, 1, 1)","(1, 1, 1)","0","9.0",'
        f'"Command line profiler metrics","gpu__time_duration.sum","{unit}","{value}"'
    )


def test_summary_splits_at_markers_and_sums_by_kernel():
    lines = [
        "==PROF== Connected to process 1",
        HEADER,
        _row(0, "void warmup_kernel(float *)", "ns", "9,999"),  # before any marker: dropped
        _row(1, "mlx::custom_kernel_op_marker(const float *, float *)", "ns", "2,000"),
        _row(2, "mlx::custom_kernel_mlx_linalg_lu_panel_64(const float *)", "us", "121.5"),
        _row(3, "mlx::custom_kernel_mlx_linalg_lu_panel_64(const float *)", "ns", "1,500"),
        _row(4, "void cutlass::Kernel2<gemm>(Params)", "ms", "0.25"),
        _row(5, "mlx::custom_kernel_op_marker(const float *, float *)", "ns", "2,000"),
        _row(6, "void cutlass::Kernel2<gemm>(Params)", "ns", "4,000"),
        "==PROF== Disconnected from process 1",
    ]
    first, second = kernel_times.summarize(lines)
    assert first[0] == 3
    panel = first[1]["mlx::custom_kernel_mlx_linalg_lu_panel_64(const float *)"]
    assert panel[0] == 2 and panel[1] == pytest.approx(123.0)
    assert first[1]["void cutlass::Kernel2<gemm>(Params)"] == (1, pytest.approx(250.0))
    assert second == (1, {"void cutlass::Kernel2<gemm>(Params)": (1, pytest.approx(4.0))})


def test_summary_of_a_record_without_markers_is_empty():
    assert kernel_times.summarize([HEADER, _row(0, "k()", "ns", "10")]) == []


def test_timeline_summary_splits_calls_and_counts_overlap_once():
    gap = kernel_times.GAP_MS * 1e3
    kernels = [
        (0.0, 10.0, "panel"),
        (5.0, 20.0, "gemm"),  # overlaps the panel: 5 µs counted once in busy
        (30.0, 35.0, "panel"),  # after an idle 10 µs: inside the span, not busy
        (gap, gap + 4.0, "panel"),  # the next call
    ]
    first, second = kernel_times.timeline_summary(kernels)
    count, span, busy, total, by_name = first
    assert (count, span, busy, total) == (3, 35.0, 25.0, 30.0)
    assert by_name == {"panel": (2, 15.0), "gemm": (1, 15.0)}
    assert second[:4] == (1, 4.0, 4.0, 4.0)


def test_timeline_summary_of_a_kernel_inside_another():
    (call,) = kernel_times.timeline_summary([(0.0, 50.0, "a"), (10.0, 20.0, "b")])
    assert call[1:4] == (50.0, 50.0, 60.0)
