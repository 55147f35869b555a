"""GPU tests of stage 2 on many SMs (``band_chase_tiles``): the tiled chase gives the
one-threadgroup kernel's band, tridiagonal matrix and reflectors, and the two-stage eigh
through it is accurate (orthogonality and residual to 30 n u, as test_two_stage_gpu.py).
Run by tools/gpu-check.sh."""

import json

import mlx.core as mx
import numpy as np
import pytest
import tool_scripts
from matrices import symmetric_band

from mlx_linalg import _kernels
from mlx_linalg._gpu import band_chase, band_chase_tiles, two_stage

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
RATIO = 30


@pytest.mark.parametrize(("n", "band", "batch"), [(600, 32, 2), (333, 16, 1)])
@pytest.mark.parametrize("want_q", [True, False])
def test_tiled_chase_is_the_kernel_bit_for_bit_gpu(rng, n, band, batch, want_q):
    a = mx.array(symmetric_band(rng, batch, n, band))
    launch = band_chase.band_to_tridiagonal_launch(a.shape, band, want_q=want_q)
    _, _, work, kept = _kernels.launch("band_to_tridiagonal", [a], **launch)
    tiled, tiled_kept = band_chase_tiles.chase(band_chase_tiles.packed_band(a, band), band, want_q)
    assert mx.array_equal(tiled, work).item()
    if want_q:
        assert mx.array_equal(tiled_kept, kept).item()


def test_eigh_through_the_tiled_chase_gpu(rng, monkeypatch):
    n = 700
    monkeypatch.setattr(band_chase, "TILED_FROM", 512)
    g = rng.standard_normal((n, n))
    a = ((g + g.T) / 2).astype(np.float32)
    w, z = (np.array(x).astype(np.float64) for x in two_stage.eigh(mx.array(a)))
    a64 = a.astype(np.float64)
    norm = np.linalg.norm(a64, 2)
    assert np.linalg.norm(z.T @ z - np.eye(n), 2) <= RATIO * n * U32
    assert np.linalg.norm(a64 @ z - z * w, 2) <= RATIO * n * U32 * norm


def test_bench_tool_smoke_gpu(tmp_path):
    """tools/bench_band_chase_tiles.py on a small order: every row timed, the tiled chase
    equal to the kernel's."""
    bench = tool_scripts.load("tools/bench_band_chase_tiles.py")
    argv = ["--out", str(tmp_path), "--sizes", "300", "--tiles", "8x12", "--reps", "1"]
    assert bench.main(argv) == 0
    rows = json.loads((tmp_path / "band_chase_tiles.json").read_text())["chase"]
    assert len(rows) == 4 and all(r["ms"] > 0 for r in rows)
    assert all(r["bit_for_bit"] for r in rows if r["tiles"] == "8x12")
