"""Stage 2 of the two-stage tridiagonal reduction: a symmetric band matrix to tridiagonal
form by bulge chasing on the GPU, for its eigenvalues.

Stage 1 (:func:`mlx_linalg._gpu.band_reduction.sy2sb`) leaves a band of half-width
``band`` whose O(n³) flops were matrix products; this stage chases the band down to
tridiagonal in O(n² band) flops with one launch of the ``band_to_tridiagonal`` kernel
(``metal/band_to_tridiagonal.metal``: Householder sweeps as in Haidar, Ltaief & Dongarra,
SC11, and PLASMA/MAGMA's sb2st, one threadgroup per matrix, its simdgroups chasing
several sweeps at once). The reflectors are not kept: the eigenvectors' transformation
of this stage is not there yet, so it serves eigenvalues only.
"""

import mlx.core as mx

from mlx_linalg import _kernels

# The kernel keeps a reflector's entries one per SIMD lane.
MAX_BAND = 32
# Simdgroups per threadgroup: sweep s runs three ticks behind sweep s - 1, so about
# n / (3 band) sweeps are in flight at once (43 at n = 4096, band = 32), each simdgroup
# taking its share in turn. 8: the kernel holds 168 registers per thread at band 32 (nvcc
# for sm_90), and a threadgroup of 512 such threads would not fit an SM's 65536; to be
# tuned on the GPU.
SIMDGROUPS = 8


def band_to_tridiagonal_launch(
    shape: tuple[int, ...], band: int, simdgroups: int = SIMDGROUPS
) -> dict:
    """The kernel's launch arguments (template, grid, threadgroup, output shapes) for a
    (B, n, n) band matrix of half-width ``band``; shared with the CPU emulation in tests
    (which runs fewer simdgroups)."""
    batch, n, _ = shape
    threads = 32 * simdgroups
    return {
        "template": {"BAND": band},
        "grid": (batch * threads, 1, 1),
        "threadgroup": (threads, 1, 1),
        "output_shapes": [(batch, n), (batch, n), (batch, n, 3 * band + 1)],
    }


def band_to_tridiagonal(a: mx.array, band: int) -> tuple[mx.array, mx.array]:
    """The tridiagonal form of symmetric band matrices, for their eigenvalues.

    Args:
        a: (..., n, n) float32, symmetric with half-bandwidth ``band`` (A[i, j] = 0 for
            |i - j| > band); its lower band is read, nothing else. On a GPU.
        band: 1 <= band <= 32 (:data:`MAX_BAND`).

    Returns:
        ``(d, e)``: (..., n) diagonal and (..., n - 1) subdiagonal of a tridiagonal matrix
        orthogonally similar to ``a`` (the subdiagonal's signs arbitrary). A matrix with a
        NaN in its band gets NaN in its (d, e); the others are unaffected.

    Raises:
        ValueError: for another dtype, a non-square or a too wide band.
        RuntimeError: where MLX has no GPU backend (from the kernel layer).
    """
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(
            f"[band_to_tridiagonal] expected (..., n, n) matrices, got shape {a.shape}"
        )
    if a.dtype != mx.float32:
        raise ValueError(f"[band_to_tridiagonal] expected float32, got {a.dtype}")
    if not 1 <= band <= MAX_BAND:
        raise ValueError(f"[band_to_tridiagonal] expected 1 <= band <= {MAX_BAND}, got {band}")
    n = a.shape[-1]
    batch_shape = a.shape[:-2]
    if band == 1:  # tridiagonal already
        return mx.diagonal(a, 0, -2, -1), mx.diagonal(a, -1, -2, -1)
    flat = a.reshape(-1, n, n)
    if flat.shape[0] * n == 0:
        return mx.zeros((*batch_shape, n), mx.float32), mx.zeros(
            (*batch_shape, max(n - 1, 0)), mx.float32
        )
    d, e, _ = _kernels.launch(
        "band_to_tridiagonal", [flat], **band_to_tridiagonal_launch(flat.shape, band)
    )
    return d.reshape(*batch_shape, n), e[:, : n - 1].reshape(*batch_shape, n - 1)
