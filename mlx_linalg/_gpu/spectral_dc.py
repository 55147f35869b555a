"""QDWH-eig and QDWH-SVD: symmetric eigendecomposition and SVD by spectral divide and
conquer.

Nakatsukasa & Higham, *Stable and efficient spectral divide and conquer algorithms for the
symmetric eigenvalue decomposition and the SVD*, SIAM J. Sci. Comput. 35 (2013), Alg. 1.

One **split** (:func:`split`, a lazy MLX graph): with a shift σ inside the spectrum of the
symmetric A, the polar factor U of A − σI is V sign(Λ − σ) Vᵀ, so P = (U + I)/2 is the
orthogonal projector onto the invariant subspace of the eigenvalues above σ and
k = trace(P) their number. Subspace iteration on P from a random start (two steps, each a
Householder QR) gives an orthogonal Q whose first k columns span that subspace, and
QᵀAQ = [A₊ E; Eᵀ A₋] with ‖E‖ = O(u‖A‖), the backward error of the split.

The **recursion** (:func:`eigh`) splits until the blocks are small and hands them to a
pluggable base solver (``mlx_linalg.eigh`` on the CPU; the batched Jacobi kernel of
``mlx_linalg._gpu.small_spectral`` on the GPU later). The block sizes k are data-dependent,
and MLX has no device-side control flow, so the driver reads k and the split's backward
error on the host once per split: it is **not** a synchronization-free graph (each split
is). A batch is handled one matrix at a time.
"""

import math
from collections.abc import Callable

import mlx.core as mx

from mlx_linalg import _precision
from mlx_linalg._gpu import polar, small_spectral, tall_skinny
from mlx_linalg._gpu.tall_skinny import LAPACK, Factor, unit_roundoff

# Largest accepted backward error ‖E‖_F of a split, in units of n·u·‖A‖_F (the eigh
# threshold of DESIGN.md is 60 in the same units for the whole decomposition).
SPLIT_TOLERANCE = 4.0
# Shifts tried per split before the block goes to the base solver as a whole.
MAX_ATTEMPTS = 3
# Blocks of this order or less go to the base solver (the Jacobi kernel takes n <= 64).
BASE_SIZE = 64


def _sym(x: mx.array) -> mx.array:
    return (x + mx.swapaxes(x, -1, -2)) * 0.5


def _frobenius(x: mx.array) -> mx.array:
    """‖x‖_F over the last two axes, scaled by the largest entry so that squaring can
    neither overflow nor underflow."""
    largest = mx.max(mx.abs(x), axis=(-2, -1), keepdims=True)
    safe = mx.where(largest > 0, largest, 1)
    return mx.sqrt(mx.sum(mx.square(x / safe), axis=(-2, -1))) * safe[..., 0, 0]


def split(
    a: mx.array,
    sigma: mx.array,
    factor: Factor = LAPACK,
    *,
    key: mx.array | None = None,
) -> tuple[mx.array, mx.array, mx.array, mx.array, mx.array]:
    """One spectral split of a stack of symmetric matrices at the shifts ``sigma``.

    Args:
        a: (B, n, n) symmetric float32 or float64 (symmetrized as (A + Aᵀ)/2).
        sigma: (B,) shifts.
        factor: the Cholesky, triangular solve and Householder QR for the polar
            decomposition and the subspace iteration.
        key: random key of the subspace iteration's start (default: a fixed key).

    Returns:
        ``(Q, C, k, error, info)``: Q (B, n, n) orthogonal with its first k columns spanning
        the invariant subspace of the eigenvalues above σ; C = QᵀAQ symmetrized (B, n, n);
        k (B,) int32; ``error`` (B,) = ‖C[k:, :k]‖_F/‖A‖_F, the backward error of splitting
        C into its two diagonal blocks; ``info`` (B,) the QDWH info of A − σI (negative if
        A − σI is numerically singular, i.e. σ is an eigenvalue to working precision; then
        the split is not to be trusted, and ``error`` says so).

    Notes:
        Cost: one QDWH polar decomposition of A − σI (about 35n³ flops in float32), two
        Householder QRs and three products (about 2·(4/3)n³ + 6n³). Lazy: no host
        synchronization.
    """
    batch, n, _ = a.shape
    a = _sym(a)
    eye = mx.eye(n, dtype=a.dtype)
    u, _, info = polar.qdwh(a - sigma[:, None, None] * eye, factor)
    projector = (_sym(u) + eye) * 0.5
    k = mx.clip(mx.round(mx.sum(mx.diagonal(projector, axis1=-2, axis2=-1), axis=-1)), 0, n)
    k = k.astype(mx.int32)
    if key is None:
        key = mx.random.key(0)
    start = mx.random.normal((batch, n, n), dtype=a.dtype, key=key)
    q, _ = factor.householder(_precision.matmul(projector, start))
    q, _ = factor.householder(_precision.matmul(projector, q))
    c = _sym(_precision.matmul(mx.swapaxes(q, -1, -2), _precision.matmul(a, q)))
    rows = mx.arange(n)[None, :, None]
    cols = mx.arange(n)[None, None, :]
    coupling = mx.where((rows >= k[:, None, None]) & (cols < k[:, None, None]), c, 0)
    scale = _frobenius(a)
    error = _frobenius(coupling) / mx.where(scale > 0, scale, 1)
    return q, c, k, error, info


