"""Eigenvalues of large symmetric float32 matrices on the GPU by the two-stage tridiagonal
reduction: dense to band (:func:`band_reduction.sy2sb`, matrix products), band to
tridiagonal (:func:`band_chase.band_to_tridiagonal`, one bulge-chasing launch), then
bisection (:func:`tridiagonal.tridiagonal_eigenvalues`, one launch). One lazy graph;
nothing synchronizes with the host. Not dispatched yet: ``eigvalsh`` takes it only once
it has been timed against the CPU path and the peers on a GPU.
"""

import mlx.core as mx

from mlx_linalg._gpu import band_chase, band_reduction, tridiagonal
from mlx_linalg._gpu.blocked_common import KERNELS

# The band's half-width: the widest the bulge-chasing kernel takes (its reflectors are
# held one entry per SIMD lane) and stage 1's default.
BAND = min(band_reduction.BAND, band_chase.MAX_BAND)


def eigvalsh(a: mx.array, *, band: int = BAND) -> mx.array:
    """The eigenvalues of symmetric matrices, ascending.

    Args:
        a: (..., n, n) float32; only the lower triangle is read. On a GPU.
        band: stage 1's band half-width, 1 <= band <= 32.

    Returns:
        (..., n) float32. Error: stage 1 and 2 are orthogonal similarities in float32
        (backward error O(n u ‖A‖) with float32-accurate products), bisection adds
        O(u ‖A‖). A matrix with a NaN or Inf in its lower triangle gets NaN eigenvalues;
        the others of the batch are unaffected.
    """
    banded, _ = band_reduction.sy2sb(a, band=band, blocks=KERNELS)
    d, e = band_chase.band_to_tridiagonal(banded, band)
    return tridiagonal.tridiagonal_eigenvalues(d, e)
