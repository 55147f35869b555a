"""Smoke tests of the benchmark suite (``python -m benchmarks``): structure, not speed.

A tiny run must produce JSON and Markdown with every case and peer; flop counts, inputs,
the accuracy metric, the timing loop and the pass/fail checks are checked on their own.
No test asserts anything about how fast an op is.
"""

import json
import math
import time

import numpy as np
import pytest

from benchmarks import peers as peers_module
from benchmarks import presets
from benchmarks.__main__ import main
from benchmarks.accuracy import error_in_u
from benchmarks.cases import Case, build_cases, make_inputs, matrix_flops, parse_batch
from benchmarks.machine import describe
from benchmarks.peers import OURS, NumPyPeer, Peer
from benchmarks.report import Criterion, Report, load_json
from benchmarks.report import markdown as report_markdown
from benchmarks.runner import Result, Settings, run_case
from benchmarks.timing import Timing, measure


def test_flop_counts_follow_the_stated_conventions():
    n = 10
    assert matrix_flops("cholesky", n, n, n) == pytest.approx(n**3 / 3)
    assert matrix_flops("lu", n, n, n) == pytest.approx(2 * n**3 / 3)
    assert matrix_flops("solve", n, n, 3) == pytest.approx(2 * n**3 / 3 + 2 * n**2 * 3)
    assert matrix_flops("inv", n, n, n) == pytest.approx(2 * n**3)
    assert matrix_flops("qr", n, n, n) == pytest.approx(8 * n**3 / 3)
    assert matrix_flops("qr", 30, n, n) == pytest.approx(4 * 30 * n**2 - 4 * n**3 / 3)
    assert matrix_flops("eigh", n, n, n) == pytest.approx(9 * n**3)
    assert matrix_flops("eigvalsh", n, n, n) == pytest.approx(4 * n**3 / 3)
    assert matrix_flops("svd", n, n, n) == pytest.approx(21 * n**3)
    assert matrix_flops("matmul", 2, 3, 4) == pytest.approx(2 * 2 * 3 * 4)
    assert Case("cholesky", n, batch=(4, 5)).flops == pytest.approx(20 * n**3 / 3)
    with pytest.raises(ValueError, match=r"\[benchmarks\] unknown op"):
        matrix_flops("nope", n, n, n)


def test_parse_batch_and_case_labels():
    assert parse_batch("none") == ()
    assert parse_batch("1000") == (1000,)
    assert parse_batch("8x4") == (8, 4)
    with pytest.raises(ValueError, match="bad batch shape"):
        parse_batch("8xq")
    cases = build_cases(["qr", "svd"], [4, 8], [(), (3,)], ["float32"])
    assert len(cases) == 8
    assert Case("qr", 32, batch=(10000,)).label == "qr 10000x32x32 float32"
    with pytest.raises(ValueError, match="unknown dtype"):
        build_cases(["qr"], [4], [()], ["int8"])


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64"])
def test_inputs_are_shared_deterministic_and_well_posed(dtype):
    spd = make_inputs(Case("cholesky", 16, batch=(3,), dtype=dtype)).arrays[0]
    assert spd.shape == (3, 16, 16) and spd.dtype == np.dtype(dtype)
    assert spd.flags.c_contiguous
    np.testing.assert_allclose(spd, np.conj(np.swapaxes(spd, -1, -2)), atol=1e-5)
    assert np.linalg.eigvalsh(spd.astype(np.complex128)).min() > 0.5
    again = make_inputs(Case("cholesky", 16, batch=(3,), dtype=dtype)).arrays[0]
    np.testing.assert_array_equal(spd, again)
    a, b = make_inputs(Case("solve", 8, dtype=dtype, k=2)).arrays
    assert a.shape == (8, 8) and b.shape == (8, 2)
    assert np.linalg.cond(a) < 100


def test_accuracy_metric_separates_good_from_wrong_outputs():
    case = Case("qr", 32, batch=(2,))
    (a,) = make_inputs(case).arrays
    q, r = np.linalg.qr(a)
    assert error_in_u(case, (a,), (q, r)) < 30
    assert error_in_u(case, (a,), (q, r * (1 + 1e-3))) > 30
    case = Case("eigh", 24)
    (s,) = make_inputs(case).arrays
    w, v = np.linalg.eigh(s)
    assert error_in_u(case, (s,), (w, v)) < 60
    assert error_in_u(case, (s,), (w + 1e-3, v)) > 60
    case = Case("solve", 16)
    a, b = make_inputs(case).arrays
    assert error_in_u(case, (a, b), (np.linalg.solve(a, b),)) < 30
    assert error_in_u(case, (a, b), (np.full_like(b, np.nan),)) == math.inf
    assert error_in_u(Case("lu", 4), (np.eye(4),), (np.eye(4),)) is None


