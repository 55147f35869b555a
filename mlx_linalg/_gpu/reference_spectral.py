"""Reference implementations, in MLX ops, of the small-matrix QR and Jacobi kernels.

Each function computes what the kernel of the same name in ``metal/`` computes, with the
same contract (inputs, output layouts, conventions, the same algorithm and ordering), as
a batched MLX graph that runs on any device. They are the executable specification the
GPU tests compare the kernels with; rounding differs (sums are taken in another order), so
results agree to rounding, not bitwise, and Jacobi sweep counts may differ by one.

Kernels and references take matrices already scaled so that the largest entry of each lies
in [1, 2) and already finite (``mlx_linalg._gpu.small_spectral`` does both).
"""

import math

import mlx.core as mx

from mlx_linalg._gpu.reference import nan_where
from mlx_linalg._gpu.scaling import prescale, prescale_lower, times_power_of_two
from mlx_linalg._gpu.small_spectral import simd_columns

EPS32 = 1.1920929e-07
TINY2 = 7.8886091e-31  # squared column norm below which a Jacobi column counts as zero
TINY = 8.8817842e-16  # 2^-50: singular values below this get a completed U column


def qr_small(a: mx.array, *, complete: bool) -> tuple[mx.array, mx.array]:
    """Householder QR (LAPACK geqrf/orgqr conventions), as ``metal/qr_small.metal``.

    Args:
        a: (B, M, N) float32.
        complete: Q (M x M) and R (M x N) if True, else Q (M x K), R (K x N), K = min(M, N).

    Returns:
        ``(Qt, R)``: Qt (B, QC, M) with row c = column c of Q; R (B, RR, N) upper
        triangular with exact zeros below the diagonal.
    """
    _, m, n = a.shape
    k_steps = min(m, n)
    rows = mx.arange(m)
    work = a
    vs, taus = [], []
    for k in range(k_steps):
        x = work[:, :, k]
        alpha = x[:, k]
        below = mx.where(rows > k, x, 0)
        xnorm2 = mx.sum(below * below, axis=-1)
        r = mx.sqrt(alpha * alpha + xnorm2)
        beta = mx.where(alpha >= 0, -r, r)
        nonzero = xnorm2 > 0
        safe_beta = mx.where(nonzero, beta, 1)
        tau = mx.where(nonzero, (beta - alpha) / safe_beta, 0)
        scale = mx.where(nonzero, 1 / mx.where(nonzero, alpha - beta, 1), 1)
        v = mx.where(rows == k, 1, below * scale[:, None])
        beta = mx.where(nonzero, beta, alpha)
        # Apply H_k to the trailing columns j > k, then store beta and v in column k.
        w = tau[:, None] * mx.einsum("bi,bij->bj", v, work)
        updated = work - v[:, :, None] * w[:, None, :]
        cols = mx.arange(n)
        work = mx.where(cols[None, None, :] > k, updated, work)
        column_k = mx.where(rows == k, beta[:, None], mx.where(rows > k, v, x))
        work = mx.where(cols[None, None, :] == k, column_k[:, :, None], work)
        vs.append(v)
        taus.append(tau)
    rr = m if complete else k_steps
    qc = m if complete else k_steps
    r_full = mx.triu(work)
    if rr > m:
        raise ValueError("unreachable")
    r_out = r_full[:, :rr, :]
    if rr > k_steps:
        r_out = mx.where(mx.arange(rr)[:, None] < k_steps, r_out, 0)
    q = mx.broadcast_to(mx.eye(m, qc, dtype=a.dtype), (a.shape[0], m, qc))
    for k in reversed(range(k_steps)):
        v, tau = vs[k], taus[k]
        w = tau[:, None] * mx.einsum("bi,bij->bj", v, q)
        q = q - v[:, :, None] * w[:, None, :]
    return mx.swapaxes(q, -1, -2), r_out


