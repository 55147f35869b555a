"""QR and SVD of tall-skinny float32 stacks on the GPU: dispatch rules and implementations.

The building blocks exist elsewhere; this module routes to them (``mlx_linalg._dispatch``
appends :func:`dispatch_rules` to ``GPU_RULES`` after the small-matrix kernel rules and
before the blocked ones):

* **qr** (``mode="reduced"``) of an M x N stack with M >= :data:`QR_TALL_RATIO`·N,
  N <= :data:`QR_MAX_COLS` and at least :data:`QR_MIN_WORK` (B·M·N²), beyond the
  one-threadgroup ``qr_small`` kernel's limits: CholeskyQR2 with a Householder fallback
  (``tall_skinny.qr(x, tall_skinny.KERNELS, method="cholqr2", fallback="sync")``; Yamamoto,
  Nakatsukasa, Yanagisawa & Fukaya, ETNA 44, 2015). Two Gram products and two triangular
  solves with M right-hand sides, where the blocked Householder QR (``blocked_qr``) runs a
  one-threadgroup panel kernel down all M rows for every 32 columns.
* **svd** / **svdvals** of a stack whose tall orientation T x S (T >= S; a wide matrix is
  transposed) has S <= ``small_spectral.SVD_MAX_COLS`` (64), T >= :data:`SVD_TALL_RATIO`·S,
  at least :data:`SVD_MIN_WORK` (B·T·S²), and lies beyond ``small_spectral.svd_applies``:
  the QR-preconditioned SVD, X = QR by the same tall-skinny QR, R = U_R Σ Vᵀ by the batched
  one-sided Jacobi kernel (``small_spectral.svd``), U = Q U_R. LAPACK's xGESVD/xGESDD take
  this route when M is much larger than N (QR first, then the bidiagonal SVD of R); Demmel
  & Veselić (SIAM J. Matrix Anal. Appl. 13, 1992) and Drmač & Veselić (SIAM J. Matrix Anal.
  Appl. 29, 2008, "New fast and accurate Jacobi SVD algorithm I") use QR as the
  preconditioner of one-sided Jacobi. With Q orthonormal to O(u) and X = QR + O(u‖X‖), the
  SVD is backward stable and the singular values have absolute errors O(u‖X‖₂).
  ``full_matrices=True`` with T > S needs a complete orthonormal basis (T x T): then the QR
  is Householder's complete one (``blocked_qr.qr(mode="complete")``, 4T²S flops and a few
  T x T arrays, so only up to T = :data:`SVD_FULL_MAX_ROWS`), U = [Q₁U_R, Q₂] with Q₁ its
  first S columns.

Failure handling: CholeskyQR2 fails (per matrix) on rank-deficient input, κ(X) beyond
about u^(-1/2) ≈ 4·10³ in float32, and non-finite input; ``fallback="sync"`` reads those
flags with one host synchronization and runs Householder QR (``blocked_qr``) on the failed
matrices only. So the graph is not synchronization-free: under ``mx.compile``/``mx.vmap``
tracing the synchronization raises MLX's tracing error and ``mlx_linalg._autodiff`` runs the
op's lazy CPU form instead. The Jacobi SVD of R handles rank deficiency (zero singular
values get completed U columns). Each matrix is scaled by a power of two to a largest entry
in [1, 2) first (exact; S is scaled back), so neither the Gram matrices nor R can overflow,
and a matrix holding NaN or Inf gets NaN in its own outputs only (it is zeroed for the
graph, then its outputs are set to NaN).

The thresholds below were measured on an H100 with ``tools/bench_tall.py`` (it prints the
crossovers it suggests; docs/kernels-spectral-blocks.md has the table).

Implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in,
``(outputs, failed)`` out with ``failed`` None (non-finite matrices are NaN in the
outputs), batch axes kept. The building blocks are keywords (``factor``, ``blocks``), so
the CPU tests run the same graph with ``tall_skinny.REFERENCE`` and
``blocked_common.REFERENCE``.
"""

import mlx.core as mx

from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_common, blocked_qr, small_spectral, tall_skinny
from mlx_linalg._gpu.reference import nan_where
from mlx_linalg._gpu.scaling import prescale, times_power_of_two

