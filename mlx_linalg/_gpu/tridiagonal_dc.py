"""Eigenvalues and eigenvectors of symmetric tridiagonal matrices by divide and conquer
(Cuppen, Numer. Math. 36, 1981; Gu & Eisenstat, SIAM J. Matrix Anal. Appl. 16, 1995;
LAPACK's sstedc / slaed0-slaed4), as MLX ops: every step of a level is one batched array
operation over all the merges of that level, the eigenvector updates are matrix products,
nothing synchronizes with the host.

T is cut into 2^L leaves of at most :data:`LEAF` rows, all of one size (:func:`leaves`:
T padded to their total with fewer than 2^L decoupled diagonal entries above T's spectrum,
dropped at the end), each boundary's coupling β taken out of the diagonal
(T = diag(T₁, T₂) + |β| w wᵀ, w = e_last + sign(β) e_first), the leaves solved by
``leaf_eigh`` (dense (…, leaf, leaf) eigh), then merged pairwise, level by level. A
merge of Q₁ D₁ Q₁ᵀ and Q₂ D₂ Q₂ᵀ is the eigendecomposition of D + ρ z zᵀ (z from Q₁'s last
and Q₂'s first row, ‖z‖ = 1), in LAPACK's steps:

1. sort D, permuting z and Q's columns;
2. deflate, with ``tol`` = 8 u max(‖D‖∞, ρ‖z‖∞): every entry with ρ|zᵢ| ≤ tol is set to
   zero, then the poles in one bucket of width tol (a run) are rotated by one Householder
   reflector per run, applied to Q's columns, so that only the run's last entry of z is
   nonzero; an entry with zᵢ = 0 keeps dᵢ and its column of Q. (slaed2 rotates close
   pairs by Givens rotations in a sequential pass; a bucket's reflector does it at once,
   perturbing D by less than tol, its spread. Close poles in neighbouring buckets stay
   poles, as slaed2 keeps pairs it cannot rotate.) The reflector is formed from z scaled
   by the run's largest entry: squares of tiny entries would underflow and lose Q's
   orthogonality.
3. the secular equation 1 + ρ Σ zᵢ²/(dᵢ − λ) = 0 over the remaining poles: root j lies
   between pole j and the next remaining pole (the last below the top pole + ρ‖z‖²),
   where the secular function increases; it is found as an offset τ from the nearer
   pole, so that every dᵢ − λⱼ = (dᵢ − d_origin) − τ keeps its relative accuracy
   (slaed4's representation): in float32 on a GPU one thread per root by slaed4's
   rational ("middle way") iteration safeguarded by bisection (the ``secular_roots``
   kernel, ``metal/secular_roots.metal``: 3-4 passes over the poles per root on
   average), else by bisection in MLX ops over all roots at once (:func:`_secular_steps`
   halvings);
4. Gu and Eisenstat's ẑ (ẑᵢ² = (dᵢ − λᵢ) Πⱼ≠ᵢ (dᵢ − λⱼ)/(dᵢ − dⱼ) / ρ, a product of ratios
   near one by interlacing), so that the vectors ẑᵢ/(dᵢ − λⱼ), normalized, are orthogonal
   to working precision whatever the clustering (slaed3);
5. Q ← Q U, a float32-accurate product (``_precision.matmul``; under TF32 summed from split
   products of at most 256 inner terms: on an H200 whole products at the top merges (inner
   dimension n) left Z 7.0 n·u from orthogonal (‖I − ZᵀZ‖_F) at n = 4096 and 9.7 at 8192,
   the chunked ones 1.6 and 1.4, in the same time; docs/kernels-spectral-blocks.md).

Cost: about n³ flops of products at the top level (4/3 n³ over all levels), plus
O(n²) elementwise work per pass of the secular roots' iteration (or halving), per level.
"""

import math
from collections.abc import Callable

import mlx.core as mx
import numpy as np

from mlx_linalg import _kernels, _precision

# The most rows per leaf: the batched small eigh kernels' sizes (``small_spectral``) on a
# GPU.
LEAF = 32
# Threads per threadgroup of the ``secular_roots`` kernel (one root each).
ROOT_THREADS = 128


