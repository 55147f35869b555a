"""Stage 1 of the two-stage tridiagonal reduction (``mlx_linalg._gpu.band_reduction``,
issue #8), on the CPU with the MLX-op building blocks (``blocked_common.REFERENCE``).

For orders that are not multiples of the band width, both panels (geqr2's MLX-op loop and
TSQR), float64 and float32 and batches: Q (from ``apply_q``) is orthogonal, Qᵀ A Q is the
band matrix to rounding (DESIGN.md-style ratios), the band is exactly zero outside the band
and exactly symmetric, and its eigenvalues are A's (SciPy). Also graded and clustered
spectra, the zero matrix, matrices already diagonal or banded, NaN in one matrix of a batch,
the upper triangle never read, and float32 accuracy when every product is TF32 (emulated).
"""

import json

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
import tool_scripts
from matrices import (
    as64,
    as_mlx,
    emulate_tf32,
    norm,
    symmetric_from_lower,
    tf32_matmul,
    unit_roundoff,
)

from conformance.zoo import hermitian_from
from mlx_linalg import _tracing
from mlx_linalg._gpu import band_reduction
from mlx_linalg._gpu.blocked_common import REFERENCE

# DESIGN.md-style ratios: ‖I − QᵀQ‖/(n u) and ‖QᵀAQ − Band‖/(n ‖A‖ u).
RATIO = 30
# Eigenvalues against SciPy's, relative to ‖A‖₂: float64 absolute, float32 times n u.
EIGENVALUES_64 = 1e-12
EIGENVALUES_32 = 30


def _reduce(a: np.ndarray, dtype, band: int, panel: str = "tsqr"):
    """(band matrix, Q) as float64 NumPy, Q from ``apply_q`` on the identity."""
    n = a.shape[-1]
    banded, reflectors = band_reduction.sy2sb(
        as_mlx(a, dtype), band=band, blocks=REFERENCE, panel=panel
    )
    eye = as_mlx(np.broadcast_to(np.eye(n), a.shape).reshape(-1, n, n), dtype)
    q = band_reduction.apply_q(reflectors, eye).reshape(a.shape)
    return as64(banded), as64(q)


def _check(a: np.ndarray, banded: np.ndarray, q: np.ndarray, band: int, dtype) -> None:
    """DESIGN.md-style checks of one reduction of symmetric (float64) ``a``."""
    n = a.shape[-1]
    u = unit_roundoff(dtype)
    eye = np.eye(n)
    assert np.all(norm(eye - np.swapaxes(q, -1, -2) @ q) <= RATIO * n * u)
    similar = np.swapaxes(q, -1, -2) @ a @ q
    assert np.all(norm(similar - banded) <= RATIO * n * norm(a) * u)
    rows, cols = np.indices((n, n))
    assert np.all(banded[..., np.abs(rows - cols) > band] == 0)
    assert np.array_equal(banded, np.swapaxes(banded, -1, -2))
    for one, reduced in zip(a.reshape(-1, n, n), banded.reshape(-1, n, n), strict=True):
        scale = max(np.linalg.norm(one, 2), np.finfo(float).tiny)
        expected = scipy.linalg.eigvalsh(one)
        error = np.max(np.abs(np.linalg.eigvalsh(reduced) - expected))
        bound = EIGENVALUES_64 if dtype == mx.float64 else EIGENVALUES_32 * n * u
        assert error <= bound * scale, (error / scale, bound)


def _symmetric(rng, shape) -> np.ndarray:
    a = rng.standard_normal(shape)
    return (a + np.swapaxes(a, -1, -2)) / 2


# --- accuracy --------------------------------------------------------------------------------

CASES = [
    # n, band, dtype, panel, batch
    (65, 8, mx.float64, "tsqr", (2,)),
    (65, 32, mx.float32, "kernel", (2,)),
    (100, 16, mx.float64, "kernel", (3,)),
    (100, 32, mx.float32, "tsqr", (1,)),
    (256, 32, mx.float64, "tsqr", (1,)),
    (256, 16, mx.float32, "tsqr", (2,)),
    (300, 8, mx.float32, "kernel", (1,)),
    (300, 32, mx.float64, "kernel", (1,)),
    (300, 16, mx.float32, "tsqr", (1,)),
    (70, 64, mx.float32, "tsqr", (1,)),  # wider than TSQR takes: geqr2 panels
    (40, 32, mx.float64, "tsqr", (2,)),  # one step, a square 8 x 8 panel
    (34, 32, mx.float64, "kernel", (1,)),  # one step, a 2 x 2 panel
]


