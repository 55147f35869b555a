"""SVD and singular values of large float32 matrices on the GPU: QDWH polar, then the
two-stage eigensolver on the polar factor H. Dispatch rules and implementations.

Nakatsukasa & Higham, SIAM J. Sci. Comput. 35 (2013), §5 (QDWH-SVD): A = U_p H by the
QR-based dynamically weighted Halley iteration (``polar.qdwh``), H = V Σ Vᵀ (H is symmetric
positive semidefinite, so its eigenvalues are the singular values), U = U_p V. Where they
use QDWH-eig for H, this route hands the whole of H to the two-stage tridiagonal reduction
that ``mlx_linalg.eigh`` dispatches to from its crossover (``two_stage.eigh_scaled``: dense
to band by matrix products, bulge chasing, divide and conquer): no spectral splits, so no
host synchronization per split. ``spectral_dc.svd`` assembles the factors (sorts, moves a
rounding-level negative eigenvalue's sign to U, re-orthonormalizes U by CholeskyQR2 with a
Householder fallback, which also completes U for rank-deficient A).

Cost, measured on one H200 (2026-11-29, float32, one square matrix, graded singular values
1..10⁻³; ``tools/bench_spectral_blocks.py --ops svd``): at n = 1024, 2048, 4096 the polar
decomposition took 119, 213, 665 ms and the two-stage eigh of H 65, 129, 313; the whole SVD
208, 427, 975 ms against 276, 1305, 6870 on mlx_linalg's CPU path (LAPACK, 16 cores) and
69, 277, 1283 for PyTorch (cuSOLVER) in the same process. DESIGN.md's SVD ratio 2.9 and 4.3
at n = 1024 and 2048 (threshold 50; the CPU path's 0.8 and 0.7).

The singular values alone (:func:`svdvals`): the eigenvalues of H by the two-stage route
without eigenvectors, 284 and 712 ms at n = 2048 and 4096 against 612 and 2956 on the CPU
path and 233 and 1148 for PyTorch.

Dispatch (``mlx_linalg._dispatch`` appends :func:`dispatch_rules` to ``GPU_RULES`` after
the small-matrix and tall-skinny rules): float32 stacks whose short side is at least
:data:`CROSSOVER` (svd: square for ``full_matrices=True``, whose U and Vh are then the
reduced ones) and whose long side is at most :data:`MAX_ASPECT` times the short one. Built
eagerly at every call, like the two-stage eigh it calls (see ``two_stage.dispatch_rules``).
Host synchronizations: one per matrix of the stack (``spectral_dc.eigh`` reads whether it
is finite) and one for the CholeskyQR2 failure flags; under ``mx.compile``/``mx.vmap``
tracing ``mlx_linalg._autodiff`` runs the op's lazy CPU form instead.
"""

import mlx.core as mx

from mlx_linalg._gpu import polar, spectral_dc, tall_skinny, two_stage

# The least short side served: from there the route beat mlx_linalg's CPU path at every
# order timed (one H200 machine, 16 cores, 2026-11-29, square float32, graded 1..10⁻³, ms):
# svd 39 / 62 / 103 / 208 against 10 / 40 / 101 / 276 at n = 256 / 512 / 768 / 1024;
# svdvals 30 / 51 / 104 / 114 / 284 against 5 / 19 / 47 / 111 / 612 at 256 ... 2048
# (docs/kernels-spectral-blocks.md, "Square SVD").
CROSSOVER = {"svd": 1024, "svdvals": 2048}
# The largest long side / short side served: svd measured at 4:1 and 8:1 (4096 x 1024: 164
# against 638 ms; 8192 x 1024: 182 against 1095), svdvals at 4:1 (133 against 292 ms).
MAX_ASPECT = 8


def two_stage_eigh(h: mx.array) -> tuple[mx.array, mx.array]:
    """``spectral_dc``'s base eigensolver: the two-stage eigh of a symmetric (n, n) float32
    block, ``(w, V)`` with w ascending."""
    (w, v), _ = two_stage.eigh_scaled(h)
    return w, v


def _applies(x: mx.array, order: int) -> bool:
    if x.dtype != mx.float32 or x.ndim < 2 or x.size == 0:
        return False
    short, long = sorted(x.shape[-2:])
    return short >= order and long <= MAX_ASPECT * short


def svd_applies(x: mx.array, *, full_matrices: bool = False) -> bool:
    """float32 stacks with short side >= CROSSOVER["svd"] and aspect <= MAX_ASPECT; square
    ones only for ``full_matrices``."""
    if full_matrices and x.shape[-1] != x.shape[-2]:
        return False
    return _applies(x, CROSSOVER["svd"])


def svdvals_applies(x: mx.array) -> bool:
    """float32 stacks with short side >= CROSSOVER["svdvals"] and aspect <= MAX_ASPECT."""
    return _applies(x, CROSSOVER["svdvals"])


def svd(x: mx.array, *, full_matrices: bool) -> tuple[tuple[mx.array, mx.array, mx.array], None]:
    """SVD of a stack of float32 matrices by QDWH polar and the two-stage eigh of H:
    ``((U, S, Vh), None)``.

    Args:
        x: (..., M, N) float32 within :func:`svd_applies` (M = N if ``full_matrices``).
        full_matrices: as ``mlx_linalg.svd``; for the square matrices it is served for,
            the complete and the reduced factors are the same.

    Returns:
        U (..., M, K), S (..., K) descending and nonnegative, Vh (..., K, N), K = min(M, N);
        NaN outputs for a matrix holding NaN or Inf (the others are unaffected).

    Notes:
        ``spectral_dc.svd(x, tall_skinny.KERNELS, base=<two-stage eigh>, base_size=K)``:
        the polar decomposition (about 35K³ flops, two QR-based and three Cholesky-based
        iterations in float32), the two-stage eigh of the K x K H, U = U_p V (2MK²) and a
        CholeskyQR2 of U (4MK²). Nakatsukasa & Higham 2013, §5.

    See Also:
        scipy.linalg.svd
    """
    k = min(x.shape[-2:])
    return spectral_dc.svd(x, tall_skinny.KERNELS, base=two_stage_eigh, base_size=k), None


def svdvals(x: mx.array) -> tuple[tuple[mx.array], None]:
    """Singular values (descending) of a stack of float32 matrices: ``((S,), None)``,
    S (..., K), K = min(M, N); NaN for a matrix holding NaN or Inf.

    Notes:
        The eigenvalues of the polar factor H (``polar.qdwh``, computed on Aᵀ for wide A)
        by the two-stage route without eigenvectors (``two_stage.eigh_scaled(...,
        want_vectors=False)``), taken by absolute value (a rounding-level negative one)
        and sorted descending. H = √(AᵀA) to working precision, so the singular values
        have absolute errors O(u‖A‖₂), as LAPACK's.
    """
    m, n = x.shape[-2:]
    tall = mx.swapaxes(x, -1, -2) if m < n else x
    _, h, _ = polar.qdwh(tall, tall_skinny.KERNELS)
    (w,), _ = two_stage.eigh_scaled(h, want_vectors=False)
    return (-mx.sort(-mx.abs(w), axis=-1),), None


def dispatch_rules() -> dict:
    """``op -> (applies, implementation)`` for ``GPU_RULES``: svd and svdvals within
    :func:`svd_applies` and :func:`svdvals_applies` (not traced by
    ``compiled_graphs.cached``, as the two-stage eigh)."""
    return {
        "svd": (svd_applies, svd),
        "svdvals": (svdvals_applies, svdvals),
    }
