"""The ``tridiagonal_eigenvalues`` kernel (metal/tridiagonal_eigenvalues.metal: bisection
on Sturm counts) under CPU emulation, against ``scipy.linalg.eigvalsh_tridiagonal`` in
float64: ascending, each eigenvalue within 4 n u ‖T‖ (sstebz's O(u ‖T‖) with room for the
float32 Sturm recurrence), NaN for a matrix with NaN or Inf."""

import numpy as np
import pytest
import scipy.linalg
from kernel_emulation import emulate, needs_emulation

from mlx_linalg._gpu import tridiagonal

U32 = np.finfo(np.float32).eps / 2

pytestmark = needs_emulation


def _emulated(d, e):
    """The kernel's eigenvalues of (B, n) diagonals and (B, n - 1) subdiagonals."""
    n = d.shape[1]
    padded = np.concatenate([e, np.zeros((e.shape[0], 1), np.float32)], axis=1)
    launch = tridiagonal.tridiagonal_eigenvalues_launch(d.shape)
    (w,) = emulate.run("tridiagonal_eigenvalues", [d, padded[:, :n]], **launch)
    return w


def _assert_accurate(d, e, w):
    n = d.shape[1]
    for dm, em, wm in zip(d.astype(np.float64), e.astype(np.float64), w, strict=True):
        exact = scipy.linalg.eigvalsh_tridiagonal(dm, em) if n > 1 else dm
        norm = np.abs(dm).max() + 2 * (np.abs(em).max() if n > 1 else 0)
        assert np.all(np.diff(wm) >= 0)
        assert np.max(np.abs(wm - exact)) <= 4 * n * U32 * norm


@pytest.mark.parametrize("n", [1, 2, 7, 64, 200])
def test_gaussian(rng, n):
    d = rng.standard_normal((2, n)).astype(np.float32)
    e = rng.standard_normal((2, n - 1)).astype(np.float32)
    _assert_accurate(d, e, _emulated(d, e))


def test_hard_spectra(rng):
    """Wilkinson's W⁺₂₁ (pairs of eigenvalues equal to 14 digits), the 1-2-1 matrix
    (eigenvalues 2 - 2cos(kπ/(n+1)), clustered at both ends), a graded matrix (entries
    from 1 to 1e-30: its small eigenvalues far below u ‖T‖) and a split one (a zero
    subdiagonal entry), with scales of 1e-30 and 1e30 (e² outside float32's range
    unscaled)."""
    n = 21
    wilkinson = (np.abs(np.arange(n) - 10).astype(np.float32), np.ones(n - 1, np.float32))
    ones = (np.full(n, 2, np.float32), np.full(n - 1, -1, np.float32))
    graded = (
        np.logspace(0, -30, n).astype(np.float32),
        np.logspace(-1, -30, n - 1).astype(np.float32),
    )
    split = (
        rng.standard_normal(n).astype(np.float32),
        rng.standard_normal(n - 1).astype(np.float32),
    )
    split[1][10] = 0
    cases = [wilkinson, ones, graded, split]
    for scale in (1e-30, 1e30):
        cases.append((wilkinson[0] * np.float32(scale), wilkinson[1] * np.float32(scale)))
    d = np.stack([c[0] for c in cases])
    e = np.stack([c[1] for c in cases])
    _assert_accurate(d, e, _emulated(d, e))


def test_zero_and_non_finite_matrices(rng):
    n = 9
    d = rng.standard_normal((4, n)).astype(np.float32)
    e = rng.standard_normal((4, n - 1)).astype(np.float32)
    d[1], e[1] = 0, 0
    d[2, 3] = np.nan
    e[3, 5] = np.inf
    w = _emulated(d, e)
    _assert_accurate(d[:1], e[:1], w[:1])
    np.testing.assert_array_equal(w[1], 0)
    assert np.all(np.isnan(w[2:]))