@pytest.mark.parametrize(("n", "band", "dtype", "panel", "batch"), CASES)
def test_similar_band_matrix(rng, n, band, dtype, panel, batch):
    a = _symmetric(rng, (*batch, n, n)).astype(np.float32 if dtype == mx.float32 else float)
    banded, q = _reduce(a, dtype, band, panel)
    assert banded.shape == a.shape and q.shape == a.shape
    _check(a.astype(float), banded, q, band, dtype)


def test_both_panels_give_one_band_to_rounding(rng):
    """The panels' reflectors are geqr2's to rounding, so the bands agree (full rank)."""
    a = _symmetric(rng, (1, 150, 150))
    kernel, _ = _reduce(a, mx.float64, 16, "kernel")
    tsqr, _ = _reduce(a, mx.float64, 16, "tsqr")
    np.testing.assert_allclose(tsqr, kernel, rtol=0, atol=1e-12 * norm(a).max())


def test_evaluation_started_along_the_loop_changes_no_bit(rng, monkeypatch):
    """sy2sb and apply_q start evaluating every few steps (``_tracing.start_every``); the
    results equal the wholly lazy graph's bit for bit."""
    a = mx.array(_symmetric(rng, (2, 140, 140)))

    def reduced():
        banded, reflectors = band_reduction.sy2sb(a, band=8, blocks=REFERENCE)
        return banded, band_reduction.apply_q(reflectors, banded, transpose=True)

    monkeypatch.setattr(_tracing, "STEPS_PER_START", 10**9)
    lazy = reduced()
    monkeypatch.setattr(_tracing, "STEPS_PER_START", 1)
    started = reduced()
    for x, y in zip(lazy, started, strict=True):
        assert mx.array_equal(x, y).item()


@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
def test_batch_shape_and_transpose(rng, dtype):
    """(2, 2, n, n) stacks keep their shape; Qᵀ (Q C) = C; each matrix as if alone."""
    a = _symmetric(rng, (2, 2, 90, 90))
    banded, reflectors = band_reduction.sy2sb(as_mlx(a, dtype), band=16, blocks=REFERENCE)
    assert banded.shape == (2, 2, 90, 90) and banded.dtype == dtype
    c = as_mlx(rng.standard_normal((2, 2, 90, 5)), dtype)
    qc = band_reduction.apply_q(reflectors, c)
    back = band_reduction.apply_q(reflectors, qc, transpose=True)
    assert qc.shape == c.shape and qc.dtype == dtype
    tol = 100 * unit_roundoff(dtype) * norm(as64(c)).max()
    np.testing.assert_allclose(as64(back), as64(c), rtol=0, atol=tol)
    alone, _ = band_reduction.sy2sb(as_mlx(a[1, 0], dtype), band=16, blocks=REFERENCE)
    np.testing.assert_allclose(as64(banded)[1, 0], as64(alone), rtol=0, atol=tol)


def test_reads_the_lower_triangle_only(rng):
    a = _symmetric(rng, (1, 80, 80))
    garbage = np.tril(a) + np.triu(rng.standard_normal((80, 80)) * 1e3, 1)
    expected, _ = _reduce(a, mx.float64, 16)
    banded, _ = _reduce(garbage, mx.float64, 16)
    np.testing.assert_array_equal(banded, expected)


# --- hard spectra and structured input -------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
@pytest.mark.parametrize("spectrum", ["graded", "clustered"])
def test_graded_and_clustered_spectra(rng, dtype, spectrum):
    n = 130
    if spectrum == "graded":
        values = np.logspace(0, -12, n) * rng.choice([-1.0, 1.0], n)
    else:
        values = np.concatenate([1 + 1e-10 * rng.standard_normal(n - 5), [-3, -2, 2, 5, 7.0]])
    a = hermitian_from(rng, values, False)[None]
    banded, q = _reduce(a, dtype, 16)
    _check(as64(as_mlx(a, dtype)), banded, q, 16, dtype)


