"""The conformance suite's large tier (``python -m conformance --large``).

Its plan (ops, classes, orders, float32 only; every op at an order where its GPU path is the
blocked one) is checked without building a matrix, its condition-number estimates against
SVDs on small matrices, and the whole tier runs end to end on the CPU with its orders shrunk
to 48..96 (the real ones, 2048..8192, are for a GPU machine with 16 host cores).
"""

import json

import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg as la
from conformance import large, runner, zoo
from conformance import ops as O
from mlx_linalg._gpu import blocked_rules, qdwh_svd, two_stage

# Public functions whose large GPU path is another op's blocked graph.
BUILT_ON = {"cho_factor": "cholesky", "lstsq": "qr"}
SPECTRAL = {"eig", "eigvals", "svd", "polar", "lstsq", "pinv", "matrix_rank", "orth",
            "null_space", "matmul"}


def _order(name: str) -> int:
    """max(M, N) from a case name such as ``stack_2/2x2048x2048``."""
    return max(int(x) for x in name.split("/")[1].split("x")[-2:])


def _blocked_fn(op: str) -> str:
    fn = O.SPECS[op].fn
    return BUILT_ON.get(fn, fn)


def _short(name: str) -> int:
    """min(M, N) from a case name."""
    return min(int(x) for x in name.split("/")[1].split("x")[-2:])


def _crossover(op: str) -> int:
    """The order from which ``op``'s GPU path is the blocked graph or the two-stage route."""
    fn = _blocked_fn(op)
    return two_stage.CROSSOVER[fn] if fn in two_stage.CROSSOVER else blocked_rules.CROSSOVER[fn]


def _takes_its_gpu_route(op: str, name: str) -> bool:
    """Whether a case of this name is within the GPU route of ``op`` (the blocked graph,
    the two-stage eigh, or for svd and svdvals the QDWH route: short side and aspect)."""
    fn = O.SPECS[op].fn
    if fn in qdwh_svd.CROSSOVER:
        short, long = _short(name), _order(name)
        return short >= qdwh_svd.CROSSOVER[fn] and long <= qdwh_svd.MAX_ASPECT * short
    return _order(name) >= _crossover(op)


# ----------------------------------------------------------------------------- the plan


def test_every_op_runs_where_its_gpu_path_is_the_blocked_or_two_stage_one():
    assert set(large.OPS) <= set(O.SPECS)
    assert not set(large.OPS) & SPECTRAL
    # every blocked algorithm is exercised ...
    assert set(blocked_rules.RULES) <= {_blocked_fn(op) for op in large.OPS}
    # ... and every case is at least as large as the crossover of each op run on it
    for spec in large.specs():
        assert set(spec.ops) <= set(large.OPS), spec.name
        for op in spec.ops:
            assert _takes_its_gpu_route(op, spec.name), (spec.name, op)
    assert {op for spec in large.specs() for op in spec.ops} == set(large.OPS)


def test_orders_classes_and_dtypes():
    by_class: dict[str, set[int]] = {}
    for spec in large.specs():
        by_class.setdefault(spec.cls, set()).add(_order(spec.name))
    assert large.SIZES == (2048, 4096, 8192)
    for cls in ("gaussian", "spd_wishart", "triangular"):
        assert by_class[cls] == {2048, 4096, 8192}, cls
    # the Haar-built (prescribed-spectrum) classes stay below 8192
    for cls in ("cond_1e3", "cond_1e5", "spd_cond_1e3"):
        assert max(by_class[cls]) <= 4096, cls
    assert by_class["tall"] == {4096}
    stacks = [s for s in large.specs() if s.cls.startswith("stack_")]
    assert stacks and all(int(s.name.split("/")[1].split("x")[0]) > 1 for s in stacks)
    assert {"nonfinite", "not_pd", "singular"} <= set(by_class)
    assert runner.tier_dtypes("large") == ["float32"]
    assert runner.tier_ops("large") == list(large.OPS)
    assert zoo.class_names("large") == large.class_names()


