"""Eigenvalues and eigenvectors of large symmetric float32 matrices on the GPU by the
two-stage tridiagonal reduction: dense to band (:func:`band_reduction.sy2sb`, matrix
products), band to tridiagonal (:func:`band_chase.band_to_tridiagonal`, one
bulge-chasing launch), then bisection for the eigenvalues
(:func:`tridiagonal.tridiagonal_eigenvalues`, one launch) or divide and conquer for both
(:func:`tridiagonal_dc.eigh_tridiagonal`) and the two back-transformations
(:func:`band_chase.apply_band_q` or, from :data:`Q2_BLOCKS_FROM`,
:func:`band_q_blocks.apply_band_q_blocks`; :func:`band_reduction.apply_q`). One lazy graph each;
nothing synchronizes with the host; each stage (and every few steps of the long loops)
starts evaluating as soon as it is built (``_tracing``).

``mlx_linalg._dispatch`` appends :func:`dispatch_rules` to ``GPU_RULES``: float32 eigh and
eigvalsh from the orders of :data:`CROSSOVER` on, each matrix scaled by a power of two
first (:func:`eigh_scaled`), where LAPACK on the host ran before.
"""

import mlx.core as mx

from mlx_linalg._gpu import (
    band_chase,
    band_q_blocks,
    band_reduction,
    tridiagonal,
    tridiagonal_dc,
)
from mlx_linalg._gpu.blocked_common import KERNELS, applies_square, from_order
from mlx_linalg._gpu.reference import nan_where
from mlx_linalg._gpu.scaling import prescale_lower, times_power_of_two
from mlx_linalg._tracing import start_evaluation

# The band's half-width: the widest the bulge-chasing kernel takes (its reflectors are
# held one entry per SIMD lane) and stage 1's default.
BAND = min(band_reduction.BAND, band_chase.MAX_BAND)
# The order from which stage 2's back-transformation is applied by blocks of reflectors
# (band_q_blocks: matrix products) rather than a sweep at a time (the
# apply_band_reflectors kernel). H200, 2026-11-30, Q₂ Z for Z n x n (blocks of 64): the
# kernel 1.70 / 8.51 / 56.1 ms at n = 1024 / 2048 / 4096, blocks 5.09 / 10.2 / 46.0
# (3072 not measured).
Q2_BLOCKS_FROM = 4096


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
    start_evaluation(banded)  # the GPU runs stage 1 while the host builds the rest
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
    # The GPU runs each stage while the host builds the next (no host read: lazy as before).
    start_evaluation(banded, *(x for r in reflectors for x in (r.v, r.t)))
    d, e, kept = band_chase.band_to_tridiagonal_q(banded, band)
    start_evaluation(d, e, kept)
    w, z = tridiagonal_dc.eigh_tridiagonal(d, e)
    start_evaluation(w, z)
    if n >= Q2_BLOCKS_FROM:
        z = band_q_blocks.apply_band_q_blocks(kept, z)
    else:
        z = band_chase.apply_band_q(kept, z)
    z = band_reduction.apply_q(reflectors, z)
    return w.reshape(a.shape[:-1]), z.reshape(a.shape)


# The smallest order at which the route beat mlx_linalg's CPU path (LAPACK, 16 cores) on
# one H100, float32, one matrix (tools/bench_band_reduction.py,
# docs/kernels-spectral-blocks.md "Two-stage tridiagonal reduction"): at n = 1024 eigh
# 85.5 against 95.9 ms and eigvalsh a tie (49.7 against 47.2; 35.8 against 46.5 in an
# earlier run); at 768 the CPU path won eigh (60.3 against 63.7); at 4096 eigh 706 against
# 1631, eigvalsh 304 against 865.
CROSSOVER = {"eigvalsh": 1024, "eigh": 1024}


def eigh_scaled(x: mx.array, *, want_vectors: bool = True) -> tuple[tuple[mx.array, ...], None]:
    """The dispatch contract's eigh (``want_vectors``) or eigvalsh by this route.

    Args:
        x: (..., n, n) float32, n >= 1; only the lower triangle is read. On a GPU.

    Returns:
        ``((w, z), None)`` or ``((w,), None)`` as :func:`eigh` and :func:`eigvalsh`. Each
        matrix is scaled by a power of two to a largest entry in [1, 2) first (exact;
        ``scaling.prescale``) and w scaled back, so no intermediate overflows or
        underflows; a matrix with a NaN or Inf in its lower triangle gets NaN outputs.
    """
    n = x.shape[-1]
    scaled, exponent, finite = prescale_lower(x.reshape(-1, n, n))
    if want_vectors:
        w, z = eigh(scaled)
    else:
        w, z = eigvalsh(scaled), None
    w = nan_where(~finite, times_power_of_two(w, exponent)).reshape(x.shape[:-1])
    if z is None:
        return (w,), None
    return (w, nan_where(~finite, z).reshape(x.shape)), None


def _eigvalsh_scaled(x: mx.array) -> tuple[tuple[mx.array], None]:
    return eigh_scaled(x, want_vectors=False)


def dispatch_rules() -> dict:
    """``op -> (applies, implementation)`` for ``GPU_RULES``: eigh and eigvalsh from
    :data:`CROSSOVER` on. Built eagerly at every call, not traced
    (``compiled_graphs.cached``): on one H100 (2026-11-27, eigh, float32, one matrix) the
    first trace took 193 s at n = 1024 (NVRTC compiling the route's fused kernels into an
    empty cache; 0.44 and 1.1 s at 2048 and 4096 after it), and replays then ran 1.4x,
    1.2x and 1.1x faster than the eager graph at 1024, 2048 and 4096 (55 against 78, 138
    against 166, 460-506 against 535-548 ms): minutes of a user's first call for a tenth
    to a third of each later one."""
    return {
        "eigh": (from_order(CROSSOVER["eigh"], applies_square), eigh_scaled),
        "eigvalsh": (from_order(CROSSOVER["eigvalsh"], applies_square), _eigvalsh_scaled),
    }