# Measured on an H100 (2026-11-26, tools/bench_tall.py, float32, one matrix; the table is in
# docs/kernels-spectral-blocks.md). QR: the least M/N ratio (against the blocked Householder
# QR) and the widest N served; CholeskyQR2's 4MN² flops are Gram products. At M/N >= 8 the
# tall graph beat the blocked QR and the CPU path from N = 64 to 512 (4096 x 512: 13.6 ms
# against 34.4 blocked and 104 CPU; 65536 x 64: 3.5 against 43.7 and 66), at M/N = 4 it lost
# to the blocked QR (512 x 128: 7.0 against 4.7). N is capped at 256: at N = 512 its QR ratio
# rose to 2.0-2.2 (0.08 at 2048 x 256), above ten times LAPACK's. The least work B·M·N² (B
# the batch) served, against the CPU path: the graph is some 80 launches plus one host read
# (about 1.5 ms), which LAPACK beats on small matrices (2048 x 32, 2·10⁶: 2.2 against 1.9 ms;
# 1024 x 64, 4·10⁶: 1.7 against 3.4).
QR_TALL_RATIO = 8
QR_MAX_COLS = 256
QR_MIN_WORK = 1 << 22
# SVD: the least T/S ratio (T the tall side, S <= small_spectral.SVD_MAX_COLS), the least
# work B·T·S² (as for QR: 512 x 64, 2·10⁶: 2.9 against 4.1 ms on the CPU path; 256 x 64,
# 10⁶: 3.1 against 2.5), and the largest T for full_matrices=True, whose complete U (T x T,
# 4T²S flops and a few T x T arrays in Householder's complete QR: 1 GiB each at 16384) is
# the whole cost (measured to T = 4096: 8.1 against 461 ms on the CPU path at 4096 x 64; the
# CPU path's cost grows like the graph's, as T²S, beyond it).
SVD_TALL_RATIO = 8
SVD_MIN_WORK = 1 << 21
SVD_FULL_MAX_ROWS = 16384
# The tall-skinny QR variant: CholeskyQR2 (κ up to about 4·10³ in float32; beyond it, and
# for rank-deficient input, the Householder fallback).
METHOD = "cholqr2"


def _shape_ok(x: mx.array) -> bool:
    return x.dtype == mx.float32 and x.ndim >= 2 and x.size > 0


def work(x: mx.array) -> int:
    """B·T·S² of a (..., M, N) stack (T, S its long and short side): the Gram products'
    flops over 2, the measure of the rules' size thresholds."""
    return x.size * min(x.shape[-2:])


def qr_applies(x: mx.array, *, mode: str) -> bool:
    """Reduced QR of float32 stacks with M >= QR_TALL_RATIO·N, N <= QR_MAX_COLS and work
    B·M·N² >= QR_MIN_WORK, beyond the small ``qr_small`` kernel's limits."""
    if mode != "reduced" or not _shape_ok(x):
        return False
    m, n = x.shape[-2:]
    return (
        m >= QR_TALL_RATIO * n
        and n <= QR_MAX_COLS
        and work(x) >= QR_MIN_WORK
        and not small_spectral.qr_applies(x, mode=mode)
    )


def qr(
    x: mx.array, *, mode: str, factor: tall_skinny.Factor = tall_skinny.KERNELS
) -> tuple[tuple[mx.array, mx.array], None]:
    """Reduced QR of a stack of tall-skinny matrices by CholeskyQR2 with a Householder
    fallback: ``((Q, R), None)``.

    Args:
        x: (..., M, N) float32, M >= N (within :func:`qr_applies`).
        mode: ``"reduced"``.
        factor: the building blocks (``tall_skinny.KERNELS`` on the GPU).

    Returns:
        Q (..., M, N) with orthonormal columns and R (..., N, N) upper triangular with a
        nonnegative diagonal; NaN for a matrix holding NaN or Inf.

    Notes:
        ``tall_skinny.qr(method="cholqr2", fallback="sync")``: 4MN² + 2N³/3 flops, one host
        synchronization (the failure flags), Householder QR for the failed matrices only.

    See Also:
        scipy.linalg.qr (mode="economic")
    """
    if mode != "reduced":
        raise ValueError(f"[mlx_linalg.qr] the tall-skinny path is reduced only, got {mode!r}")
    q, r, _ = tall_skinny.qr(x, factor, method=METHOD, fallback="sync")
    return (q, r), None


def svd_applies(x: mx.array, *, full_matrices: bool = False) -> bool:
    """SVD of float32 stacks whose tall orientation T x S has S <= SVD_MAX_COLS (64),
    T >= SVD_TALL_RATIO·S, work B·T·S² >= SVD_MIN_WORK, and is beyond
    ``small_spectral.svd_applies``; with ``full_matrices`` and T > S, T <= SVD_FULL_MAX_ROWS."""
    if not _shape_ok(x):
        return False
    tall, short = max(x.shape[-2:]), min(x.shape[-2:])
    if full_matrices and tall > short and tall > SVD_FULL_MAX_ROWS:
        return False
    return (
        short <= small_spectral.SVD_MAX_COLS
        and tall >= SVD_TALL_RATIO * short
        and work(x) >= SVD_MIN_WORK
        and not small_spectral.svd_applies(x)
    )


def svdvals_applies(x: mx.array) -> bool:
    """svdvals under the limits of :func:`svd_applies` (reduced)."""
    return svd_applies(x)