def _secular_steps(dtype: mx.Dtype) -> int:
    """Halvings of each secular root's bracket: a kept pole's root lies at least about
    (8u)² times the gap from it (ρ|zᵢ| > tol), so 2 log₂(1/u) halvings reach its offset τ
    and log₂(1/u) more resolve τ to working precision: 80 for float32, 160 for float64
    (fewer left the residual of float64 merges at 30-50 n u ‖T‖)."""
    return 80 if dtype == mx.float32 else 160


def _default_leaf_eigh(x: mx.array) -> tuple[mx.array, mx.array]:
    from mlx_linalg import eigh  # the public eigh: small float32 stacks take the GPU kernels

    w, v = eigh(x)
    return w, v


def _sorted(values: mx.array, vectors: mx.array, *others: mx.array):
    """``values`` (M, k) ascending, ``vectors``' columns and each of ``others`` (M, k) in
    the same order."""
    order = mx.argsort(values, axis=-1)
    moved = [mx.take_along_axis(x, order, axis=-1) for x in (values, *others)]
    columns = mx.broadcast_to(order[:, None, :], vectors.shape)
    return moved[0], mx.take_along_axis(vectors, columns, axis=-1), *moved[1:]


def leaves(n: int) -> tuple[int, int]:
    """``(leaf, count)``: the fewest leaves, a power of two, of at most :data:`LEAF` rows
    each that hold n rows, and the rows per leaf, all leaves one size. So T is padded by
    fewer than ``count`` rows (n = 1100: 64 leaves of 18, 1152 rows), where leaves of
    :data:`LEAF` rows would pad it up to the next power of two times LEAF (2048): a
    third of the top merge's (k, k) arrays and a sixth of its product's flops."""
    count = 2 ** max(0, math.ceil(math.log2(n / LEAF)))
    return -(-n // count), count


def _leaves(d: mx.array, e: mx.array, leaf: int, leaf_eigh) -> tuple[mx.array, mx.array]:
    """Eigenvalues (B N/L, L) and vectors (B N/L, L, L) of the leaves' tridiagonal blocks
    (L = ``leaf`` rows), e's entries at leaf boundaries left out (``d`` already carries
    their corrections)."""
    batch, size = d.shape
    blocks = size // leaf
    inner = e.reshape(batch, blocks, leaf)[:, :, : leaf - 1].reshape(batch * blocks, leaf - 1)
    diagonal = d.reshape(batch * blocks, leaf)
    eye = mx.eye(leaf, dtype=d.dtype)
    below = mx.eye(leaf, k=-1, dtype=d.dtype)
    off = mx.pad(inner, [(0, 0), (0, 1)])[:, None, :] * below  # T[i+1, i] = inner[i]
    dense = diagonal[:, None, :] * eye + off + mx.swapaxes(off, -1, -2)
    return leaf_eigh(dense)


def _per_run(x: mx.array, run: mx.array, reduce: str) -> mx.array:
    """The sum (``reduce`` "add") or maximum ("maximum") of ``x`` (M, ..., k) over the
    entries of each run (``run`` (M, k): the run of each entry, 0 .. k − 1), back at every
    entry of the run: (M, ..., k). A scatter over the runs: O(size of x)."""
    lead = [mx.arange(s).reshape(-1, *([1] * (x.ndim - 1 - i))) for i, s in enumerate(x.shape[:-1])]
    index = run.reshape(run.shape[0], *([1] * (x.ndim - 2)), run.shape[-1])
    at = mx.zeros(x.shape, x.dtype).at[(*lead, index)]
    per_run = at.add(x) if reduce == "add" else at.maximum(x)
    return mx.take_along_axis(per_run, mx.broadcast_to(index, x.shape), axis=-1)


def _deflate(dv: mx.array, z: mx.array, q: mx.array, rho: mx.array):
    """Step 2: z with the deflated entries exactly 0, and Q with each run's reflector
    applied. ``dv`` (M, k) ascending, ``z`` (M, k), ``q`` (M, r, k), ``rho`` (M, 1)."""
    eps = float(mx.finfo(dv.dtype).eps)
    largest = mx.maximum(
        mx.max(mx.abs(dv), -1, keepdims=True), rho * mx.max(mx.abs(z), -1, keepdims=True)
    )
    tol = 8 * eps * largest
    z = mx.where(rho * mx.abs(z) <= tol, 0, z)  # slaed2's first test
    ones = mx.ones((dv.shape[0], 1), mx.bool_)
    # Runs: poles in one bucket of width tol (so a run's spread, the perturbation its
    # reflector makes, is below tol; close poles in neighbouring buckets stay poles).
    bucket = mx.floor((dv - dv[:, :1]) / mx.where(tol > 0, tol, 1))
    breaks = mx.concatenate([ones, bucket[:, 1:] != bucket[:, :-1]], -1)  # a run starts
    last = mx.concatenate([breaks[:, 1:], ones], -1)  # a run ends
    run = mx.cumsum(breaks.astype(mx.int32), axis=-1) - 1
    # Per run, H = I − 2uuᵀ maps z_run to α e_last, α = −sign(z_last) ‖z_run‖, formed from
    # z scaled by the run's largest entry (squares of z far below 1 would underflow).
    scale = _per_run(mx.abs(z), run, "maximum")
    zs = z / mx.where(scale > 0, scale, 1)
    run_norm = mx.sqrt(_per_run(zs * zs, run, "add"))
    z_last = _per_run(mx.where(last, zs, 0), run, "add")
    alpha = mx.where(z_last >= 0, -run_norm, run_norm)
    u = zs - mx.where(last, alpha, 0)
    u_norm = mx.sqrt(_per_run(u * u, run, "add"))
    single = mx.logical_and(breaks, last)
    reflect = mx.logical_and(mx.logical_not(single), u_norm > 0)
    u = mx.where(reflect, u / mx.where(reflect, u_norm, 1), 0)
    q = q - 2 * _per_run(q * u[:, None, :], run, "add") * u[:, None, :]  # Q_run ← Q_run H
    return mx.where(reflect, mx.where(last, alpha * scale, 0), z), q


def _secular_roots(dv: mx.array, z: mx.array, rho: mx.array, keep: mx.array):
    """Step 3: for each kept pole j (``keep``: z ≠ 0), the root of 1 + ρ Σᵢ zᵢ²/(dᵢ − λ)
    above it, as (origin, τ): λⱼ = d_origin + τ with the origin the nearer end of its
    bracket, and Δ (M, k, k): Δ[j, i] = dᵢ − λⱼ = (dᵢ − d_origin) − τⱼ. Entries of poles
    not kept are meaningless there. float32 on a GPU: the ``secular_roots`` kernel; else
    :func:`_roots_reference`."""
    if dv.dtype == mx.float32 and _precision._gpu_default():
        origin, tau = _kernels.launch(
            "secular_roots", [dv, z, rho.reshape(-1)], **secular_roots_launch(dv.shape)
        )
    else:
        origin, tau = _roots_reference(dv, z, rho, keep)
    return origin, tau, (dv[:, None, :] - origin[:, :, None]) - tau[:, :, None]


def secular_roots_launch(shape: tuple[int, int]) -> dict:
    """The ``secular_roots`` kernel's launch arguments for (M, k) poles; shared with the CPU
    emulation in tests."""
    roots = shape[0] * shape[1]
    return {
        "template": {},
        "grid": (-(-roots // ROOT_THREADS) * ROOT_THREADS, 1, 1),
        "threadgroup": (ROOT_THREADS, 1, 1),
        "output_shapes": [shape, shape],
    }


def _roots_reference(dv: mx.array, z: mx.array, rho: mx.array, keep: mx.array):
    """The ``secular_roots`` kernel's (origin, τ) by MLX ops, every root's bisection at
    once: each halving evaluates the secular function of every root at every pole, a
    (M, k, k) pass."""
    k = dv.shape[-1]
    idx = mx.broadcast_to(mx.arange(k), dv.shape)
    # The next kept pole above each pole (k when none): a reversed cumulative minimum.
    candidate = mx.where(keep, idx, k)
    after = mx.concatenate([candidate[:, 1:], mx.full((dv.shape[0], 1), k, mx.int32)], -1)
    upper_index = mx.flip(mx.cummin(mx.flip(after, -1), axis=-1), -1)
    z2 = z * z
    top = dv[:, -1:] + rho * mx.sum(z2, -1, keepdims=True)  # above every root
    upper = mx.where(
        upper_index < k, mx.take_along_axis(dv, mx.minimum(upper_index, k - 1), -1), top
    )
    has_upper = upper_index < k
    weight = rho[:, :, None] * z2[:, None, :]  # (M, 1, k)

    def secular(delta: mx.array) -> mx.array:  # f at the λⱼ with dᵢ − λⱼ = delta[j, i]
        terms = mx.where(weight == 0, 0, weight / mx.where(weight == 0, 1, delta))
        return 1 + mx.sum(terms, -1)

    # The origin: the lower pole when f > 0 at the bracket's middle (the root below it).
    middle = 0.5 * (dv + upper)
    f_mid = secular(dv[:, None, :] - middle[:, :, None])
    from_lower = mx.logical_or(f_mid > 0, mx.logical_not(has_upper))
    origin = mx.where(from_lower, dv, upper)
    shifted = dv[:, None, :] - origin[:, :, None]  # (M, k, k): dᵢ − d_origin(j), exact near 0
    half = 0.5 * (upper - dv)
    lo = mx.where(from_lower, 0, -half)
    hi = mx.where(from_lower, mx.where(has_upper, half, upper - dv), 0)
    for _ in range(_secular_steps(dv.dtype)):
        tau = 0.5 * (lo + hi)
        f = secular(shifted - tau[:, :, None])
        lo, hi = mx.where(f < 0, tau, lo), mx.where(f < 0, hi, tau)
    return mx.where(keep, origin, dv), mx.where(keep, 0.5 * (lo + hi), 0)


def _merge(w: mx.array, q: mx.array, beta: mx.array):
    """One level: the eigendecompositions of pairs of blocks, (M, 2s) and (M, 2s, 2s),
    from the blocks' (2M, s) and (2M, s, s) and the couplings ``beta`` (M,)."""
    pairs, s = w.shape[0] // 2, w.shape[-1]
    q = q.reshape(pairs, 2, s, s)
    q1, q2 = q[:, 0], q[:, 1]
    sign = mx.where(beta >= 0, 1, -1).astype(w.dtype)[:, None]
    z = mx.concatenate([q1[:, -1, :], sign * q2[:, 0, :]], -1) / math.sqrt(2)
    rho = 2 * mx.abs(beta)[:, None]
    zeros = mx.zeros((pairs, s, s), q.dtype)
    qb = mx.concatenate([mx.concatenate([q1, zeros], -1), mx.concatenate([zeros, q2], -1)], axis=-2)
    dv, qb, z = _sorted(w.reshape(pairs, 2 * s), qb, z)
    z, qb = _deflate(dv, z, qb, rho)
    keep = z != 0
    origin, tau, delta = _secular_roots(dv, z, rho, keep)
    lam = mx.where(keep, origin + tau, dv)
    # Gu–Eisenstat: ẑᵢ² = (dᵢ − λᵢ) Πⱼ≠ᵢ (dᵢ − λⱼ)/(dᵢ − dⱼ) / ρ over the kept i, j.
    k = dv.shape[-1]
    eye = mx.eye(k, dtype=mx.bool_)
    both = mx.logical_and(keep[:, :, None], keep[:, None, :])  # (M, j, i)
    gaps = dv[:, None, :] - dv[:, :, None]  # [j, i] = dᵢ − dⱼ
    ratios = mx.where(mx.logical_and(both, mx.logical_not(eye)), delta / mx.where(eye, 1, gaps), 1)
    own = mx.sum(mx.where(eye, delta, 0), axis=1)  # dᵢ − λᵢ
    zhat2 = -own * mx.prod(ratios, axis=1) / mx.where(rho > 0, rho, 1)
    zhat = mx.where(z >= 0, 1, -1).astype(z.dtype) * mx.sqrt(mx.maximum(zhat2, 0))
    # U[:, j] = ẑ/(d − λⱼ) normalized for kept j (zero rows for entries not kept), e_j else.
    vec = mx.where(both, zhat[:, None, :] / mx.where(both, delta, 1), 0)  # [j, i]
    vec = vec / mx.where(keep[:, :, None], mx.linalg.norm(vec, axis=-1, keepdims=True), 1)
    u = mx.where(keep[:, :, None], vec, eye.astype(vec.dtype))
    q_new = _precision.matmul(qb, mx.swapaxes(u, -1, -2))
    w_new, q_new = _sorted(lam, q_new)
    return w_new, q_new


def eigh_tridiagonal(
    d: mx.array,
    e: mx.array,
    *,
    leaf_eigh: Callable[[mx.array], tuple[mx.array, mx.array]] | None = None,
) -> tuple[mx.array, mx.array]:
    """Eigenvalues (ascending) and eigenvectors of symmetric tridiagonal matrices.

    Args:
        d: (..., n) float32 or float64, the diagonals.
        e: (..., n - 1), the subdiagonals.
        leaf_eigh: eigh of a (M, leaf, leaf) stack (leaf <= LEAF), ``(w, v)``; default the public
            ``mlx_linalg.eigh`` (the batched Jacobi kernels on a GPU).

    Returns:
        ``(w, z)``: (..., n) ascending and (..., n, n) with T z = z diag(w), z orthogonal.
        A matrix with a NaN or Inf entry gets NaN everywhere; the others are unaffected.
    """
    if d.dtype not in (mx.float32, mx.float64) or e.dtype != d.dtype:
        raise ValueError(
            f"[eigh_tridiagonal] expected float32 or float64 d and e of one dtype, got "
            f"{d.dtype} and {e.dtype}"
        )
    n = d.shape[-1] if d.ndim else 0
    if d.ndim < 1 or n < 1 or e.shape != (*d.shape[:-1], n - 1):
        raise ValueError(
            f"[eigh_tridiagonal] expected d (..., n) with n >= 1 and e (..., n - 1), got "
            f"shapes {d.shape} and {e.shape}"
        )
    leaf_eigh = _default_leaf_eigh if leaf_eigh is None else leaf_eigh
    batch_shape = d.shape[:-1]
    dd = d.reshape(-1, n)
    count = dd.shape[0]
    ee = e.reshape(count, n - 1)
    # Scale by the largest entry (Gershgorin: the spectrum then lies in [−3, 3]).
    scale = mx.maximum(
        mx.max(mx.abs(dd), -1, keepdims=True), mx.max(mx.abs(ee), -1, keepdims=True) if n > 1 else 0
    )
    scale = mx.where(scale == 0, 1, scale)
    dd, ee = dd / scale, ee / scale
    leaf, leaf_count = leaves(n)
    size = leaf * leaf_count
    pad = size - n
    # Padding: decoupled diagonal entries just above the scaled spectrum (in [−3, 3]), so
    # that they sort last and barely raise the deflation tolerance (8 u max|D|).
    # e is zero next to them (decoupled), and (count, size) with e[size − 1] unused.
    dd = mx.pad(dd, [(0, 0), (0, pad)], constant_values=3.5)
    ee = mx.pad(ee, [(0, 0), (0, pad + 1)])
    # Take each leaf boundary's coupling out of the diagonal: T = diag(T₁, T₂) + |β| w wᵀ.
    # A host constant: the order as a scalar in an elementwise op would give every order a
    # fused kernel of its own under mx.compile.
    positions = np.arange(size)
    boundary = mx.array((positions % leaf == leaf - 1) & (positions < size - 1))
    beta = mx.where(boundary, ee, 0)
    dd = dd - mx.abs(beta) - mx.pad(mx.abs(beta)[:, :-1], [(0, 0), (1, 0)])
    w, q = _leaves(dd, ee, leaf, leaf_eigh)
    s = leaf
    while s < size:
        positions = mx.arange(s - 1, size - 1, 2 * s)  # the couplings this level merges
        couplings = beta[:, positions].reshape(-1)
        w, q = _merge(w, q, couplings)
        s *= 2
    w = w.reshape(count, size)[:, :n] * scale
    q = q.reshape(count, size, size)[:, :n, :n]
    return w.reshape(*batch_shape, n), q.reshape(*batch_shape, n, n)