@pytest.mark.parametrize("panel", ["tsqr", "kernel"])
def test_zero_matrix(panel):
    a = np.zeros((2, 75, 75))
    banded, q = _reduce(a, mx.float64, 8, panel)
    assert np.all(banded == 0)
    _check(a, banded, q, 8, mx.float64)


@pytest.mark.parametrize("panel", ["tsqr", "kernel"])
@pytest.mark.parametrize("width", [0, 8])  # diagonal, and banded with the band's width
def test_already_banded(rng, panel, width):
    """Panels that are already upper triangular: geqr2 makes every reflector the identity
    (tau = 0, T = 0), so the band is A exactly; TSQR's reflectors differ (its module notes)
    but the reduction is as accurate."""
    n = 90
    rows, cols = np.indices((n, n))
    a = np.where(np.abs(rows - cols) <= width, rng.standard_normal((n, n)), 0.0)
    a = np.tril(a) + np.tril(a, -1).T
    banded, q = _reduce(a[None], mx.float64, 8, panel)
    _check(a[None], banded, q, 8, mx.float64)
    if panel == "kernel":
        np.testing.assert_array_equal(banded[0], a)
        np.testing.assert_array_equal(q[0], np.eye(n))


def test_no_reduction_needed(rng):
    """n <= band + 1: no panel at all, the band is the symmetric input, Q = I."""
    a = _symmetric(rng, (2, 17, 17))
    banded, reflectors = band_reduction.sy2sb(as_mlx(a, mx.float64), band=16, blocks=REFERENCE)
    assert reflectors == []
    np.testing.assert_array_equal(as64(banded), a)


# --- failures and precision ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_stays_in_its_matrix(rng, bad):
    a = _symmetric(rng, (3, 70, 70))
    clean, _ = _reduce(a[[0, 2]], mx.float64, 8)
    a[1, 50, 3] = bad  # lower triangle
    banded, q = _reduce(a, mx.float64, 8)
    assert np.all(np.isnan(banded[1]))
    np.testing.assert_array_equal(banded[[0, 2]], clean)
    assert np.all(np.isfinite(q[[0, 2]]))
    a[1, 50, 3] = 0.0
    a[1, 3, 50] = bad  # upper triangle: not read
    banded, _ = _reduce(a, mx.float64, 8)
    assert np.all(np.isfinite(banded))


def test_invalid_arguments():
    with pytest.raises(ValueError, match=r"^\[mlx_linalg\.sy2sb\] band"):
        band_reduction.sy2sb(mx.zeros((1, 70, 70)), band=0, blocks=REFERENCE)
    with pytest.raises(ValueError, match=r"^\[mlx_linalg\.sy2sb\] expected square"):
        band_reduction.sy2sb(mx.zeros((1, 70, 60)), blocks=REFERENCE)
    with pytest.raises(ValueError, match=r"^\[mlx_linalg\.sy2sb\] expected float"):
        band_reduction.sy2sb(mx.zeros((1, 70, 70), dtype=mx.int32), blocks=REFERENCE)
    with pytest.raises(ValueError, match=r"^\[mlx_linalg\.sy2sb\] panel"):
        band_reduction.sy2sb(mx.zeros((1, 70, 70)), blocks=REFERENCE, panel="cholqr")


def test_float32_accurate_with_tf32_products(rng, monkeypatch):
    """As on an H100 with MLX's default TF32: every float32 matmul and addmm rounds its
    operands to TF32 (emulated); the products are split (or elementwise), so the reduction
    stays float32-accurate, and close to the one with float32 products."""
    a = _symmetric(rng, (2, 110, 110)).astype(np.float32)
    plain, _ = _reduce(a, mx.float32, 16)

    x = rng.standard_normal((60, 60)).astype(np.float32)
    product = tf32_matmul(mx.array(x), mx.array(x))
    assert norm(np.asarray(product) - x.astype(np.float64) @ x) > 1e-4 * norm(x @ x)
    emulate_tf32(monkeypatch)
    banded, q = _reduce(a, mx.float32, 16)
    _check(a.astype(float), banded, q, 16, mx.float32)
    scale = norm(a.astype(float)).max()
    np.testing.assert_allclose(banded, plain, rtol=0, atol=1e-4 * scale)