def test_the_plan_builds_no_matrix_and_other_dtypes_have_no_cases(monkeypatch, capsys):
    from conformance.__main__ import main

    def no_build(*args, **kwargs):
        raise AssertionError("a matrix was built")

    monkeypatch.setattr(zoo, "round_to", no_build)
    for dtype in ("float64", "complex64", "float16", "bfloat16"):
        assert zoo.cases("large", dtype) == []
    assert main(["--large", "--list"]) == 0
    out = capsys.readouterr().out
    assert "skipped:" in out and "svd" in out.split("skipped:")[1]
    assert "gaussian/8192x8192:" in out and "dtypes: float32\n" in out
    assert main(["--large", "--ops", "eig", "--no-progress"]) == 2
    assert main(["--large", "--dtypes", "float64", "--no-progress"]) == 2
    assert main(["--large", "--classes", "hilbert", "--no-progress"]) == 2


def test_sizes_split_the_plan_without_building_a_matrix(monkeypatch, capsys):
    from conformance.__main__ import main

    def no_build(*args, **kwargs):
        raise AssertionError("a matrix was built")

    monkeypatch.setattr(zoo, "round_to", no_build)

    def listed(*argv):
        assert main(["--large", "--list", *argv]) == 0
        out = capsys.readouterr().out.split("cases (matrix: ops that run where they apply):\n")
        return [line.split(":")[0].strip() for line in out[1].splitlines()]

    everything = listed()
    parts = {n: listed("--sizes", str(n)) for n in large.SIZES}
    assert not hasattr(large, "ONLY_SIZES")  # a parameter, not a module global
    assert sorted(sum(parts.values(), [])) == sorted(everything)
    assert all(_order(name) == 8192 for name in parts[8192]) and len(parts[8192]) == 4
    assert all(_order(name) == 4096 for name in parts[4096]) and parts[4096]
    # the stacks, policy stacks and the tall matrix run with the smallest order
    assert {"tall/4096x2048", "stack_2/2x2048x2048", "not_pd/3x2048x2048"} <= set(parts[2048])
    assert listed("--sizes", "4096, 8192") == parts[4096] + parts[8192]
    assert {s.order for s in large.specs()} == set(large.SIZES)
    for bad in (["--large", "--sizes", "1024"], ["--large", "--sizes", "big"],
                ["--large", "--sizes", ","], ["--quick", "--sizes", "2048"]):
        assert main([*bad, "--no-progress"]) == 2, bad
        assert "--sizes" in capsys.readouterr().out


# ----------------------------------------------------------------------------- κ estimates

EPS64 = float(np.finfo(np.float64).eps)


def _matrices(n: int):
    r = np.random.default_rng(n)
    yield "gaussian", zoo.gaussian(r, (n, n), False), {}
    yield "upper", zoo._triangular(n, "upper")(r, False), {"triangular": "upper"}
    yield "lower", zoo._triangular(n, "lower")(r, False), {"triangular": "lower"}
    yield "wishart", zoo.symmetrize(large.wishart_spd(r, n)), {"hermitian": True}
    yield "cond_1e5", zoo.prescribed(r, n, n, zoo.geometric(n, 1e5), False), {}
    scaled = zoo.gaussian(r, (n, n), False) * 2.0 ** r.integers(-20, 20, (n, 1))
    yield "badly_scaled", scaled, {}