def _tall_stack(x: mx.array) -> tuple[mx.array, bool, tuple[int, ...]]:
    """``x`` (..., M, N) as its tall orientation (B, T, S), whether it was wide, and the
    batch shape."""
    wide = x.shape[-2] < x.shape[-1]
    tall = mx.swapaxes(x, -1, -2) if wide else x
    return tall.reshape(-1, *tall.shape[-2:]), wide, tuple(x.shape[:-2])


def svd(
    x: mx.array,
    *,
    full_matrices: bool,
    factor: tall_skinny.Factor = tall_skinny.KERNELS,
    blocks: blocked_common.Blocks = blocked_common.KERNELS,
) -> tuple[tuple[mx.array, mx.array, mx.array], None]:
    """SVD of a stack of tall-skinny (or, transposed, wide) matrices through a QR
    preconditioner: ``((U, S, Vh), None)``.

    Args:
        x: (..., M, N) float32 within :func:`svd_applies`.
        full_matrices: U (..., M, M) and Vh (..., N, N) if True; else K = min(M, N)
            columns of U and rows of Vh.
        factor: the tall-skinny QR's building blocks (``tall_skinny.KERNELS`` on the GPU).
        blocks: the complete Householder QR's building blocks (full_matrices only).

    Returns:
        U, S (..., K) descending and nonnegative, Vh; NaN for a matrix holding NaN or Inf.

    Notes:
        With T x S the tall orientation (X = x, or xᵀ for wide x): X = QR (reduced
        CholeskyQR2 with the Householder fallback; for ``full_matrices`` with T > S the
        complete Householder QR, Q (T x T), R its first S rows), R = U_R Σ Vᵀ by the batched
        one-sided Jacobi kernel, U = Q₁ U_R (float32-accurate product), and the other T - S
        columns of a complete U are Q's. For wide x, x = V Σ Uᵀ: U and Vh swap roles.
        Cost: 4TS² (reduced; the Gram products) or 4T²S (complete) flops plus the Jacobi
        sweeps on S x S. Demmel & Veselić 1992; Drmač & Veselić 2008 (QR-preconditioned
        Jacobi SVD); LAPACK xGESVD's M >> N path.

    See Also:
        scipy.linalg.svd
    """
    a, wide, batch = _tall_stack(x)
    t, s = a.shape[-2:]
    scaled, exponent, finite = prescale(a)
    complete = full_matrices and t > s
    if complete:
        (q_full, r_full), _ = blocked_qr.qr(scaled, mode="complete", blocks=blocks)
        q, r = q_full[:, :, :s], r_full[:, :s, :]
    else:
        q, r, _ = tall_skinny.qr(scaled, factor, method=METHOD, fallback="sync")
    (u_r, sigma, vh), _ = small_spectral.svd(r, full_matrices=False)
    u = _precision.matmul(q, u_r)
    if complete:
        q_full[:, :, :s] = u
        u = q_full
    sigma = nan_where(~finite, times_power_of_two(sigma, exponent)).reshape(*batch, s)
    u = nan_where(~finite, u)
    vh = nan_where(~finite, vh)
    if wide:
        # xᵀ = U Σ Vh, so x = Vhᵀ Σ Uᵀ.
        left = mx.swapaxes(vh, -1, -2).reshape(*batch, s, s)
        right = mx.swapaxes(u, -1, -2).reshape(*batch, u.shape[-1], t)
        return (left, sigma, right), None
    return (u.reshape(*batch, t, u.shape[-1]), sigma, vh.reshape(*batch, s, s)), None


def svdvals(
    x: mx.array, *, factor: tall_skinny.Factor = tall_skinny.KERNELS
) -> tuple[tuple[mx.array], None]:
    """Singular values (descending) of a stack of tall-skinny or wide matrices:
    ``((S,), None)``, S (..., K).

    Args:
        x: (..., M, N) float32 within :func:`svdvals_applies`.
        factor: the tall-skinny QR's building blocks.

    Notes:
        The singular values of R from the tall-skinny QR of the tall orientation (only R
        is used, so the graph skips CholeskyQR2's last triangular solve), by the Jacobi
        kernel without singular vectors.
    """
    a, _, batch = _tall_stack(x)
    s = a.shape[-1]
    scaled, exponent, finite = prescale(a)
    _, r, _ = tall_skinny.qr(scaled, factor, method=METHOD, fallback="sync")
    (sigma,), _ = small_spectral.svdvals(r)
    sigma = nan_where(~finite, times_power_of_two(sigma, exponent))
    return (sigma.reshape(*batch, s),), None


def dispatch_rules() -> dict:
    """``op -> (applies, implementation)`` for ``GPU_RULES``."""
    return {
        "qr": (qr_applies, qr),
        "svd": (svd_applies, svd),
        "svdvals": (svdvals_applies, svdvals),
    }
