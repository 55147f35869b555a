"""GPU tests of stage 1 of the two-stage tridiagonal reduction
(``mlx_linalg._gpu.band_reduction``, issue #8) with the real kernels (TSQR panels, the
split products where the GPU multiplies float32 in TF32).

The same checks as tests/test_band_reduction.py at orders where TF32-accurate products
would show: Q orthogonal, Qᵀ A Q the band matrix to rounding (DESIGN.md-style ratios),
exact zeros outside the band, exact symmetry, and A's eigenvalues. Run by
tools/gpu-check.sh.
"""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from matrices import as64, norm

from mlx_linalg._gpu import band_reduction
from mlx_linalg._gpu.blocked_common import KERNELS

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2
# ‖I − QᵀQ‖/(n u) and ‖QᵀAQ − Band‖/(n ‖A‖ u), as the CPU tests.
RATIO = 30
# Eigenvalue error relative to ‖A‖₂, in units of n u (as the CPU tests' float32 bound).
EIGENVALUES = 30


@pytest.mark.parametrize(("n", "band"), [(300, 32), (1024, 32), (1024, 64), (2048, 32)])
def test_band_reduction_gpu(rng, n, band):
    g = rng.standard_normal((2, n, n))
    a = ((g + np.swapaxes(g, -1, -2)) / 2).astype(np.float32)
    banded, reflectors = band_reduction.sy2sb(mx.array(a), band=band, blocks=KERNELS)
    eye = mx.array(np.broadcast_to(np.eye(n, dtype=np.float32), a.shape).copy())
    q = as64(band_reduction.apply_q(reflectors, eye))
    banded, a64 = as64(banded), a.astype(np.float64)
    assert np.all(norm(np.eye(n) - np.swapaxes(q, -1, -2) @ q) <= RATIO * n * U32)
    similar = np.swapaxes(q, -1, -2) @ a64 @ q
    assert np.all(norm(similar - banded) <= RATIO * n * norm(a64) * U32)
    rows, cols = np.indices((n, n))
    assert np.all(banded[..., np.abs(rows - cols) > band] == 0)
    assert np.array_equal(banded, np.swapaxes(banded, -1, -2))
    for one, reduced in zip(a64, banded, strict=True):
        scale = np.linalg.norm(one, 2)
        error = np.max(np.abs(np.linalg.eigvalsh(reduced) - scipy.linalg.eigvalsh(one)))
        assert error <= EIGENVALUES * n * U32 * scale


def test_band_reduction_nan_stays_in_its_matrix_gpu(rng):
    n = 300
    g = rng.standard_normal((2, n, n))
    a = ((g + np.swapaxes(g, -1, -2)) / 2).astype(np.float32)
    a[1, 200, 10] = np.nan
    banded, _ = band_reduction.sy2sb(mx.array(a), band=32, blocks=KERNELS)
    banded = as64(banded)
    assert np.all(np.isfinite(banded[0])) and np.all(np.isnan(banded[1]))
