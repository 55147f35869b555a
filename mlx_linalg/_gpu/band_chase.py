"""Stage 2 of the two-stage tridiagonal reduction: a symmetric band matrix to tridiagonal
form by bulge chasing on the GPU, and its back-transformation.

Stage 1 (:func:`mlx_linalg._gpu.band_reduction.sy2sb`) leaves a band of half-width
``band`` whose O(n³) flops were matrix products; this stage chases the band down to
tridiagonal in O(n² band) flops with one launch of the ``band_to_tridiagonal`` kernel
(``metal/band_to_tridiagonal.metal``: Householder sweeps as in Haidar, Ltaief & Dongarra,
SC11, and PLASMA/MAGMA's sb2st, one threadgroup per matrix, its simdgroups chasing
several sweeps at once), or from :data:`TILED_FROM` on with sequenced launches of tiles
of sweeps and ticks on many SMs (:mod:`mlx_linalg._gpu.band_chase_tiles`, the same results
bit for bit). :func:`band_to_tridiagonal` gives the tridiagonal matrix (for
eigenvalues); :func:`band_to_tridiagonal_q` also keeps the reflectors, which
:func:`apply_band_q` applies to vectors of length up to ``APPLY_ORDERS[-1]`` (the
``apply_band_reflectors`` kernel: a sweep's reflectors at once, the vector in threadgroup
memory), as the eigenvectors need.
"""

import mlx.core as mx

from mlx_linalg import _kernels
from mlx_linalg._gpu import band_chase_tiles

# The kernel keeps a reflector's entries one per SIMD lane.
MAX_BAND = 32
# Simdgroups per threadgroup: sweep s runs three ticks behind sweep s - 1, so about
# n / (3 band) sweeps are in flight at once (43 at n = 4096, band = 32), each simdgroup
# taking its share in turn. A lane holds its rows of the block in registers: nvcc (sm_90)
# gives the kernel 96 to 128 registers per thread, so at most 512 threads fit an SM (20
# simdgroups failed to launch on the H100). 12 leaves room for another compiler's
# allocation and was within 3% of 16 on the H100 (n = 4096: 161 against 157 ms; 8: 173;
# tools/bench_band_reduction.py --simdgroups). Read at each call.
SIMDGROUPS = 12
# The orders the back-transformation kernel is compiled for (its vector held in
# threadgroup memory: NMAX + NMAX / 32 floats); the smallest that holds n is used.
APPLY_ORDERS = (1024, 2048, 4096)
# From this order on, the chase runs on many SMs (band_chase_tiles: sequenced launches of
# tiles) instead of one threadgroup a matrix. H100, 2026-11-28: the dispatched eigh took
# 231 against 274 ms at n = 3072 and eigvalsh 203 against 211; at 2048 the tiled chase was
# slower (47 against 44 ms keeping Q, 68 against 43 not): docs/kernels-spectral-blocks.md,
# "Stage 2 on many SMs". Read at each call.
TILED_FROM = 3072


def reflector_slots(n: int, band: int) -> tuple[int, int]:
    """(S, K): sweeps and ticks per sweep (sweep 0's, the most) of the kept reflectors of an
    n x n band matrix, each at least 1."""
    ticks = 1 + (n - 3) // band if n >= 3 else 1
    return max(n - 2, 1), ticks


def band_to_tridiagonal_launch(
    shape: tuple[int, ...], band: int, simdgroups: int | None = None, *, want_q: bool = False
) -> dict:
    """The kernel's launch arguments (template, grid, threadgroup, output shapes) for a
    (B, n, n) band matrix of half-width ``band``, its reflectors kept when ``want_q``;
    ``simdgroups`` per threadgroup (None: :data:`SIMDGROUPS`). Shared with the CPU
    emulation in tests (which runs fewer simdgroups)."""
    batch, n, _ = shape
    simdgroups = SIMDGROUPS if simdgroups is None else simdgroups
    if not 1 <= simdgroups <= 32:  # the kernel's threadgroup arrays hold 32
        raise ValueError(f"[band_to_tridiagonal] expected 1 to 32 simdgroups, got {simdgroups}")
    threads = 32 * simdgroups
    kept = (batch, *reflector_slots(n, band), band + 1) if want_q else (batch, 1)
    return {
        "template": {"BAND": band, "WANT_Q": want_q},
        "grid": (batch * threads, 1, 1),
        "threadgroup": (threads, 1, 1),
        "output_shapes": [(batch, n), (batch, n), (batch, n, 3 * band + 1), kept],
    }


def apply_band_reflectors_launch(reflectors_shape: tuple[int, ...], rows: int, n: int) -> dict:
    """The back-transformation kernel's launch arguments for ``rows`` vectors of length
    ``n <= APPLY_ORDERS[-1]`` in all (the batch's), each given as a row, one simdgroup
    (threadgroup) each; shared with the CPU emulation in tests."""
    return {
        "template": {
            "BAND": reflectors_shape[-1] - 1,
            "NMAX": next(order for order in APPLY_ORDERS if n <= order),
        },
        "grid": (rows * 32, 1, 1),
        "threadgroup": (32, 1, 1),
    }


