"""Tournament pivoting for tall LU panels (``mlx_linalg._gpu.tournament_lu``): the MLX-op
contract against a NumPy model of CALU, the ``lu_tournament`` kernel under the CPU
emulation against it, and the blocked solve and det with tournament leaves against SciPy."""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from kernel_emulation import emulate, needs_emulation
from matrices import replay_pivots

from mlx_linalg._gpu import blocked_lu, blocked_panel, tournament_lu
from mlx_linalg._gpu.blocked_common import KERNELS, REFERENCE, TOURNAMENT


def _getf2_order(a: np.ndarray, steps: int) -> list[int]:
    """The rows (original indices) that LAPACK's partial pivoting picks, in order: the first
    ``steps`` of the permutation that scipy.linalg.lu_factor's pivots make."""
    _, piv = scipy.linalg.lu_factor(a, check_finite=False)
    return replay_pivots(piv, a.shape[0])[:steps].tolist()


def _winners(a: np.ndarray, block_rows: int) -> list[int]:
    """CALU's winners for one (m, nb) panel with a tree of one level (the module's model)."""
    m, nb = a.shape
    blocks, rows = tournament_lu.tournament_shape(m, nb, block_rows)
    candidates = []
    for p in range(blocks):
        block = a[p * rows : min(m, (p + 1) * rows)]
        candidates += [p * rows + i for i in _getf2_order(block, nb)]
    return [candidates[i] for i in _getf2_order(a[candidates], nb)]