@pytest.mark.parametrize("n", [40, 160])
def test_estimate_cond_is_a_lower_bound_within_2e_4_of_the_svd(n):
    for name, a, kw in _matrices(n):
        a = zoo.round_to(a, "float32")
        cond, scaled, spd = large.estimate_cond(a, **kw)
        exact, exact_scaled = zoo._cond(a), zoo._cond(zoo._equilibrated(a))
        # Above the SVD's κ only by the SVD's own error: its smallest singular value is
        # accurate to about u·κ relative (float64 u; κ 1e13 for the badly scaled rows,
        # where the estimate came out 5e-5 above on one BLAS build).
        assert exact * (1 - 2e-4) <= cond <= exact * (1 + 1e-9 + 10 * EPS64 * exact), (
            name, cond, exact
        )
        upper = exact_scaled * (1 + 1e-9 + 10 * EPS64 * exact_scaled)
        assert exact_scaled * (1 - 2e-4) <= scaled <= upper, name
        assert spd == (name == "wishart")
    for shape in ((2 * n, n), (n // 2, n)):
        a = zoo.gaussian(np.random.default_rng(1), shape, False)
        cond, scaled, spd = large.estimate_cond(a)
        assert cond == pytest.approx(zoo._cond(a), rel=2e-4) and scaled is None and not spd


def test_estimate_cond_of_singular_and_indefinite_matrices():
    a = zoo.gaussian(np.random.default_rng(0), (30, 30), False)
    a[:, 7] = 0
    assert large.estimate_cond(a)[:2] == (np.inf, np.inf)
    t = np.triu(a + 10 * np.eye(30))
    t[4, 4] = 0
    assert large.estimate_cond(t, triangular="upper")[0] == np.inf
    indefinite = zoo.symmetrize(large.wishart_spd(np.random.default_rng(1), 30) - 2 * np.eye(30))
    cond, _, spd = large.estimate_cond(indefinite, hermitian=True)
    assert not spd and cond == pytest.approx(zoo._cond(indefinite), rel=1e-3)


def test_equilibration_is_the_zoos():
    a = zoo.gaussian(np.random.default_rng(2), (50, 50), False) * 2.0 ** np.arange(-25, 25)
    r, c = large.equilibration(a)
    np.testing.assert_array_equal(r[:, None] * a * c[None, :], zoo._equilibrated(a))


def test_the_prescribed_condition_is_the_rounded_matrix_s():
    for cond in (1e3, 1e5):
        a = zoo.round_to(large._prescribed(256, cond)(np.random.default_rng(3)), "float32")
        assert zoo._cond(a) == pytest.approx(cond, rel=1e-3)


# ----------------------------------------------------------------------------- scaled down


@pytest.fixture(scope="module")
def scaled():
    """The tier with its orders shrunk to 48, 64, 96 (stacks 2 x 48 and 3 x 32, policy
    stacks of 32), and the zoo's SVD-based analysis made to fail if anything calls it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(large, "SIZES", (48, 64, 96))
        mp.setattr(large, "GAUSSIAN_STACK", (2, 48))
        mp.setattr(large, "SMALL_STACK", (3, 32))
        mp.setattr(large, "POLICY_N", 32)

        def no_svd(*args, **kwargs):
            raise AssertionError("the large tier must not take SVDs of its matrices")

        mp.setattr(zoo, "_analyse", no_svd)
        mp.setattr(zoo, "_cond", no_svd)
        yield


@pytest.fixture(scope="module")
def scaled_result(scaled):
    return runner.run_suite("large", device="cpu")


def test_scaled_tier_passes_on_the_cpu(scaled_result):
    res = scaled_result
    assert res.records and res.passed, [(r.op, r.case) for r in res.failures]
    assert res.meta["tier"] == "large" and res.meta["large_orders"] == [48, 64, 96]
    assert {r.dtype for r in res.records} == {"float32"}
    assert {r.op for r in res.records} == set(large.OPS)
    assert {r.cls for r in res.records} == set(large.class_names())
    assert {max(r.shape[-2:]) for r in res.records if r.cls == "gaussian"} == {48, 64, 96}
    ops_of = {s.name: s.ops for s in large.specs()}
    assert all(r.op in ops_of[r.case] for r in res.records)
    # every case of the plan ran each of its ops that applies, and the policy cases ran
    assert {"nonfinite", "not_pd", "singular"} <= {r.policy for r in res.records}
    # each phase's time is booked under the order a case is planned under (the stacks of
    # order 32 and the tall matrix under the smallest order)
    booked = {(p["phase"], p["order"]) for p in res.meta["phases"]}
    assert booked == {(p, n) for p in runner.PHASES for n in (48, 64, 96)}
    assert all(0 <= p["sys"] <= p["cpu"] + 1e-6 for p in res.meta["phases"])
    assert all(r.cond is not None and r.cond >= 1 for r in res.records if r.policy is None)


def test_scaled_tier_reports_planted_bugs(scaled):
    real_qr, real_cholesky = la.qr, la.cholesky

    def perturbed_qr(x, mode="reduced", *, stream=None):
        q, r = real_qr(x, mode=mode, stream=stream)
        return la.QRResult(q + 1e-4 * mx.ones_like(q), r)

    def zeroed_cholesky(x, *, upper=False, stream=None):
        factor = real_cholesky(x, upper=upper, stream=stream)
        return mx.where(mx.isnan(factor), 0, factor)

    res = runner.run_suite("large", ops={"qr": perturbed_qr, "cholesky": zeroed_cholesky},
                           only_ops=["qr", "cholesky"], classes=["gaussian", "not_pd"],
                           device="cpu")
    failing = {(r.op, r.cls) for r in res.failures}
    assert {("qr", "gaussian"), ("cholesky", "not_pd")} <= failing
    names = {m.name for r in res.failures for m in r.metrics if not m.passed}
    assert {"ratio", "failed_entry_nan:L"} <= names
    # an op filter builds only the cases that run one of the ops
    built = {c.name for c in zoo.cases("large", "float32", ops={"cholesky"})}
    assert built == {s.name for s in large.specs() if "cholesky" in s.ops}
    # ... and a size filter only those planned under the sizes
    built = {c.name for c in large.cases("float32", ops={"cholesky", "qr"}, sizes={64})}
    assert built == {"gaussian/64x64", "spd_wishart/64x64", "cond_1e3/64x64"}


def test_scaled_tier_from_the_command_line(scaled, tmp_path, capsys):
    from conformance.__main__ import main

    trace = tmp_path / "trace.txt"
    status = main(["--large", "--device", "cpu", "--ops", "cholesky,solve_triangular",
                   "--classes", "spd_wishart,triangular", "--sizes", "48,96",
                   "--out", str(tmp_path), "--trace", str(trace), "--no-progress",
                   "--no-plots"])
    assert status == 0 and not hasattr(large, "BUILD_LOG")
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert data["meta"]["tier"] == "large" and data["summary"]["failures"] == 0
    assert {c["op"] for c in data["cases"]} == {"cholesky", "cholesky[upper]", "solve_triangular",
                                              "solve_triangular[T]"}
    assert {c["class"] for c in data["cases"]} == {"spd_wishart", "triangular"}
    assert {max(c["shape"][-2:]) for c in data["cases"]} == {48, 96}
    # the trace gives each matrix's build time before the ops' lines
    built = [line for line in trace.read_text().splitlines() if line.startswith("build ")]
    assert [line.split()[1] for line in built] == [
        f"{name}/{n}x{n}" for n in (48, 96) for name in ("spd_wishart", "upper", "lower")]
    assert all(" matrix " in line and " κ " in line for line in built)
    # the host summary and estimate first, the seconds of each phase per order last
    out = capsys.readouterr().out
    assert "Gflop/s" in out and "estimated host seconds" in out
    table = out.split("seconds per phase")[1].splitlines()
    assert [line.split()[0] for line in table[2:4]] == ["48", "96"]


def test_the_estimate_counts_the_planned_work():
    rates = (100.0, 1.0, 100.0)
    whole = large.estimate(rates=rates)
    small, medium, big = large.SIZES  # the real ones, or the scaled fixture's
    assert set(whole) == {small, medium, big} and all(s > 0 for s in whole.values())
    assert whole[big] > whole[medium]  # n³: 8x the work of each matrix
    part = large.estimate(sizes={big}, classes={"triangular"}, rates=rates)
    assert set(part) == {big} and 0 < part[big] < whole[big]
    assert set(large.HOST_FLOPS) == set(large.OPS)
    assert set(large.BUILD_FLOPS) == {c for c in large.class_names()
                                      if not c.startswith("stack_")}


def test_a_large_run_stopped_by_sigterm_still_prints_its_phases(scaled, tmp_path, capsys,
                                                                monkeypatch):
    import os
    import signal

    from conformance.__main__ import main

    real_run_case = runner.run_case

    def killed(*args, **kwargs):
        rec = real_run_case(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` does
        return rec

    monkeypatch.setattr(runner, "run_case", killed)
    before = signal.getsignal(signal.SIGTERM)
    status = main(["--large", "--device", "cpu", "--classes", "triangular", "--sizes", "48",
                   "--out", str(tmp_path), "--no-progress", "--no-plots"])
    out = capsys.readouterr().out
    assert status == 1 and "stopped by SIGTERM" in out
    table = out.split("seconds per phase")[1].splitlines()
    assert table[2].split()[0] == "48"  # the build and the first case, booked under 48
    assert signal.getsignal(signal.SIGTERM) is before
