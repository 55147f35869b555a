"""Eigenvalues and eigenvectors of large symmetric float32 matrices on the GPU by the
two-stage tridiagonal reduction: dense to band (:func:`band_reduction.sy2sb`, matrix
products), band to tridiagonal (:func:`band_chase.band_to_tridiagonal`, one
bulge-chasing launch), then bisection for the eigenvalues
(:func:`tridiagonal.tridiagonal_eigenvalues`, one launch) or divide and conquer for both
(:func:`tridiagonal_dc.eigh_tridiagonal`) and the two back-transformations
(:func:`band_chase.apply_band_q`, :func:`band_reduction.apply_q`). One lazy graph each;
nothing synchronizes with the host. Not dispatched yet: ``eigvalsh`` and ``eigh`` take
them only once they have been timed against the CPU path and the peers on a GPU.
"""

import mlx.core as mx

from mlx_linalg._gpu import band_chase, band_reduction, tridiagonal, tridiagonal_dc
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


def eigh(a: mx.array, *, band: int = BAND) -> tuple[mx.array, mx.array]:
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices.

    Args:
        a: (..., n, n) float32, n >= 1; only the lower triangle is read. On a GPU.
        band: stage 1's band half-width, 1 <= band <= 32.

    Returns:
        ``(w, z)``: (..., n) and (..., n, n) with A z = z diag(w), z orthogonal: z =
        Q₁ (Q₂ Z_T) for T = Q₂ᵀ (Q₁ᵀ A Q₁) Q₂ = Z_T Λ Z_Tᵀ. A matrix with a NaN or Inf in
        its lower triangle gets NaN everywhere; the others of the batch are unaffected.
    """
    n = a.shape[-1]
    flat = a.reshape(-1, n, n)
    banded, reflectors = band_reduction.sy2sb(flat, band=band, blocks=KERNELS)
    d, e, kept = band_chase.band_to_tridiagonal_q(banded, band)
    w, z = tridiagonal_dc.eigh_tridiagonal(d, e)
    z = band_reduction.apply_q(reflectors, band_chase.apply_band_q(kept, z))
    return w.reshape(a.shape[:-1]), z.reshape(a.shape)