def test_symmetric_from_lower_helper_agrees(rng):
    """The module symmetrizes as the tests' helper does (what eigh reads)."""
    a = rng.standard_normal((2, 5, 5))
    ours = band_reduction._symmetric(mx.array(a, dtype=mx.float64))
    np.testing.assert_array_equal(as64(ours), symmetric_from_lower(a))


# --- tools/bench_band_reduction.py -----------------------------------------------------------


def _bench():
    return tool_scripts.load("tools/bench_band_reduction.py")


def test_bench_smoke_run_on_the_cpu(tmp_path):
    """``--cpu`` times every row with the MLX-op blocks, checks the band, counts launches,
    and writes the JSON and the Markdown table."""
    bench = _bench()
    device = mx.default_device()
    argv = ["--cpu", "--sizes", "70,90", "--bands", "8,16", "--reps", "1", "--count-n", "90"]
    try:
        assert bench.main([*argv, "--out", str(tmp_path)]) == 0
    finally:
        mx.set_default_device(device)
    result = json.loads((tmp_path / "band_reduction.json").read_text())
    assert [(r["n"], r["band"]) for r in result["rows"]] == [(70, 8), (70, 16), (90, 8), (90, 16)]
    for r in result["rows"]:
        assert r["sy2sb_ms"] > 0 and r["apply_q_ms"] > 0
        assert r["similarity_ratio"] <= RATIO and r["zero_outside_band"]
    assert [c["columns"] for c in result["launches"]] == [11, 5]  # (90 - b - 2) // b + 1
    assert "| 90 | 16 |" in (tmp_path / "band_reduction.md").read_text()


def test_launches_per_block_column_stay_bounded():
    """Launches per block column at n = 1024, band 32, as counted (tools/count_launches.py's
    method, evaluation deferred) on 2026-11-30: 28.4 as on an H100 (split operands and
    narrow updates one kernel launch each), 47.1 with the TF32 splits formed by MLX ops,
    23.4 with float32 products (building blocks: 2.4 qr_small, 3.2 tsqr_product, 1
    tsqr_householder per column). A count that evaluated at the route's starts saw only
    the last few columns (16.5), so the first bound also checks that it sees them all."""
    bench = _bench()
    plain, split = (bench.count(1024, 32, split=s) for s in (False, True))
    gpu = bench.count(1024, 32, split=True, gpu=True)
    assert plain["columns"] == split["columns"] == gpu["columns"] == 31
    assert plain["per_column"] <= 25 and split["per_column"] <= 49 and gpu["per_column"] <= 30
    assert gpu["per_column"] >= 25
    assert split["calls_per_column"]["tsqr_householder"] == 1
    assert gpu["calls_per_column"]["rank_update"] >= 3  # Vᵀ Z, W, the rank-2b update


def test_bench_reports_the_eigenvalue_route():
    """Rows with the GPU's eigenvalue route (stage 2, bisection, the whole route, PyTorch's
    eigvalsh, the error) get their own table, with the ratio to PyTorch."""
    bench = _bench()
    stage1 = {"n": 1024, "band": 32, "sy2sb_ms": 19.0, "apply_q_ms": 6.0}
    route = {
        **stage1,
        "stage2_ms": 5.0,
        "bisection_ms": 2.0,
        "eigvalsh_ms": 30.0,
        "torch_eigvalsh_ms": 10.0,
        "eigenvalue_error": 0.25,
        "stage2_ms_by_simdgroups": {"8": 6.0, "32": 4.5},
        "eigh_ms": 60.0,
        "torch_eigh_ms": 20.0,
        "eigh_orthogonality": 1.5,
        "eigh_residual": 0.5,
    }
    text = bench.markdown([stage1, route], [], {"device": "test"})
    assert (
        "| 1024 | 32 | 5.00 | 2.00 | 30.00 | 10.00 | 3.00 | 0.250 | 8: 6.00, 32: 4.50 "
        "| 60.00 | 20.00 | 3.00 | 1.500 | 0.500 |"
    ) in text
    assert "Eigenvalues" not in bench.markdown([stage1], [], {"device": "test"})