def _pairs(n: int) -> list[tuple[list[int], list[int]]]:
    """The round-robin ordering of ``jacobi_common.h``: per round, the (p, q) lists of its
    pairs with q < n (the pair with the dummy index n of an odd n is left out)."""
    np_ = n + (n & 1)
    rounds = []
    for r in range(np_ - 1):
        ps, qs = [], []
        for g in range(np_ // 2):
            a, b = (np_ - 1, r) if g == 0 else ((r + g) % (np_ - 1), (r + np_ - 1 - g) % (np_ - 1))
            p, q = min(a, b), max(a, b)
            if q < n:
                ps.append(p)
                qs.append(q)
        rounds.append((ps, qs))
    return rounds


def _circle_rounds(n: int) -> list[tuple[list[int], list[int]]]:
    """The ordering of ``metal/jacobi_simd.h``: NP = max(2, next power of two >= n) slots;
    round r pairs the columns in slots (2g, 2g + 1) (p in slot 2g), then every column but
    slot 0's moves one step along the cycle 1 -> 2 -> 4 -> ... -> NP-2 -> NP-1 -> NP-3 ->
    ... -> 3 -> 1. Per round, the (p, q) lists of the pairs of two real columns (< n)."""
    np_ = simd_columns(n)
    slots = list(range(np_))
    rounds = []
    for _ in range(np_ - 1):
        ps, qs = [], []
        for g in range(np_ // 2):
            p, q = slots[2 * g], slots[2 * g + 1]
            if p < n and q < n:
                ps.append(p)
                qs.append(q)
        rounds.append((ps, qs))
        moved = list(slots)
        for s in range(1, np_):
            moved[_circle_next(np_, s)] = slots[s]
        slots = moved
    return rounds


def _circle_next(np_: int, s: int) -> int:
    """The slot the column in slot ``s`` moves to after a round (``la_circle_next``)."""
    if s == 0:
        return 0
    if s & 1:
        return (2 if np_ >= 4 else 1) if s == 1 else s - 2
    return np_ - 1 if s == np_ - 2 else s + 2


def _rotation(alpha, beta, gamma, tol, active):
    """Rutishauser's rotation for one-sided Jacobi and the rotate mask (jacobi_common.h)."""
    big = (alpha > TINY2) & (beta > TINY2)
    test = mx.abs(gamma) > tol * mx.sqrt(alpha) * mx.sqrt(beta)
    rotate = big & test & active
    safe_gamma = mx.where(rotate, gamma, 1)
    zeta = (beta - alpha) / (2 * safe_gamma)
    az = mx.abs(zeta)
    t = mx.where(az > 1e15, 0.5 / mx.maximum(az, 1), 1 / (az + mx.sqrt(1 + az * az)))
    t = mx.where(zeta < 0, -t, t)
    c = 1 / mx.sqrt(1 + t * t)
    s = c * t
    return mx.where(rotate, c, 1), mx.where(rotate, s, 0), rotate


def jacobi_sweeps(
    at: mx.array,
    vt: mx.array | None,
    *,
    tol: float,
    max_sweeps: int,
    rounds: list[tuple[list[int], list[int]]] | None = None,
) -> tuple[mx.array, mx.array | None, mx.array]:
    """One-sided Jacobi on the columns of W (given as rows of ``at``, (B, N, M)) and,
    when ``vt`` is given, the same rotations on the rows of ``vt`` (B, N, N).

    Args:
        rounds: the (p, q) lists of each round of a sweep; default the ordering of
            ``metal/jacobi_common.h`` (:func:`_pairs`).

    Returns:
        ``(at, vt, info)``: the rotated arrays and the sweeps made per matrix (negative if
        ``max_sweeps`` ran out), as ``la_jacobi_sweeps`` in ``metal/jacobi_common.h``.
    """
    batch, n, _ = at.shape
    rounds = _pairs(n) if rounds is None else rounds
    active = mx.ones((batch,), dtype=mx.bool_)
    info = mx.full((batch,), -max_sweeps, dtype=mx.int32)
    for sweep in range(1, max_sweeps + 1):
        rotated = mx.zeros((batch,), dtype=mx.bool_)
        for ps, qs in rounds:
            if not ps:
                continue
            pi, qi = mx.array(ps), mx.array(qs)
            xp, xq = at[:, pi, :], at[:, qi, :]
            alpha = mx.sum(xp * xp, axis=-1)
            beta = mx.sum(xq * xq, axis=-1)
            gamma = mx.sum(xp * xq, axis=-1)
            c, s, rot = _rotation(alpha, beta, gamma, tol, active[:, None])
            rotated = rotated | mx.any(rot, axis=-1)
            tr = (s / (1 + c))[..., None]
            s = s[..., None]
            at = _put_pairs(at, ps, qs, xp - s * (xq + tr * xp), xq + s * (xp - tr * xq))
            if vt is not None:
                vp, vq = vt[:, pi, :], vt[:, qi, :]
                vt = _put_pairs(vt, ps, qs, vp - s * (vq + tr * vp), vq + s * (vp - tr * vq))
        done = active & ~rotated
        info = mx.where(done, sweep, info)
        active = active & rotated
        mx.eval(at, active, info, *(() if vt is None else (vt,)))
        if not mx.any(active).item():
            break
    return at, vt, info


def _put_pairs(x: mx.array, pi: list[int], qi: list[int], xp: mx.array, xq: mx.array):
    """``x`` with rows ``pi`` replaced by ``xp`` and rows ``qi`` by ``xq`` (the rows in
    neither keep their values)."""
    n = x.shape[1]
    npairs = len(pi)
    order = [-1] * n
    for k, (p, q) in enumerate(zip(pi, qi, strict=True)):
        order[p], order[q] = k, npairs + k
    rest = [i for i in range(n) if order[i] < 0]
    for k, i in enumerate(rest):
        order[i] = 2 * npairs + k
    stacked = mx.concatenate([xp, xq, x[:, rest, :]] if rest else [xp, xq], axis=1)
    return stacked[:, mx.array(order), :]


def _rank_permute(keys: mx.array, descending: bool) -> mx.array:
    """Stable order of ``keys`` (B, N): indices of the sorted keys (as la_rank sorts)."""
    return mx.argsort(-keys if descending else keys, axis=-1)


def jacobi_svd(
    a: mx.array, *, full: bool, want_uv: bool, max_sweeps: int
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """One-sided Jacobi SVD of tall matrices, as ``metal/jacobi_svd.metal``.

    Args:
        a: (B, M, N) float32, M >= N.
        full: U with M columns (completed) instead of N.
        want_uv: compute U and V.
        max_sweeps: sweep bound.

    Returns:
        ``(Ut, S, Vt, info)``: Ut (B, UC, M) rows = left singular vectors, S (B, N)
        descending, Vt (B, N, N) rows = right singular vectors, info (B,) sweeps. Without
        ``want_uv``, Ut and Vt are zeros of shape (1,).
    """
    batch, m, n = a.shape
    tol = math.sqrt(m) * EPS32
    at = mx.swapaxes(a, -1, -2)
    vt = mx.broadcast_to(mx.eye(n, dtype=a.dtype), (batch, n, n)) if want_uv else None
    at, vt, info = jacobi_sweeps(at, vt, tol=tol, max_sweeps=max_sweeps)
    sigma = mx.sqrt(mx.sum(at * at, axis=-1))
    order = _rank_permute(sigma, descending=True)
    s = mx.take_along_axis(sigma, order, axis=-1)
    if not want_uv:
        return mx.zeros((1,)), s, mx.zeros((1,)), info
    u, v = _sorted_factors(at, vt, order, s, uc=m if full else n)
    return u, s, v, info


def _sorted_factors(at, vt, order, s, *, uc: int) -> tuple[mx.array, mx.array]:
    """Uᵀ (B, uc, M) and Vᵀ (B, N, N) of the converged one-sided Jacobi iterate Wᵀ = ``at``
    (B, N, M) and ``vt``, rows in ``order``: the columns of W over their norms ``s`` (sorted),
    zero rows appended up to ``uc`` and completed to an orthonormal set."""
    batch, n, m = at.shape
    w = mx.take_along_axis(at, order[..., None], axis=1)
    v = mx.take_along_axis(vt, order[..., None], axis=1)
    inv = mx.where(s > TINY, 1 / mx.where(s > TINY, s, 1), 0)
    ut = w * inv[..., None]
    if uc > n:
        ut = mx.concatenate([ut, mx.zeros((batch, uc - n, m), dtype=ut.dtype)], axis=1)
    return _complete(ut, mx.sum(s > TINY, axis=-1)), v


def _complete(ut: mx.array, good: mx.array) -> mx.array:
    """Rows j >= good[b] of ``ut`` (B, UC, M) replaced by an orthonormal completion: for
    each, the unit vector e_k of least weight in the rows so far, orthogonalized twice."""
    batch, uc, m = ut.shape
    if not mx.any(good < uc).item():
        return ut
    rows = mx.arange(m)
    for j in range(uc):
        need = good <= j
        if not mx.any(need).item():
            continue
        done = mx.where((mx.arange(uc) < j)[None, :, None], ut, 0)
        weight = mx.sum(done * done, axis=1)
        k = mx.argmin(weight, axis=-1)
        x = (rows[None, :] == k[:, None]).astype(ut.dtype)
        for _ in range(2):
            x = x - mx.einsum("bc,bcm->bm", mx.einsum("bcm,bm->bc", done, x), done)
        x = x / mx.sqrt(mx.sum(x * x, axis=-1, keepdims=True))
        ut = mx.where((need[:, None] & (mx.arange(uc)[None, :] == j))[..., None], x[:, None, :], ut)
        mx.eval(ut)
    return ut


def jacobi_eigh(
    a: mx.array, *, want_v: bool, max_sweeps: int
) -> tuple[mx.array, mx.array, mx.array]:
    """Symmetric eigendecomposition by one-sided Jacobi on A + |A|_F·I, as
    ``metal/jacobi_eigh.metal``.

    Args:
        a: (B, N, N) float32; only the lower triangle is read.
        want_v: compute eigenvectors.
        max_sweeps: sweep bound.

    Returns:
        ``(W, Vt, info)``: W (B, N) ascending, Vt (B, N, N) rows = eigenvectors, info (B,)
        sweeps. Without ``want_v``, Vt is zeros of shape (1,).
    """
    batch, n, _ = a.shape
    low = mx.tril(a)
    sym = low + mx.swapaxes(mx.tril(a, -1), -1, -2)
    shift = mx.sqrt(mx.sum(sym * sym, axis=(-2, -1)))
    at = sym + shift[:, None, None] * mx.eye(n, dtype=a.dtype)
    vt = mx.broadcast_to(mx.eye(n, dtype=a.dtype), (batch, n, n)) if want_v else None
    at, vt, info = jacobi_sweeps(at, vt, tol=math.sqrt(n) * EPS32, max_sweeps=max_sweeps)
    if want_v:
        lam = mx.sum(vt * at, axis=-1) - shift[:, None]
    else:
        lam = mx.sqrt(mx.sum(at * at, axis=-1)) - shift[:, None]
    order = _rank_permute(lam, descending=False)
    w = mx.take_along_axis(lam, order, axis=-1)
    if not want_v:
        return w, mx.zeros((1,)), info
    return w, mx.take_along_axis(vt, order[..., None], axis=1), info


# ---------------------------------------------------------------------------------------
# The register kernels (metal/jacobi_eigh_simd.metal, jacobi_svd_simd.metal): raw input,
# in-kernel power-of-two scaling and NaN for non-finite matrices, final output layouts.


def jacobi_eigh_simd(
    a: mx.array, *, want_v: bool, max_sweeps: int
) -> tuple[mx.array, mx.array, mx.array]:
    """Symmetric eigendecomposition of raw matrices, as ``metal/jacobi_eigh_simd.metal``.

    Args:
        a: (B, N, N) float32, N <= 32; only the lower triangle is read (the upper one may
            hold anything).
        want_v: compute eigenvectors.
        max_sweeps: sweep bound.

    Returns:
        ``(W, V, info)``: W (B, N) ascending, V (B, N, N) with column k the eigenvector of
        W[k], info (B,) sweeps (0 for a matrix with a non-finite lower-triangle entry,
        whose W and V are NaN). Without ``want_v``, V is zeros of shape (1,).
    """
    batch, n, _ = a.shape
    low, exponent, finite = prescale_lower(a)
    sym = low + mx.swapaxes(mx.tril(low, -1), -1, -2)
    shift = mx.sqrt(mx.sum(sym * sym, axis=(-2, -1)))
    at = sym + shift[:, None, None] * mx.eye(n, dtype=a.dtype)
    vt = mx.broadcast_to(mx.eye(n, dtype=a.dtype), (batch, n, n)) if want_v else None
    at, vt, info = jacobi_sweeps(at, vt, tol=math.sqrt(n) * EPS32, max_sweeps=max_sweeps,
                                 rounds=_circle_rounds(n))
    if want_v:
        lam = mx.sum(vt * at, axis=-1) - shift[:, None]
    else:
        lam = mx.sqrt(mx.sum(at * at, axis=-1)) - shift[:, None]
    order = _rank_permute(lam, descending=False)
    w = nan_where(~finite, times_power_of_two(mx.take_along_axis(lam, order, axis=-1), exponent))
    info = mx.where(finite, info, 0)
    if not want_v:
        return w, mx.zeros((1,)), info
    v = mx.swapaxes(mx.take_along_axis(vt, order[..., None], axis=1), -1, -2)
    return w, nan_where(~finite, v), info


def jacobi_svd_simd(
    a: mx.array, *, full: bool, want_uv: bool, max_sweeps: int
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """One-sided Jacobi SVD of raw matrices, as ``metal/jacobi_svd_simd.metal`` (which gets
    WIDE = rows < columns).

    Args:
        a: (B, R, C) float32, R, C <= 32; a wide matrix (R < C) is factored as its
            transpose T = aᵀ, a tall one as T = a (T is M x N, M >= N).
        full: U' with M columns (completed) instead of N.
        want_uv: compute the singular vectors.
        max_sweeps: sweep bound.

    Returns:
        ``(U, S, Vh, info)`` in the layouts svd returns for ``a``: U (B, R, R or K),
        S (B, K) descending, Vh (B, K or C, C), K = min(R, C); info (B,) sweeps (0 for a
        matrix with a non-finite entry, whose outputs are NaN). Without ``want_uv``, U and
        Vh are zeros of shape (1,).
    """
    batch, rows, cols = a.shape
    wide = rows < cols
    tall = mx.swapaxes(a, -1, -2) if wide else a
    m, n = tall.shape[1:]
    scaled, exponent, finite = prescale(tall)
    at = mx.swapaxes(scaled, -1, -2)
    vt = mx.broadcast_to(mx.eye(n, dtype=a.dtype), (batch, n, n)) if want_uv else None
    at, vt, info = jacobi_sweeps(at, vt, tol=math.sqrt(m) * EPS32, max_sweeps=max_sweeps,
                                 rounds=_circle_rounds(n))
    info = mx.where(finite, info, 0)
    sigma = mx.sqrt(mx.sum(at * at, axis=-1))
    order = _rank_permute(sigma, descending=True)
    s = mx.take_along_axis(sigma, order, axis=-1)
    s_out = nan_where(~finite, times_power_of_two(s, exponent))
    if not want_uv:
        return mx.zeros((1,)), s_out, mx.zeros((1,)), info
    ut, v = _sorted_factors(at, vt, order, s, uc=m if full else n)
    if wide:
        u, vh = mx.swapaxes(v, -1, -2), ut
    else:
        u, vh = mx.swapaxes(ut, -1, -2), v
    return nan_where(~finite, u), s_out, nan_where(~finite, vh), info