def test_tournament_shape():
    assert tournament_lu.tournament_shape(1000, 16, 256) == (4, 250)
    assert tournament_lu.tournament_shape(4096, 16) == (16, 256)
    assert tournament_lu.tournament_shape(200, 16, 256) is None  # one block
    assert tournament_lu.tournament_shape(4096, 17) is None  # wider than MAX_NB
    cap = tournament_lu.max_candidates(16) // 16
    assert tournament_lu.tournament_shape(100000, 16) == (cap, -(-100000 // cap))


@pytest.mark.parametrize("m, nb, block_rows", [(400, 16, 100), (301, 5, 64), (1000, 8, 256)])
def test_reference_is_calu(rng, m, nb, block_rows):
    """P A = L U to rounding, the winners CALU's (blocks' getf2, then the candidates'), and
    every other row after them in its original order."""
    a = rng.standard_normal((2, m, nb))
    packed, perm, piv = tournament_lu.tournament_lu(
        mx.array(a, dtype=mx.float64), min_rows=1, block_rows=block_rows
    )
    packed, perm = np.asarray(packed), np.asarray(perm)
    assert piv is None and packed.shape == (2, m, nb) and perm.dtype == np.int32
    for b in range(2):
        assert list(perm[b, :nb]) == _winners(a[b], block_rows)
        assert sorted(perm[b]) == list(range(m))
        assert np.all(np.diff(perm[b, nb:]) > 0)
        lower = np.tril(packed[b], -1) + np.eye(m, nb)
        upper = np.triu(packed[b, :nb])
        np.testing.assert_allclose(lower @ upper, a[b, perm[b]], atol=1e-12 * np.abs(a).max())


def test_short_panels_keep_getf2(rng):
    """Below ``min_rows`` (or with one block) the panel is getf2's (blocked_panel.lu_panel)."""
    a = mx.array(rng.standard_normal((1, 300, 16)), dtype=mx.float64)
    packed, perm, piv = tournament_lu.tournament_lu(a)
    expected = blocked_panel.lu_panel(a)
    assert piv is None
    np.testing.assert_array_equal(np.asarray(perm), np.asarray(expected[1]))
    np.testing.assert_array_equal(np.asarray(packed), np.asarray(expected[0]))


@needs_emulation
@pytest.mark.parametrize("m, nb, block_rows", [(301, 5, 64), (300, 16, 64)])
def test_emulated_kernel_matches_the_reference(rng, m, nb, block_rows):
    """``lu_tournament`` on the CPU emulation: the reference's permutation exactly and its
    factors to rounding (the kernel's updates are fmas), padded last block included."""
    a = mx.array(rng.standard_normal((2, m, nb)).astype(np.float32))
    blocks, rows = tournament_lu.tournament_shape(m, nb, block_rows)
    padded = mx.pad(a, [(0, 0), (0, blocks * rows - m), (0, 0)])
    _, block_perm = blocked_panel.lu_panel(padded.reshape(2 * blocks, rows, nb))
    expected, expected_perm = tournament_lu.finish(padded, block_perm, m, blocks, rows)
    packed, perm = emulate.run(
        "lu_tournament",
        [np.asarray(padded), np.asarray(block_perm), np.zeros((m, blocks, rows, 0), np.int32)],
        **tournament_lu.tournament_launch(2, m, nb),
    )
    np.testing.assert_array_equal(perm, np.asarray(expected_perm))
    scale = float(np.abs(np.asarray(expected)).max())
    np.testing.assert_allclose(packed, np.asarray(expected), rtol=0, atol=1e-5 * scale)


def _tournament_reference(min_rows: int, block_rows: int, played: list):
    """REFERENCE with tournament leaves; ``played`` collects the leaves' heights that took
    the tournament."""

    def leaves(a):
        if a.shape[1] >= min_rows:
            played.append(a.shape[1])
        return tournament_lu.tournament_lu(a, min_rows=min_rows, block_rows=block_rows)

    return REFERENCE._replace(lu_pivots=leaves)


@pytest.mark.parametrize("n", [150, 260])
def test_blocked_solve_and_det_with_tournament_leaves(rng, n):
    """The blocked LU with tournament leaves (every leaf of 64 rows or more) solves as
    LAPACK does, to a backward error of a few n·u, and gives the determinant."""
    a = rng.standard_normal((2, n, n))
    b = rng.standard_normal((2, n, 3))
    played: list = []
    blocks = _tournament_reference(64, 32, played)
    (x,), failed = blocked_lu.solve(
        mx.array(a, dtype=mx.float64), mx.array(b, dtype=mx.float64), blocks=blocks, block=32
    )
    x = np.asarray(x)
    assert not np.asarray(failed).any()
    for k in range(2):
        residual = np.abs(a[k] @ x[k] - b[k]).max()
        scale = np.abs(a[k]).max() * np.abs(x[k]).max() * n
        assert residual / scale < 50 * np.finfo(np.float64).eps
        np.testing.assert_allclose(x[k], scipy.linalg.solve(a[k], b[k]), rtol=1e-8, atol=1e-10)
    assert len(played) >= (n - 64) // 16  # every leaf of 64 rows or more
    (det,), _ = blocked_lu.det(mx.array(a, dtype=mx.float64), blocks=blocks, block=32)
    np.testing.assert_allclose(np.asarray(det), np.linalg.det(a), rtol=1e-9)


def test_tournament_blocks_replace_only_the_lu_leaves():
    assert TOURNAMENT.lu_pivots is tournament_lu.tournament_lu_kernel
    assert TOURNAMENT._replace(lu_pivots=KERNELS.lu_pivots) == KERNELS


def test_solver_blocks_take_the_tournament_only_when_asked(monkeypatch):
    """``blocked_lu.TOURNAMENT_LEAVES`` (off by default) swaps the default building blocks of
    solve, inv, det and slogdet for ``TOURNAMENT``; blocks passed explicitly stay."""
    assert blocked_lu.solver_blocks(KERNELS) is KERNELS
    monkeypatch.setattr(blocked_lu, "TOURNAMENT_LEAVES", True)
    assert blocked_lu.solver_blocks(KERNELS) is TOURNAMENT
    assert blocked_lu.solver_blocks(REFERENCE) is REFERENCE
