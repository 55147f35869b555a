"""Reference implementations, in MLX ops, of the small-matrix factorization kernels.

Each function follows the contract written at the top of its kernel (``metal/<name>.metal``)
with the same algorithm and the same order of operations per entry, vectorized over the
batch instead of over threads, so that kernel and reference agree to rounding. They run
on any MLX device (they are how the kernels are checked on a GPU, and how the contracts
are checked against LAPACK on the CPU) and are slow: one Python step per column.

All take and return (B, ...) stacks of float32 (int32 for pivots and info).
"""

import mlx.core as mx


def nan_where(failed: mx.array, x: mx.array) -> mx.array:
    """``x`` with the (B, ...) entries marked in the (B,) ``failed`` set to NaN."""
    mask = failed.reshape(failed.shape + (1,) * (x.ndim - failed.ndim))
    return mx.where(mask, mx.array(float("nan"), dtype=x.dtype), x)


def cholesky_small(a: mx.array, *, upper: bool) -> tuple[mx.array, mx.array]:
    """``cholesky_small``: (L or U, failed). Right-looking potf2."""
    batch, n = a.shape[0], a.shape[-1]
    work = mx.tril(mx.swapaxes(a, -1, -2) if upper else a)
    info = mx.zeros((batch,), dtype=mx.int32)
    for j in range(n):
        d = work[:, j, j]
        bad = mx.logical_not((d > 0) & mx.isfinite(d))
        info = mx.where((info == 0) & bad, j + 1, info)
        rinv = 1.0 / mx.sqrt(mx.where(bad, 1.0, d))
        col = work[:, j + 1 :, j] * rinv[:, None]
        work[:, j, j] = mx.sqrt(mx.where(bad, 1.0, d))
        work[:, j + 1 :, j] = col
        work[:, j + 1 :, j + 1 :] = work[:, j + 1 :, j + 1 :] - col[:, :, None] * col[:, None, :]
    factor = mx.tril(work)
    if upper:
        factor = mx.swapaxes(factor, -1, -2)
    failed = info != 0
    return nan_where(failed, factor), failed


def _swap_rows(x: mx.array, j: int, p: mx.array) -> mx.array:
    """Swap row ``j`` with row ``p[b]`` of each x[b] (rows on axis 1)."""
    rows = mx.arange(x.shape[1]).reshape(1, -1, *([1] * (x.ndim - 2)))
    pb = p.reshape(-1, *([1] * (x.ndim - 1)))
    row_j = x[:, j : j + 1]
    row_p = mx.take_along_axis(x, mx.broadcast_to(pb, (x.shape[0], 1, *x.shape[2:])), axis=1)
    return mx.where(rows == j, row_p, mx.where(rows == pb, row_j, x))


def _getf2(a: mx.array):
    """Right-looking LU with partial pivoting: (packed, piv, perm, first zero pivot + 1)."""
    batch, m, n = a.shape
    work = mx.array(a)  # a copy: the steps below assign into it
    perm = mx.broadcast_to(mx.arange(m, dtype=mx.int32), (batch, m))
    pivots = []
    zero = mx.zeros((batch,), dtype=mx.int32)
    for j in range(min(m, n)):
        score = mx.abs(work[:, j:, j])
        score = mx.where(score >= 0, score, -0.5)  # NaN never wins, as in la_pivot_row
        p = (j + mx.argmax(score, axis=1)).astype(mx.int32)
        pivots.append(p)
        work = _swap_rows(work, j, p)
        perm = _swap_rows(perm[..., None], j, p)[..., 0]
        pivot = work[:, j, j]
        zero = mx.where((zero == 0) & (pivot == 0), j + 1, zero)
        safe = mx.where(pivot == 0, 1.0, pivot)
        col = work[:, j + 1 :, j] / safe[:, None]
        work[:, j + 1 :, j] = col
        trailing = work[:, j + 1 :, j + 1 :] - col[:, :, None] * work[:, j : j + 1, j + 1 :]
        work[:, j + 1 :, j + 1 :] = trailing
    piv = mx.stack(pivots, axis=1) if pivots else mx.zeros((batch, 0), dtype=mx.int32)
    return work, piv, perm, zero