def test_measure_warms_up_caps_repeats_and_isolates_failures():
    calls = {"fast": 0, "broken": 0}

    def fast():
        calls["fast"] += 1

    def broken():
        calls["broken"] += 1
        raise RuntimeError("no such op\nsecond line")

    timings = measure(
        {"fast": fast, "broken": broken},
        warmup=2,
        repeats=4,
        budget_s=10.0,
        rounds=2,
        cooldown_s=0.0,
    )
    assert calls["fast"] == 2 + 4
    assert len(timings["fast"].times) == 4 and len(timings["fast"].warmup) == 2
    assert timings["fast"].ok and timings["fast"].min <= timings["fast"].median
    assert calls["broken"] == 1 and not timings["broken"].ok
    assert timings["broken"].error == "RuntimeError: no such op"
    slow = measure({"slow": lambda: None}, warmup=1, repeats=5, max_call_s=-1.0, cooldown_s=0)
    assert slow["slow"].single_run and len(slow["slow"].times) == 1


def test_measure_times_a_peer_whose_first_call_alone_was_slow():
    """A first call that compiles kernels (or a trace) is slow once: with more warm-ups the
    peer is timed on its warm calls as usual; two slow warm-ups in a row end the warm-up
    and the peer is timed once more (a warm-up is never the sample)."""
    durations = iter([0.05, 0.0, 0.0, 0.0, 0.0])

    def compiles_first():
        time.sleep(next(durations))

    first = measure({"ours": compiles_first}, warmup=2, repeats=3, max_call_s=0.02, cooldown_s=0.0)[
        "ours"
    ]
    assert not first.single_run and len(first.warmup) == 2 and len(first.times) == 3
    assert first.min < 0.02
    slow = measure(
        {"slow": lambda: time.sleep(0.03)}, warmup=3, repeats=3, max_call_s=0.02, cooldown_s=0
    )["slow"]
    assert slow.single_run and len(slow.warmup) == 2 and len(slow.times) == 1


def test_measure_warms_up_a_named_peer_more():
    """``warmup_for``: mlx_linalg's second call of a shape traces its graph, so the GPU
    preset warms it up twice; the other peers keep ``warmup``."""
    timings = measure(
        {"ours": lambda: None, "peer": lambda: None},
        warmup=1,
        warmup_for={"ours": 2},
        repeats=3,
        cooldown_s=0.0,
    )
    assert len(timings["ours"].warmup) == 2 and len(timings["peer"].warmup) == 1
    assert len(timings["ours"].times) == len(timings["peer"].times) == 3
    assert presets.get("gpu-h100").settings.warmup_for == {"mlx_linalg": 2}


def _result(peer: str, seconds: float) -> Result:
    return Result(Case("qr", 8), peer, "ok", Timing(times=[seconds]))


def test_criteria_use_the_fastest_reference_peer():
    by_peer = {
        OURS: _result(OURS, 1.0),
        "numpy": _result("numpy", 0.9),
        "scipy": _result("scipy", 0.5),
        "mx.linalg": _result("mx.linalg", 6.0),
    }
    ratio = Criterion(("numpy", "scipy"), "max_ratio", 1.25).evaluate(by_peer)
    assert ratio["ratio"] == pytest.approx(2.0) and ratio["passed"] is False
    speedup = Criterion(("mx.linalg",), "min_speedup", 5.0).evaluate(by_peer)
    assert speedup["ratio"] == pytest.approx(6.0) and speedup["passed"] is True
    missing = Criterion(("torch",), "max_ratio", 1.0).evaluate(by_peer)
    assert missing["passed"] is None


class _HoldingPeer(Peer):
    """A peer that keeps GPU memory (as a framework's pool would) and fails on n > 4."""

    name = "holder"

    def __init__(self):
        super().__init__("gpu")
        self._ops = {"qr": self._qr}

    @staticmethod
    def _qr(a):
        if a.shape[-1] > 4:
            raise MemoryError("out of memory")
        return np.linalg.qr(a)

    def held_bytes(self):
        return 3 * 2**30


def test_error_rows_show_the_gpu_memory_each_peer_held(tmp_path):
    """A case that fails shows, under the errors, the GPU memory each peer held after it;
    the JSON keeps every peer's figure (None for peers without GPU memory)."""
    settings = Settings(warmup=1, repeats=1, budget_s=0.01, cooldown_s=0.0)
    peers = {"holder": _HoldingPeer(), "numpy": NumPyPeer("cpu")}
    peers["numpy"].load()
    results = run_case(Case("qr", 8), peers, settings)
    assert [(r.peer, r.status, r.held_bytes) for r in results] == [
        ("holder", "error", 3 * 2**30),
        ("numpy", "ok", None),
    ]
    report = Report("t", describe(), {}, {}, ["holder", "numpy"], {}, results)
    text = report_markdown(report)
    assert "- qr 8x8 float32, holder: MemoryError: out of memory" in text
    assert "- GPU memory held after qr 8x8 float32 (GiB): holder 3.0" in text
    assert load_json(report.as_json()).results[0].held_bytes == 3 * 2**30


