"""GPU tests of tournament pivoting for tall LU panels (``mlx_linalg._gpu.tournament_lu``):
the two launches (``lu_panel`` on the row blocks, ``lu_tournament``) against the MLX-op
contract on the GPU, and the blocked solve and inv with tournament leaves
(``blocked_common.TOURNAMENT``) to DESIGN.md's metrics. Run by tools/gpu-check.sh."""

import mlx.core as mx
import numpy as np
import pytest
from matrices import INV_RATIO, LU_RATIO, SOLVE_RATIO, as64, norm, ratio

from mlx_linalg._gpu import blocked_lu, blocked_panel, tournament_lu
from mlx_linalg._gpu.blocked_common import TOURNAMENT

pytestmark = pytest.mark.gpu

U32 = float(np.finfo(np.float32).eps) / 2


@pytest.mark.parametrize("batch, m, nb", [(1, 4096, 16), (3, 1500, 16), (2, 2049, 7)])
def test_kernels_match_the_reference(batch, m, nb):
    """The kernel path's permutation equals the MLX-op contract's (random panels: no ties)
    and its factors agree to rounding; P A = L U holds to float32 rounding."""
    rng = np.random.default_rng(m + nb)
    a32 = rng.standard_normal((batch, m, nb)).astype(np.float32)
    packed, perm, piv = tournament_lu.tournament_lu_kernel(mx.array(a32))
    ref_packed, ref_perm, _ = tournament_lu.tournament_lu(mx.array(a32))
    assert piv is None
    np.testing.assert_array_equal(np.asarray(perm), np.asarray(ref_perm))
    scale = float(np.abs(np.asarray(ref_packed)).max())
    np.testing.assert_allclose(np.asarray(packed), np.asarray(ref_packed), atol=1e-5 * scale)
    lu, order = as64(packed), np.asarray(perm)
    for b in range(batch):
        lower = np.tril(lu[b], -1) + np.eye(m, nb)
        upper = np.triu(lu[b, :nb])
        assert ratio(a32[b, order[b]] - lower @ upper, nb * norm(a32[b]), U32) <= LU_RATIO


def test_short_panels_keep_the_panel_kernel():
    a = mx.array(np.random.default_rng(1).standard_normal((2, 1000, 16)).astype(np.float32))
    packed, perm, piv = tournament_lu.tournament_lu_kernel(a)
    expected = blocked_panel.lu_panel_kernel_pivots(a)
    for x, y in zip((packed, perm, piv), expected, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("n", [1100, 2048])
def test_blocked_solve_and_inv_with_tournament_leaves(n):
    rng = np.random.default_rng(n)
    a32 = (rng.standard_normal((2, n, n)) / np.sqrt(n) + 2 * np.eye(n)).astype(np.float32)
    b32 = rng.standard_normal((2, n, 3)).astype(np.float32)
    (x,), failed = blocked_lu.solve(mx.array(a32), mx.array(b32), blocks=TOURNAMENT)
    assert not np.asarray(failed).any()
    xs = as64(x)
    assert ratio(b32 - a32 @ xs, norm(a32) * norm(xs), U32) <= SOLVE_RATIO
    (inverse,), failed = blocked_lu.inv(mx.array(a32), blocks=TOURNAMENT)
    assert not np.asarray(failed).any()
    ai = as64(inverse)
    assert ratio(np.eye(n) - ai @ a32, n * norm(a32) * norm(ai), U32) <= INV_RATIO
