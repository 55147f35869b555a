"""Orthonormalization of tall-skinny matrices: CholeskyQR2 and shifted CholeskyQR3 with a
Householder fallback, as lazy MLX graphs.

For a stack X (B, M, N) with M >> N, CholeskyQR forms the Gram matrix G = XᵀX (one
matrix product of 2MN² flops, the shape GPUs multiply fastest), its Cholesky factor
G = RᵀR (N³/3 flops) and Q = X R⁻¹ (a triangular solve with M right-hand sides). One round
loses orthogonality like κ(X)²·u; repeating it (CholeskyQR2, Yamamoto, Nakatsukasa,
Yanagisawa & Fukaya, ETNA 44, 2015) gives ‖QᵀQ − I‖ = O((MN + N²)u) whenever
κ(X) ≲ u^(-1/2) (about 4·10³ in float32). Shifted CholeskyQR3 (Fukaya, Kannan, Nakatsukasa,
Yamamoto & Yanagisawa, SIAM J. Sci. Comput. 42, 2020) makes the first round's Cholesky
succeed by factoring G + sI, s = 11(MN + N(N+1))·u·‖X‖₂², which leaves a Q₁ with
κ(Q₁) ≈ √(s)/σ_min(X), and then runs CholeskyQR2 on Q₁; that succeeds while κ(Q₁) ≲ u^(-1/2),
so the range grows to κ(X) ≲ u⁻¹/√(11(MN + N²)) (the paper's worst-case analysis is more
conservative). Measured in float32: about 3·10⁴ for 300 x 16 but only about 3·10³ for
4096 x 64 (CholeskyQR2 alone: about 3·10³); in float64 beyond 10⁹ for 500 x 20.

Each matrix is first scaled by a power of two to a largest entry in [1, 2) (exact; R is
scaled back), so the Gram matrix cannot overflow or underflow.

When the Gram matrix is numerically not positive definite (X rank deficient, κ(X) beyond
the method's range, NaN or Inf), a round's Cholesky fails or the last round's Gram matrix
is far from the identity (‖Q₁ᵀQ₁ − I‖_F > 1/2, which is what the final round's accuracy
needs). Those matrices of the stack are flagged and take Householder QR instead, selected
per matrix with ``mx.where`` (no host synchronization) or, with ``fallback="sync"``,
computed for the flagged matrices only after one host synchronization (lazily selected
while ``mx.compile`` or ``mx.vmap`` traces the call).

The factorizations the graph needs (Cholesky with a failure flag, triangular solve,
Householder QR) are pluggable (:class:`Factor`): :data:`LAPACK` runs them as MLX's own CPU
ops (lazy, on the CPU stream, any device); :data:`REFERENCE` is the blocked GPU graph of
``mlx_linalg._gpu.blocked_*`` (Cholesky, triangular solve, compact-WY Householder QR) with
its MLX-op building blocks (the GPU graph, checkable on the CPU); :data:`KERNELS` is the
same with the small-matrix GPU kernels for the diagonal blocks. Every matrix
product goes through :func:`mlx_linalg._precision.matmul`, float32-accurate under TF32.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import mlx.core as mx

from mlx_linalg import _precision
from mlx_linalg._gpu import (
    blocked_cholesky,
    blocked_common,
    blocked_qr,
    blocked_triangular,
    reference,
)
from mlx_linalg._gpu.scaling import prescale, times_power_of_two
from mlx_linalg._tracing import is_tracing_error

# Largest ‖G − I‖_F of the last round's Gram matrix G = Q₁ᵀQ₁ that is accepted: it bounds
# ‖G − I‖₂ ≤ 1/2, so κ(Q₁) ≤ √3 and the last round is as accurate as on orthonormal input.
GRAM_TOLERANCE = 0.5
# The constant of the shifted CholeskyQR3 shift (Fukaya et al. 2020, eq. (3.3)).
SHIFT_CONSTANT = 11.0
FALLBACKS = ("where", "sync", "nan")
METHODS = ("cholqr2", "scholqr3")


class Factor(NamedTuple):
    """The factorizations of small square blocks (and one of tall ones) a graph needs.

    All take and return (B, ...) stacks of one dtype.

    Attributes:
        cholesky: ``cholesky(g) -> (L, failed)``: lower Cholesky factor of a symmetric
            (B, N, N) stack and a (B,) bool array of matrices that are not (numerically)
            positive definite, NaN/Inf included.
        trsm: ``trsm(l, b, trans=False) -> L⁻¹ b`` (``L⁻ᵀ b`` when ``trans``) for lower
            triangular (B, N, N) ``l`` (only its lower triangle is read) and (B, N, K) ``b``.
        householder: ``householder(x) -> (Q, R)``: reduced Householder QR of (B, M, N),
            M >= N (any sign convention).
    """

    cholesky: Callable[[mx.array], tuple[mx.array, mx.array]]
    trsm: Callable[..., mx.array]
    householder: Callable[[mx.array], tuple[mx.array, mx.array]]


def _lapack_cholesky(g: mx.array) -> tuple[mx.array, mx.array]:
    # MLX's CPU Cholesky (LAPACK potrf) does not report failure; potrf stops at the first
    # non-positive (or NaN) pivot and leaves it on the diagonal, so a factor whose diagonal
    # is not all positive marks the failure.
    factor = mx.linalg.cholesky(g, stream=mx.cpu)
    failed = ~mx.all(mx.diagonal(factor, axis1=-2, axis2=-1) > 0, axis=-1)
    return reference.nan_where(failed, factor), failed


def _lapack_trsm(lower: mx.array, b: mx.array, trans: bool = False) -> mx.array:
    lower = mx.tril(lower)
    if trans:
        return mx.linalg.solve_triangular(mx.swapaxes(lower, -1, -2), b, upper=True, stream=mx.cpu)
    return mx.linalg.solve_triangular(lower, b, upper=False, stream=mx.cpu)


def _lapack_householder(x: mx.array) -> tuple[mx.array, mx.array]:
    return mx.linalg.qr(x, stream=mx.cpu)


def _blocked(blocks: blocked_common.Blocks) -> Factor:
    def cholesky(g: mx.array) -> tuple[mx.array, mx.array]:
        return blocked_cholesky.potrf(blocks, g)

    def trsm(lower: mx.array, b: mx.array, trans: bool = False) -> mx.array:
        return blocked_triangular.trsm(blocks, lower, b, lower=True, trans=trans, unit=False)

    def householder(x: mx.array) -> tuple[mx.array, mx.array]:
        (q, r), _ = blocked_qr.qr(x, mode="reduced", blocks=blocks)
        return q, r

    return Factor(cholesky, trsm, householder)


# MLX's CPU ops (LAPACK): lazy, on the CPU stream, float32 and float64.
LAPACK = Factor(_lapack_cholesky, _lapack_trsm, _lapack_householder)
# The blocked GPU graph with its MLX-op building blocks (any device; float32 and float64):
# blocked Cholesky, triangular solve and compact-WY Householder QR (mlx_linalg._gpu.blocked_*).
REFERENCE = _blocked(blocked_common.REFERENCE)
# The same with the small-matrix kernels for the diagonal blocks (GPU, float32).
KERNELS = _blocked(blocked_common.KERNELS)


def unit_roundoff(dtype: mx.Dtype) -> float:
    """u = 2⁻²⁴ for float32, 2⁻⁵³ for float64."""
    return 2.0**-53 if dtype == mx.float64 else 2.0**-24


def gram(x: mx.array) -> mx.array:
    """XᵀX of (B, M, N), symmetrized, by a float32-accurate product: (B, N, N)."""
    g = _precision.matmul(mx.swapaxes(x, -1, -2), x)
    return (g + mx.swapaxes(g, -1, -2)) * 0.5


def _eye(n: int, dtype: mx.Dtype) -> mx.array:
    return mx.eye(n, dtype=dtype)


def cholesky_qr_round(
    x: mx.array, factor: Factor = LAPACK, *, shift: mx.array | None = None
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """One round of CholeskyQR: ``(Q, R, failed, G)``.

    Args:
        x: (B, M, N), M >= N.
        factor: the Cholesky and triangular solve to use.
        shift: (B,) shifts s, factoring XᵀX + sI (shifted CholeskyQR), or None.

    Returns:
        Q (B, M, N) = X R⁻¹, R (B, N, N) upper triangular with a positive diagonal,
        ``failed`` (B,) where the Cholesky factorization failed (Q and R are NaN there),
        and the Gram matrix G (B, N, N) before the shift.
    """
    n = x.shape[-1]
    g = gram(x)
    shifted = g if shift is None else g + shift[:, None, None] * _eye(n, x.dtype)
    lower, failed = factor.cholesky(shifted)
    qt = factor.trsm(lower, mx.swapaxes(x, -1, -2))
    return mx.swapaxes(qt, -1, -2), mx.swapaxes(lower, -1, -2), failed, g


def _gram_far(g: mx.array) -> mx.array:
    """(B,) where ‖G − I‖_F > GRAM_TOLERANCE (or G is not finite)."""
    distance = mx.sqrt(mx.sum(mx.square(g - _eye(g.shape[-1], g.dtype)), axis=(-2, -1)))
    return ~(distance <= GRAM_TOLERANCE)


def _triu_product(r2: mx.array, r1: mx.array) -> mx.array:
    return mx.triu(_precision.matmul(r2, r1))


def cholesky_qr2(x: mx.array, factor: Factor = LAPACK) -> tuple[mx.array, mx.array, mx.array]:
    """CholeskyQR2 (Yamamoto et al. 2015): ``(Q, R, failed)``.

    Two rounds: X = Q₁R₁, Q₁ = Q R₂, R = R₂R₁. 4MN² + 2N³/3 flops plus two triangular
    solves with M right-hand sides.

    Args:
        x: (B, M, N), M >= N.
        factor: the Cholesky and triangular solve to use.

    Returns:
        Q (B, M, N) with orthonormal columns, R (B, N, N) upper triangular with a positive
        diagonal, and ``failed`` (B,): matrices for which either Cholesky factorization
        failed or Q₁ was too far from orthonormal (κ(X) beyond about u^(-1/2), rank
        deficiency, NaN/Inf). Their Q and R must not be used.
    """
    q1, r1, failed1, _ = cholesky_qr_round(x, factor)
    q, r2, failed2, g2 = cholesky_qr_round(q1, factor)
    failed = failed1 | failed2 | _gram_far(g2)
    return q, _triu_product(r2, r1), failed


def shift_for(x: mx.array, g: mx.array) -> mx.array:
    """The shifted-CholeskyQR3 shift of each (M, N) matrix of ``x`` given its Gram ``g``.

    s = 11(MN + N(N+1))·u·ν with ν = min(‖G‖_∞, trace G) ≥ ‖X‖₂² (both are cheap upper
    bounds of λ_max(G); Fukaya et al. 2020 use ‖X‖₂², for which ‖X‖_F² = trace G is their
    suggested bound).
    """
    m, n = x.shape[-2:]
    u = unit_roundoff(x.dtype)
    row_sums = mx.max(mx.sum(mx.abs(g), axis=-1), axis=-1)
    trace = mx.sum(mx.diagonal(g, axis1=-2, axis2=-1), axis=-1)
    return SHIFT_CONSTANT * (m * n + n * (n + 1)) * u * mx.minimum(row_sums, trace)


def shifted_cholesky_qr3(
    x: mx.array, factor: Factor = LAPACK
) -> tuple[mx.array, mx.array, mx.array]:
    """Shifted CholeskyQR3 (Fukaya et al. 2020): ``(Q, R, failed)``.

    A shifted round X = Q₁R₁ with R₁ᵀR₁ = XᵀX + sI (:func:`shift_for`), then CholeskyQR2
    on Q₁. 6MN² + N³ flops plus three triangular solves with M right-hand sides. Works for
    κ(X) up to about u⁻¹/√(11(MN + N²)) (see the module docstring for measured ranges);
    ``failed`` as in :func:`cholesky_qr2` (numerically rank-deficient X fails the last
    rounds).
    """
    g = gram(x)
    shift = shift_for(x, g)[:, None, None] * _eye(x.shape[-1], x.dtype)
    lower, failed0 = factor.cholesky(g + shift)
    q1 = mx.swapaxes(factor.trsm(lower, mx.swapaxes(x, -1, -2)), -1, -2)
    r1 = mx.swapaxes(lower, -1, -2)
    q, r23, failed23 = cholesky_qr2(q1, factor)
    return q, _triu_product(r23, r1), failed0 | failed23


def _positive_diagonal(q: mx.array, r: mx.array) -> tuple[mx.array, mx.array]:
    """Householder ``(Q, R)`` with signs flipped so that diag(R) >= 0 (as CholeskyQR's)."""
    d = mx.diagonal(r, axis1=-2, axis2=-1)
    sign = mx.where(d < 0, -1, 1).astype(q.dtype)
    return q * sign[:, None, :], r * sign[:, :, None]


def qr(
    x: mx.array,
    factor: Factor = LAPACK,
    *,
    method: str = "cholqr2",
    fallback: str = "where",
) -> tuple[mx.array, mx.array, mx.array]:
    """Reduced QR of a stack of tall-skinny matrices by CholeskyQR with a Householder
    fallback: ``(Q, R, fell_back)``.

    Args:
        x: (..., M, N) float32 or float64, M >= N.
        factor: the factorizations to use (:data:`LAPACK` on the CPU, :data:`KERNELS` on the
            GPU).
        method: ``"cholqr2"`` (κ(X) ≲ u^(-1/2)) or ``"scholqr3"`` (a wider range, one more
            round; see :func:`shifted_cholesky_qr3`).
        fallback: what the matrices whose CholeskyQR failed get. ``"where"``: Householder
            QR computed for the whole stack and selected per matrix by ``mx.where`` (lazy;
            costs a Householder QR of every matrix). ``"sync"``: one host synchronization
            reads the flags, and Householder QR runs on the failed matrices only (cheap
            when failures are rare); while ``mx.compile`` or ``mx.vmap`` traces the call,
            which forbids host reads, ``"where"`` instead. ``"nan"``: no fallback; failed
            matrices are NaN.

    Returns:
        Q (..., M, N) with orthonormal columns, R (..., N, N) upper triangular with a
        nonnegative diagonal (X = QR), and ``fell_back`` (...) bool: matrices whose
        CholeskyQR failed (NaN with ``fallback="nan"``). A matrix holding NaN or Inf gives
        NaN in its own Q and R only. Empty input (N = 0 or a batch of 0; M = 0 needs
        N = 0) gives zero-size Q, R and flags.

    Notes:
        With ``fallback="where"`` the Householder QR's cost (about 4MN² flops for Q and R,
        in ``factor.householder``) is paid for every matrix; use ``"sync"`` where one
        synchronization is acceptable, or ``method="scholqr3"`` when the input may be
        ill-conditioned but has full rank.

    See Also:
        scipy.linalg.qr (mode="economic")
    """
    if x.ndim < 2:
        raise ValueError(f"[mlx_linalg.tall_skinny_qr] expected a (..., M, N) array, got {x.shape}")
    if x.dtype not in (mx.float32, mx.float64):
        raise TypeError(f"[mlx_linalg.tall_skinny_qr] expected float32 or float64, got {x.dtype}")
    if method not in METHODS:
        raise ValueError(
            f"[mlx_linalg.tall_skinny_qr] method must be one of {METHODS}, got {method!r}"
        )
    if fallback not in FALLBACKS:
        raise ValueError(
            f"[mlx_linalg.tall_skinny_qr] fallback must be one of {FALLBACKS}, got {fallback!r}"
        )
    m, n = x.shape[-2:]
    if m < n:
        raise ValueError(f"[mlx_linalg.tall_skinny_qr] expected M >= N, got {x.shape}")
    batch = x.shape[:-2]
    if x.size == 0:
        return (
            mx.zeros(x.shape, dtype=x.dtype),
            mx.zeros((*batch, n, n), dtype=x.dtype),
            mx.zeros(batch, dtype=mx.bool_),
        )
    clean, exponent, finite = prescale(x.reshape(math.prod(batch), m, n))
    run = cholesky_qr2 if method == "cholqr2" else shifted_cholesky_qr3
    q, r, failed = run(clean, factor)
    failed = failed | ~finite
    if fallback == "sync":
        try:
            mx.eval(failed)
        except ValueError as error:
            # Traced by mx.compile or mx.vmap: no host read, so the lazy selection instead.
            if not is_tracing_error(error):
                raise
            fallback = "where"
        else:
            q, r = _householder_for_failed(clean, q, r, failed, factor)
    if fallback == "where":
        qh, rh = _positive_diagonal(*factor.householder(clean))
        q = mx.where(failed[:, None, None], qh, q)
        r = mx.where(failed[:, None, None], rh, r)
    r = times_power_of_two(r, exponent)
    q = reference.nan_where(~finite if fallback != "nan" else failed, q)
    r = reference.nan_where(~finite if fallback != "nan" else failed, r)
    return q.reshape(*batch, m, n), r.reshape(*batch, n, n), failed.reshape(batch)


def _householder_for_failed(
    clean: mx.array, q: mx.array, r: mx.array, failed: mx.array, factor: Factor
) -> tuple[mx.array, mx.array]:
    """``(Q, R)`` with the matrices flagged in ``failed`` (evaluated) replaced by their
    Householder QR, computed for those matrices only."""
    bad = [i for i, f in enumerate(failed.tolist()) if f]
    if bad:
        index = mx.array(bad)
        qh, rh = _positive_diagonal(*factor.householder(clean[index]))
        q[index] = qh
        r[index] = rh
    return q, r