def lu_small(a: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """``lu_small``: (LU, piv, perm)."""
    packed, piv, perm, _ = _getf2(a)
    return packed, piv, perm


def _substitute(t: mx.array, x: mx.array, *, lower: bool, trans: bool, unit: bool) -> mx.array:
    """op(T) X = X by substitution, op(T) = Tᵀ when trans; reads only op(T)'s triangle."""
    n = t.shape[-1]
    op = mx.swapaxes(t, -1, -2) if trans else t
    x = mx.array(x)  # a copy: the steps below assign into it
    for step in range(n):
        j = step if lower else n - 1 - step
        xj = x[:, j, :] if unit else x[:, j, :] / op[:, j, j][:, None]
        x[:, j, :] = xj
        if lower and j + 1 < n:
            x[:, j + 1 :, :] = x[:, j + 1 :, :] - op[:, j + 1 :, j, None] * xj[:, None, :]
        elif not lower and j > 0:
            x[:, :j, :] = x[:, :j, :] - op[:, :j, j, None] * xj[:, None, :]
    return x


def solve_small(a: mx.array, b: mx.array, *, eye: bool = False) -> tuple[mx.array, mx.array]:
    """``solve_small``: (X, info); the identity right-hand side when ``eye``."""
    packed, _, perm, zero = _getf2(a)
    if eye:
        n = a.shape[-1]
        b = mx.broadcast_to(mx.eye(n, dtype=a.dtype), a.shape)
    x = mx.take_along_axis(b, mx.broadcast_to(perm[..., None], b.shape), axis=1)
    x = _substitute(packed, x, lower=True, trans=False, unit=True)
    x = _substitute(packed, x, lower=False, trans=False, unit=False)
    return nan_where(zero != 0, x), zero


def _first_zero_diagonal(t: mx.array) -> mx.array:
    n = t.shape[-1]
    zero = mx.diagonal(t, axis1=-2, axis2=-1) == 0
    first = mx.argmax(zero, axis=-1).astype(mx.int32) + 1
    return mx.where(mx.any(zero, axis=-1), first, 0) if n else first


def trsm_small(
    a: mx.array, b: mx.array, *, lower: bool, trans: bool, unit: bool
) -> tuple[mx.array, mx.array]:
    """``trsm_small``: (X, info)."""
    t = mx.tril(a) if lower else mx.triu(a)
    info = mx.zeros((a.shape[0],), dtype=mx.int32) if unit else _first_zero_diagonal(t)
    x = _substitute(t, b, lower=lower != trans, trans=trans, unit=unit)
    return nan_where(info != 0, x), info


def lu_solve_small(
    packed: mx.array, piv: mx.array, b: mx.array, *, trans: bool
) -> tuple[mx.array, mx.array]:
    """``lu_solve_small``: (X, info)."""
    batch, n = piv.shape
    order = range(n - 1, -1, -1) if trans else range(n)
    gather = mx.broadcast_to(mx.arange(n, dtype=mx.int32), (batch, n))
    bad = mx.any((piv < 0) | (piv >= n), axis=-1)
    for j in order:
        gather = _swap_rows(gather[..., None], j, mx.clip(piv[:, j], 0, n - 1))[..., 0]
    info = mx.where(bad, -1, _first_zero_diagonal(packed))
    unit_lower = mx.tril(packed, -1)
    upper = mx.triu(packed)
    if trans:
        x = _substitute(upper, b, lower=True, trans=True, unit=False)
        x = _substitute(unit_lower, x, lower=False, trans=True, unit=True)
        x = mx.take_along_axis(x, mx.broadcast_to(gather[..., None], x.shape), axis=1)
    else:
        x = mx.take_along_axis(b, mx.broadcast_to(gather[..., None], b.shape), axis=1)
        x = _substitute(unit_lower, x, lower=True, trans=False, unit=True)
        x = _substitute(upper, x, lower=False, trans=False, unit=False)
    return nan_where(info != 0, x), info