class _FakeMX:
    """The two allocator calls of ``mx`` that the benchmark's MLX peer makes."""

    def __init__(self, limit):
        self.limit = limit

    def get_memory_limit(self):
        return self.limit

    def set_memory_limit(self, limit):
        self.limit = limit


def test_mlx_gpu_peer_caps_mlx_memory_once_and_the_report_says_so(monkeypatch):
    """On a GPU the mlx_linalg peer halves MLX's memory limit once per process (the peers
    share the GPU), whatever number of times it loads; the report's timing line names it."""
    monkeypatch.setattr(peers_module, "_mlx_default_limit", None)
    fake = _FakeMX(80 * 2**30)
    peers_module.MLXLinalg._share_gpu(fake)
    peers_module.MLXLinalg._share_gpu(fake)
    assert fake.limit == 40 * 2**30
    config = {"peer_settings": {OURS: {"memory_limit_gib": 40.0, "memory_limit_share": 0.5}}}
    report = Report("t", describe(), config, {}, [OURS], {}, [])
    assert "MLX memory limit 40.0 GiB" in report_markdown(report)


def test_tiny_run_writes_json_and_markdown(tmp_path):
    out = tmp_path / "run"
    status = main(
        [
            "--ops",
            "cholesky,solve",
            "--sizes",
            "8",
            "--batch",
            "none,3",
            "--device",
            "cpu",
            "--peers",
            "mx.linalg,numpy,scipy",
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--budget",
            "0.01",
            "--cooldown",
            "0",
            "--peak-gflops",
            "10",
            "--no-plots",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    data = json.loads((out / "results.json").read_text())
    assert data["peers"] == [OURS, "mx.linalg", "numpy", "scipy"]
    assert data["machine"]["cores"]["logical"] >= 1
    assert data["machine"]["versions"]["numpy"] == np.__version__
    assert data["peak"]["float32"] == {
        "dtype": "float32",
        "gflops": 10.0,
        "source": "given by --peak-gflops",
    }
    labels = [s["case"] for s in data["summary"]]
    assert labels == [
        "cholesky 8x8 float32",
        "cholesky 3x8x8 float32",
        "solve 8x8 float32",
        "solve 3x8x8 float32",
    ]
    assert len(data["results"]) == 4 * 4
    for row in data["results"]:
        if row["peer"] == "numpy" and row["op"] == "cholesky":
            assert row["status"] == "ok" and row["runs"] >= 1
            assert row["min_s"] <= row["median_s"]
            assert row["gflops"] == pytest.approx(row["flops"] / row["min_s"] / 1e9)
            assert row["error_in_u"] < 30
    for summary in data["summary"]:
        assert summary["ours_min_s"] > 0 and summary["best_peer"] in {"mx.linalg", "numpy", "scipy"}
        assert summary["ratio_to_best"] == pytest.approx(
            summary["ours_min_s"] / summary["best_peer_min_s"]
        )
    markdown = (out / "results.md").read_text()
    assert markdown == report_markdown(load_json(data))
    assert "| case | mlx_linalg ms min (median) | mx.linalg ms | numpy ms | scipy ms |" in markdown
    assert "| solve 3x8x8 float32 |" in markdown
    assert data["machine_summary"] in markdown


def test_scipy_lacks_matmul_and_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    main(
        [
            "--ops",
            "matmul,inv",
            "--sizes",
            "4,8",
            "--device",
            "cpu",
            "--peers",
            "scipy",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--cooldown",
            "0",
            "--peak-gflops",
            "1",
            "--no-check",
            "--out",
            str(out),
        ]
    )
    data = json.loads((out / "results.json").read_text())
    statuses = {(r["op"], r["n"]): r["status"] for r in data["results"] if r["peer"] == "scipy"}
    assert statuses[("matmul", 4)] == "unsupported" and statuses[("inv", 8)] == "ok"
    assert (out / "time_vs_n.png").stat().st_size > 0
    assert (out / "ratios.png").stat().st_size > 0
    assert "![time_vs_n](time_vs_n.png)" in (out / "results.md").read_text()


def test_mlx_peers_keep_the_dtype_so_float64_is_float64_accurate(tmp_path):
    out = tmp_path / "run"
    main(
        [
            "--ops",
            "cholesky,eigh",
            "--sizes",
            "12",
            "--dtypes",
            "float64",
            "--device",
            "cpu",
            "--peers",
            "mx.linalg",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--cooldown",
            "0",
            "--peak-gflops",
            "1",
            "--no-plots",
            "--out",
            str(out),
        ]
    )
    data = json.loads((out / "results.json").read_text())
    errors = {(r["op"], r["peer"]): r["error_in_u"] for r in data["results"]}
    assert errors[("cholesky", OURS)] < 30 and errors[("eigh", OURS)] < 60
    assert errors[("cholesky", "mx.linalg")] < 30
