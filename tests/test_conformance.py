"""The conformance suite itself: it passes correct code and reports planted wrong code.

Each planted implementation is wrong in one way a real GPU port could be (a perturbed Q,
unsorted eigenvalues, a TF32-quality product, a swapped batch entry, a failure that is not
NaN); the suite must fail exactly the affected op, and pass the real one on the same cases.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg as la
from conformance import checks, runner, zoo
from conformance import metrics as M
from conformance import ops as O

ROOT = Path(__file__).resolve().parents[1]
VALUE_CLASSES = ["gaussian", "cond_1e3", "tall", "stack_7"]


def run(ops=None, only=("qr",), dtypes=("float32",), classes=VALUE_CLASSES):
    return runner.run_suite("quick", ops=ops, only_ops=list(only), dtypes=list(dtypes),
                            classes=list(classes))


def failing_metrics(result) -> set[str]:
    return {m.name for r in result.failures for m in r.metrics if not m.passed}


# ----------------------------------------------------------------------------- planted bugs


def perturbed_qr(x, mode="reduced", *, stream=None):
    q, r = la.qr(x, mode=mode, stream=stream)
    return la.QRResult(q + 1e-4 * mx.ones_like(q), r)


def unsorted_eigh(x, *, stream=None):
    w, v = la.eigh(x, stream=stream)
    return la.EighResult(w[..., ::-1], v[..., ::-1])


def _tf32(x: mx.array) -> mx.array:
    """Round toward zero to TF32 (10 explicit mantissa bits), as tensor cores read float32."""
    a = np.asarray(x.astype(mx.float32)).view(np.uint32) & np.uint32(0xFFFFE000)
    return mx.array(a.view(np.float32)).astype(x.dtype)


def tf32_matmul(x1, x2, *, stream=None):
    if x1.dtype != mx.float32:
        return la.matmul(x1, x2, stream=stream)
    return la.matmul(_tf32(x1), _tf32(x2), stream=stream)


def tf32_solve(x1, x2, *, stream=None):
    """One solve whose residual update runs through a TF32 product (a plausible GPU bug)."""
    x = la.solve(x1, x2, stream=stream)
    if x1.dtype != mx.float32:
        return x
    r = x2 - mx.matmul(_tf32(x1), _tf32(x))
    return x + la.solve(x1, r, stream=stream)


def swapped_svd(x, *, full_matrices=True, stream=None):
    u, s, vh = la.svd(x, full_matrices=full_matrices, stream=stream)
    if x.ndim < 3 or x.shape[0] < 2:
        return la.SVDResult(u, s, vh)
    order = mx.array([1, 0] + list(range(2, x.shape[0])))
    return la.SVDResult(u[order], s[order], vh[order])


def garbage_cholesky(x, *, upper=False, stream=None):
    """Cholesky that returns zeros instead of NaN for a matrix that is not PD."""
    lower = la.cholesky(x, upper=upper, stream=stream)
    return mx.where(mx.isnan(lower), 0, lower)


# ----------------------------------------------------------------------------- tests


def test_real_qr_passes_where_the_planted_ones_are_checked():
    result = run()
    assert result.records and result.passed, failing_metrics(result)


def test_perturbed_q_is_reported():
    result = run(ops={"qr": perturbed_qr})
    assert not result.passed
    assert {"ratio", "ratio_vs_lapack"} <= failing_metrics(result)
    # every value case of qr fails, in each class
    assert {r.cls for r in result.failures} == set(VALUE_CLASSES)


def test_unsorted_eigenvalues_are_reported():
    classes = ["spd", "sym_indefinite", "stack_7"]
    assert run(only=("eigh",), classes=classes).passed
    result = run(ops={"eigh": unsorted_eigh}, only=("eigh",), classes=classes)
    assert "eigenvalues_ascending" in failing_metrics(result)
    assert {r.cls for r in result.failures} == set(classes)


def test_tf32_product_is_reported():
    classes = ["gaussian", "cond_1e0", "stack_7"]
    assert run(only=("matmul",), classes=classes).passed
    result = run(ops={"matmul": tf32_matmul}, only=("matmul",), dtypes=("float32", "float64"),
                 classes=classes)
    assert "forward:C" in failing_metrics(result)
    assert {r.dtype for r in result.failures} == {"float32"}
    worst = max(m.error for r in result.failures for m in r.metrics if m.name == "forward:C")
    assert worst > 1e-5  # TF32-level, far above float32's 6e-8


def test_tf32_inside_a_solver_is_reported():
    classes = ["gaussian", "cond_1e3"]
    assert run(only=("solve",), classes=classes).passed
    result = run(ops={"solve": tf32_solve}, only=("solve",), classes=classes)
    assert not result.passed
    assert failing_metrics(result) & {"ratio", "ratio_vs_lapack", "forward:X"}


def test_swapped_batch_entry_is_reported():
    result = run(ops={"svd": swapped_svd}, only=("svd",), classes=["gaussian", "stack_7"])
    assert {r.cls for r in result.failures} == {"stack_7"}
    bad = [m for r in result.failures for m in r.metrics if m.name == "ratio"]
    assert bad and bad[0].index in (0, 1)  # the worst entry is one of the swapped pair


def test_failure_policy_violation_is_reported():
    assert run(only=("cholesky",), classes=["not_pd"]).passed
    result = run(ops={"cholesky": garbage_cholesky}, only=("cholesky",), classes=["not_pd"])
    assert "failed_entry_nan:L" in failing_metrics(result)


def never_raising_cholesky(x, *, upper=False, stream=None):
    """Cholesky that ignores errstate(linalg="raise")."""
    with la.errstate(linalg="nan"):
        return la.cholesky(x, upper=upper, stream=stream)


def test_raise_mode_violation_is_reported():
    result = run(ops={"cholesky": never_raising_cholesky}, only=("cholesky",),
                 classes=["not_pd"])
    assert "raise_mode" in failing_metrics(result)


def test_override_by_spec_name_leaves_other_variants_alone():
    result = run(ops={"qr[complete]": perturbed_qr}, only=("qr",), classes=["tall"])
    assert {r.op for r in result.failures} == {"qr[complete]"}


def test_exception_in_an_op_is_a_failure_not_a_crash():
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    result = run(ops={"qr": broken}, classes=["gaussian"])
    assert result.failures and all("boom" in r.error for r in result.failures)


# ----------------------------------------------------------------------------- zoo, metrics


def test_zoo_is_reproducible_and_rounded_to_the_dtype():
    a = zoo.cases("quick", "float32", seed=3, classes={"cond_1e7"})
    b = zoo.cases("quick", "float32", seed=3, classes={"cond_1e7"})
    assert [c.name for c in a] == [c.name for c in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.a, y.a)
        np.testing.assert_array_equal(x.a, x.a.astype(np.float32))  # exactly representable
        assert 3e6 < x.cond < 3e7
    c = zoo.cases("quick", "float32", seed=4, classes={"cond_1e7"})
    assert not np.array_equal(a[0].a, c[0].a)


def test_zoo_covers_the_issue_classes():
    names = set(zoo.class_names("quick"))
    for cls in ("gaussian", "cond_1e7", "graded", "badly_scaled", "rank_deficient",
                "clustered", "repeated", "sym_indefinite", "spd_near_singular", "hilbert",
                "kahan", "triangular", "diagonal", "identity", "zero", "tall", "wide", "tiny",
                "stack_1", "stack_7", "stack_1000", "nonfinite", "not_pd", "singular"):
        assert cls in names
    f64 = zoo.cases("full", "float64", classes={"cond_1e15"})
    assert f64 and all(c.cond > 1e14 for c in f64)


def test_every_public_function_is_exercised():
    public = {n for n in la.__all__ if callable(getattr(la, n)) and n[0].islower()}
    public -= {"errstate", "geterr", "install", "installed", "uninstall"}
    assert public <= set(O.function_names()), public - set(O.function_names())


def test_forward_guard_uses_the_peer_error():
    case = zoo.cases("quick", "float32", classes={"gaussian"})[0]
    ref = {"x": np.ones((1, 4))}
    ctx = checks.Ctx(case, (), {"x": ref["x"] * (1 + 1e-3)}, ref, ref, {"x": ref["x"] * (1 + 1e-4)},
                u=2.0**-24, n=4)
    m = checks.forward(ctx, "x", lambda d: d["x"])[0]
    assert m.error == pytest.approx(1e-3) and m.peer_error == pytest.approx(1e-4)
    assert m.value == pytest.approx(1.0) and m.passed  # exactly 10x the peer
    ctx.peer_fwd = ref
    assert not checks.forward(ctx, "x", lambda d: d["x"])[0].passed


def test_ratio_div_and_worst():
    r = M.ratio_div(np.array([0.0, 1.0, 2.0, np.nan]), np.array([0.0, 0.0, 4.0, 1.0]))
    assert r[0] == 0 and math.isinf(r[1]) and r[2] == 0.5 and math.isnan(r[3])
    assert M.worst(np.array([1.0, np.nan, 3.0])) == (pytest.approx(np.nan, nan_ok=True), 1)


# ----------------------------------------------------------------------------- end to end


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "conformance", "--quick", "--ops", "qr,det",
           "--dtypes", "float32", "--classes", "gaussian,stack_7", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((out / "conformance.json").read_text())
    assert data["summary"]["failures"] == 0 and data["cases"]
    assert {c["op"] for c in data["cases"]} == {"qr", "qr[complete]", "det"}
    md = (out / "report.md").read_text()
    assert "PASS" in md and "scores.png" in md
    assert (out / "scores.png").stat().st_size > 0
    assert (out / "forward_vs_cond_float32.png").exists()
    assert "cases, 0 failing" in proc.stdout


def test_cli_exit_status_is_1_on_a_failure(tmp_path, monkeypatch):
    from conformance.__main__ import main

    monkeypatch.setattr(la, "qr", _planted_qr_module_level())
    status = main(["--quick", "--ops", "qr", "--dtypes", "float32", "--classes", "gaussian",
                   "--out", str(tmp_path), "--no-progress", "--no-plots"])
    assert status == 1
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert data["summary"]["failures"] > 0
    assert "FAIL" in (tmp_path / "report.md").read_text()


def _planted_qr_module_level():
    real = la.qr

    def bad(x, mode="reduced", *, stream=None):
        q, r = real(x, mode=mode, stream=stream)
        return la.QRResult(q + 1e-4 * mx.ones_like(q), r)

    return bad


def test_cli_rejects_unknown_filters():
    from conformance.__main__ import main

    assert main(["--quick", "--ops", "no_such_op", "--no-progress"]) == 2