def lapack_eigh(a: mx.array) -> tuple[mx.array, mx.array]:
    """The default base solver: MLX's CPU eigh (LAPACK) of a symmetric (n, n) block,
    eigenvalues ascending."""
    w, v = mx.linalg.eigh(a, stream=mx.cpu)
    return w, v


def kernel_eigh(a: mx.array) -> tuple[mx.array, mx.array]:
    """The GPU base solver: the batched Jacobi kernel (``small_spectral.eigh``) for float32
    blocks of order <= 64, :func:`lapack_eigh` for anything else (a block no shift split).
    """
    if small_spectral.eigh_applies(a[None]):
        (w, v), _ = small_spectral.eigh(a[None])
        return w[0], v[0]
    return lapack_eigh(a)


def _shift(a: mx.array, attempt: int) -> mx.array:
    """The shift of the given attempt for a symmetric (n, n) block: the median of the
    diagonal (NH2013's estimate of the median eigenvalue), then the mean of the diagonal,
    then the median moved by 1/(2n) of the Gershgorin spread (away from an eigenvalue
    that the first shifts may have hit)."""
    d = mx.diagonal(a)
    if attempt == 0:
        return mx.sort(d)[(d.shape[0] - 1) // 2]
    if attempt == 1:
        return mx.mean(d)
    radius = mx.sum(mx.abs(a), axis=-1) - mx.abs(d)
    spread = mx.max(d + radius) - mx.min(d - radius)
    return mx.sort(d)[(d.shape[0] - 1) // 2] + spread / (2 * d.shape[0])


def _solve(
    a: mx.array,
    factor: Factor,
    base: Callable,
    base_size: int,
    depth: int,
    stats: dict,
    top_norm: mx.array,
) -> tuple[mx.array, mx.array]:
    n = a.shape[-1]
    if n <= base_size:
        stats["base"] += 1
        return base(a)
    u = unit_roundoff(a.dtype)
    d = mx.diagonal(a)
    norm = _frobenius(a)
    # A nearly diagonal block (a cluster, or what is left of one after splits) or one that
    # is rounding noise next to the whole matrix: its diagonal holds its eigenvalues to
    # within n·u‖A‖ (NH2013 §5.2; JAX's QDWH-eig stops there too).
    off = _frobenius(a - mx.diag(d))
    if ((off <= n * u * norm) | (norm <= u * top_norm)).item():
        stats["diagonal"] += 1
        return d, mx.eye(n, dtype=a.dtype)
    for attempt in range(MAX_ATTEMPTS):
        sigma = _shift(a, attempt)
        q, c, k, error, _ = split(
            a[None], sigma[None], factor, key=mx.random.key(depth * MAX_ATTEMPTS + attempt)
        )
        mx.eval(q, c, k, error)
        kk, err = int(k.item()), float(error.item())
        stats["splits"] += 1
        if 0 < kk < n and err <= SPLIT_TOLERANCE * n * u:
            stats["max_error"] = max(stats["max_error"], err)
            stats["depth"] = max(stats["depth"], depth + 1)
            q, c = q[0], c[0]
            w_low, v_low = _solve(c[kk:, kk:], factor, base, base_size, depth + 1, stats, top_norm)
            w_high, v_high = _solve(
                c[:kk, :kk], factor, base, base_size, depth + 1, stats, top_norm
            )
            w = mx.concatenate([w_low, w_high])
            v = mx.concatenate(
                [_precision.matmul(q[:, kk:], v_low), _precision.matmul(q[:, :kk], v_high)], axis=1
            )
            return w, v
    stats["unsplit"] += 1
    return base(a)


def eigh(
    x: mx.array,
    factor: Factor = LAPACK,
    *,
    base: Callable[[mx.array], tuple[mx.array, mx.array]] = lapack_eigh,
    base_size: int = BASE_SIZE,
    stats: dict | None = None,
) -> tuple[mx.array, mx.array]:
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices by QDWH-eig.

    Args:
        x: (..., n, n) float32 or float64; symmetrized as (A + Aᵀ)/2.
        factor: factorizations for the splits (tall_skinny.LAPACK, REFERENCE, KERNELS).
        base: ``base(a) -> (w, V)`` for a symmetric (m, m) block, m <= ``base_size``
            (eigenvalues ascending), and for a block that could not be split (any m):
            :func:`lapack_eigh` (default) or, on the GPU, :func:`kernel_eigh`.
        base_size: blocks of this order or less go to ``base``.
        stats: if given, filled with counts: ``splits`` (split attempts), ``base`` (base
            solves), ``diagonal`` (nearly diagonal or negligible blocks), ``unsplit``
            (blocks no shift split), ``depth`` and ``max_error`` (largest accepted split
            error).

    Returns:
        ``(w, V)``: w (..., n) ascending, V (..., n, n) orthogonal, A ≈ V diag(w) Vᵀ. A matrix
        holding NaN or Inf gives NaN w and V (the others are unaffected).

    Notes:
        Each split is :func:`split` at σ = the median of the block's diagonal; it is
        accepted when both parts are nonempty and its backward error is at most
        ``SPLIT_TOLERANCE``·n·u‖A‖_F. Otherwise the mean of the diagonal and then a
        shifted median are tried (``MAX_ATTEMPTS`` shifts in all); a block that none
        splits (a tight cluster bigger than ``base_size``) goes to ``base`` whole, and a
        nearly diagonal block (off-diagonal part <= n·u‖A‖_F, e.g. a cluster) or a block that
        is rounding noise (‖block‖_F <= u‖A‖_F of the whole matrix) is taken as diagonal.
        The recursion depth is at most n/base_size (a split leaves both parts nonempty)
        and about log₂(n/base_size) when the diagonal's median is near the spectrum's.

        Host synchronization: one read of k and of the split error per split attempt (the
        block sizes of the recursion are data-dependent and MLX has no device-side
        control flow). Everything inside a split is lazy.

    See Also:
        scipy.linalg.eigh
    """
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"[mlx_linalg.eigh] expected a (..., n, n) array, got {x.shape}")
    if x.dtype not in (mx.float32, mx.float64):
        raise TypeError(f"[mlx_linalg.eigh] expected float32 or float64, got {x.dtype}")
    batch, n = x.shape[:-2], x.shape[-1]
    flat = x.reshape(math.prod(batch), n, n)
    counts = {"splits": 0, "base": 0, "diagonal": 0, "unsplit": 0, "depth": 0, "max_error": 0.0}
    ws, vs = [], []
    for i in range(flat.shape[0]):
        a = _sym(flat[i])
        if not mx.all(mx.isfinite(a)).item():
            ws.append(mx.full((n,), float("nan"), dtype=x.dtype))
            vs.append(mx.full((n, n), float("nan"), dtype=x.dtype))
            continue
        w, v = _solve(a, factor, base, base_size, 0, counts, _frobenius(a))
        # The blocks are ordered (below σ, above σ); eigenvalues within the split error of
        # σ may be out of order by that much: sort.
        order = mx.argsort(w)
        ws.append(w[order])
        vs.append(v[:, order])
    if stats is not None:
        stats.update(counts)
    if not ws:
        return mx.zeros((*batch, n), dtype=x.dtype), mx.zeros((*batch, n, n), dtype=x.dtype)
    return mx.stack(ws).reshape(*batch, n), mx.stack(vs).reshape(*batch, n, n)


def svd(
    x: mx.array,
    factor: Factor = LAPACK,
    *,
    base: Callable[[mx.array], tuple[mx.array, mx.array]] = lapack_eigh,
    base_size: int = BASE_SIZE,
) -> tuple[mx.array, mx.array, mx.array]:
    """Reduced SVD by QDWH-SVD: a polar decomposition, then QDWH-eig of its H factor.

    Args:
        x: (..., M, N) float32 or float64.
        factor: factorizations for QDWH and the splits.
        base: the base eigensolver of :func:`eigh`.
        base_size: blocks of this order or less go to ``base``.

    Returns:
        ``(U, S, Vh)``: U (..., M, K), S (..., K) descending and nonnegative, Vh (..., K, N),
        K = min(M, N), A ≈ U diag(S) Vh. A matrix holding NaN or Inf gives NaN outputs.

    Notes:
        Nakatsukasa & Higham 2013, §5: A = U_p H (QDWH, on Aᵀ when M < N), H = V Σ Vᵀ
        (QDWH-eig; H is positive semidefinite, so its eigenvalues are the singular values,
        a rounding-level negative one taken by absolute value with its vector's sign moved
        to U), U = U_p V. U is then orthonormalized by CholeskyQR2, whose R is I + O(u) for
        full-rank A; when A is numerically rank deficient, U_p is not orthonormal in the
        null directions (see :func:`mlx_linalg._gpu.polar.qdwh`), CholeskyQR2 flags it and
        Householder QR completes those columns (``fallback="sync"``: the driver
        synchronizes anyway). Cost: QDWH (about 35N³ + M-dependent terms), QDWH-eig of
        the N x N H, and the products U_p V (2MN²) and CholeskyQR2 (4MN²).

    See Also:
        scipy.linalg.svd (full_matrices=False)
    """
    if x.ndim < 2:
        raise ValueError(f"[mlx_linalg.svd] expected a (..., M, N) array, got {x.shape}")
    if x.dtype not in (mx.float32, mx.float64):
        raise TypeError(f"[mlx_linalg.svd] expected float32 or float64, got {x.dtype}")
    m, n = x.shape[-2:]
    batch = x.shape[:-2]
    wide = m < n
    a = mx.swapaxes(x, -1, -2) if wide else x
    tall, short = a.shape[-2:]
    if x.size == 0:
        k = min(m, n)
        return (
            mx.zeros((*batch, m, k), dtype=x.dtype),
            mx.zeros((*batch, k), dtype=x.dtype),
            mx.zeros((*batch, k, n), dtype=x.dtype),
        )
    a = a.reshape(math.prod(batch), tall, short)
    u_polar, h, _ = polar.qdwh(a, factor)
    w, v = eigh(h, factor, base=base, base_size=base_size)
    # Descending singular values; a negative rounding-level eigenvalue's sign goes to U.
    order = mx.argsort(-mx.abs(w), axis=-1)
    w = mx.take_along_axis(w, order, axis=-1)
    v = mx.take_along_axis(v, order[:, None, :], axis=-1)
    sign = mx.where(w < 0, -1, 1).astype(x.dtype)
    s = mx.abs(w)
    u = _precision.matmul(u_polar, v) * sign[:, None, :]
    u, _, _ = tall_skinny.qr(u, factor, method="cholqr2", fallback="sync")
    vh = mx.swapaxes(v, -1, -2)
    if wide:
        # The factorization was of Aᵀ = U S Vᵀ, so A = V S Uᵀ.
        u, vh = mx.swapaxes(vh, -1, -2), mx.swapaxes(u, -1, -2)
    k = short
    return u.reshape(*batch, m, k), s.reshape(*batch, k), vh.reshape(*batch, k, n)