def _checked(a: mx.array, band: int, name: str) -> None:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"[{name}] expected (..., n, n) matrices, got shape {a.shape}")
    if a.dtype != mx.float32:
        raise ValueError(f"[{name}] expected float32, got {a.dtype}")
    if not 1 <= band <= MAX_BAND:
        raise ValueError(f"[{name}] expected 1 <= band <= {MAX_BAND}, got {band}")


def _chase(a: mx.array, band: int, want_q: bool) -> list[mx.array]:
    """The chase's (d, e, reflectors), the batch flattened; ``a`` is not empty. From
    :data:`TILED_FROM` on, on many SMs (``band_chase_tiles``) where its tiles fit, else one
    threadgroup a matrix; the same results bit for bit."""
    n = a.shape[-1]
    flat = a.reshape(-1, n, n)
    if n < TILED_FROM or not band_chase_tiles.fits(n, band):
        launch = band_to_tridiagonal_launch(flat.shape, band, want_q=want_q)
        d, e, _, kept = _kernels.launch("band_to_tridiagonal", [flat], **launch)
        return [d, e[:, : n - 1], kept]
    work, kept = band_chase_tiles.chase(band_chase_tiles.packed_band(flat, band), band, want_q)
    return [work[:, :, 0], work[:, : n - 1, 1], kept]


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
    _checked(a, band, "band_to_tridiagonal")
    n = a.shape[-1]
    batch_shape = a.shape[:-2]
    if band == 1:  # tridiagonal already
        return mx.diagonal(a, 0, -2, -1), mx.diagonal(a, -1, -2, -1)
    if a.size == 0:
        return mx.zeros((*batch_shape, n), mx.float32), mx.zeros(
            (*batch_shape, max(n - 1, 0)), mx.float32
        )
    d, e, _ = _chase(a, band, want_q=False)
    return d.reshape(*batch_shape, n), e.reshape(*batch_shape, n - 1)


def band_to_tridiagonal_q(a: mx.array, band: int) -> tuple[mx.array, mx.array, mx.array]:
    """:func:`band_to_tridiagonal` with its orthogonal transformation: T = Qᵀ A Q.

    Args:
        a: (..., n, n) float32 band matrices, as :func:`band_to_tridiagonal`.
        band: 1 <= band <= 32.

    Returns:
        ``(d, e, reflectors)``: T's diagonal and subdiagonal as :func:`band_to_tridiagonal`,
        and Q's reflectors (..., S, K, band + 1) (:func:`reflector_slots`; the kernel's
        layout, metal/band_to_tridiagonal.metal), for :func:`apply_band_q`.
    """
    _checked(a, band, "band_to_tridiagonal_q")
    n = a.shape[-1]
    batch_shape = a.shape[:-2]
    if a.size == 0:  # Q = I: no reflectors
        slots = (*batch_shape, *reflector_slots(n, band), band + 1)
        return (
            mx.zeros((*batch_shape, n), mx.float32),
            mx.zeros((*batch_shape, max(n - 1, 0)), mx.float32),
            mx.zeros(slots, mx.float32),
        )
    d, e, kept = _chase(a, band, want_q=True)
    return (
        d.reshape(*batch_shape, n),
        e.reshape(*batch_shape, n - 1),
        kept.reshape(*batch_shape, *kept.shape[1:]),
    )


def apply_band_q(reflectors: mx.array, z: mx.array) -> mx.array:
    """Q Z for the Q of :func:`band_to_tridiagonal_q` (stage 2's back-transformation).

    Args:
        reflectors: (..., S, K, band + 1) from :func:`band_to_tridiagonal_q`.
        z: (..., n, m) float32, the same batch shape. On a GPU.

    Returns:
        (..., n, m): Q Z, one simdgroup per column through the ``apply_band_reflectors``
        kernel (the columns are handed to it as rows: two transposing copies). n must be at
        most ``APPLY_ORDERS[-1]``; beyond it ``band_q_blocks.apply_band_q_blocks`` applies
        the same Q.
    """
    n, m = z.shape[-2:]
    batch = reflectors.shape[:-3]
    if z.dtype != mx.float32 or z.shape[:-2] != batch:
        raise ValueError(
            f"[apply_band_q] expected float32 (..., n, m) with the reflectors' batch shape "
            f"{batch}, got {z.dtype} {z.shape}"
        )
    if n > APPLY_ORDERS[-1]:
        raise ValueError(
            f"[apply_band_q] expected n <= {APPLY_ORDERS[-1]} (the kernel holds a vector in "
            f"threadgroup memory), got n = {n}: use band_q_blocks.apply_band_q_blocks"
        )
    if z.size == 0:
        return z
    kept = reflectors.reshape(-1, *reflectors.shape[-3:])
    rows = mx.swapaxes(z.reshape(-1, n, m), -1, -2)
    (y,) = _kernels.launch(
        "apply_band_reflectors",
        [kept, rows],
        output_shapes=[rows.shape],
        **apply_band_reflectors_launch(kept.shape, rows.shape[0] * m, n),
    )
    return mx.swapaxes(y, -1, -2).reshape(z.shape)
