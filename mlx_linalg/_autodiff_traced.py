"""Lazy CPU forms of the LAPACK ops, for ``mx.compile`` and ``mx.vmap`` tracing.

The LAPACK implementations (``mlx_linalg._cpu.lapack``) read their inputs on the host, which
MLX forbids while it traces a function. While tracing, :func:`run` builds the same op from
MLX's own lazy CPU kernels (``mx.linalg`` on the CPU stream: cholesky, eigh, svd, eig,
solve_triangular) and MLX operations (Householder QR and partial-pivoting LU column by column,
because every primitive of a traced graph must have a vmap rule and MLX's QR and LU have
none), with the
dispatch contract's outputs, shapes and dtypes. Under ``mx.vmap`` these outputs only fix the
shapes (the vmap rule of ``mlx_linalg._autodiff`` then runs LAPACK on the whole stack);
under ``mx.compile`` they are what runs.

Differences from LAPACK: MLX's kernels take float32 and float64 only (complex64 raises a
clear error here; eigh, eigvalsh, svd, svdvals, eig and eigvals also take complex64), and
failures are found from the factors (a non-positive Cholesky pivot, a zero pivot of U) or
from non-finite results; their outputs become NaN as on the eager path.
"""

import mlx.core as mx

from mlx_linalg._checks import fail

CPU = mx.cpu

_COMPLEX_OK = frozenset({"eigh", "eigvalsh", "svd", "svdvals", "eig", "eigvals"})


def run(op: str, *arrays: mx.array, **keywords) -> tuple:
    """``(outputs, failed)`` of ``op`` as lazy MLX graphs on the CPU stream."""
    if op not in _COMPLEX_OK and any(mx.issubdtype(x.dtype, mx.complexfloating) for x in arrays):
        fail(
            op,
            "complex64 inputs cannot be traced by mx.compile or mx.vmap on the CPU "
            "(LAPACK) path; call it outside the transformation",
        )
    outputs, failed = _OPS[op](*arrays, **keywords)
    spoiled = ~mx.isfinite(arrays[0]).all(axis=(-2, -1))
    if failed is not None:
        spoiled = spoiled | failed
    return tuple(_spoil(out, spoiled) for out in outputs), failed


def _spoil(out: mx.array, failed: mx.array) -> mx.array:
    """NaN where ``failed`` (batch shape) for floating outputs; others unchanged."""
    if not mx.issubdtype(out.dtype, mx.inexact):
        return out
    mask = failed.reshape(failed.shape + (1,) * (out.ndim - failed.ndim))
    return mx.where(mask, mx.array(float("nan"), dtype=out.dtype), out)


def _tril(x, k=0):
    return mx.where(mx.tri(x.shape[-2], x.shape[-1], k, dtype=mx.bool_), x, 0)


def _triu(x, k=0):
    return mx.where(mx.tri(x.shape[-2], x.shape[-1], k - 1, dtype=mx.bool_), 0, x)


def _diagonal(x):
    return mx.diagonal(x, axis1=-2, axis2=-1)


def _clean(x):
    """Replace non-finite matrices by the identity so MLX's kernels never see them."""
    bad = ~mx.isfinite(x).all(axis=(-2, -1), keepdims=True)
    return mx.where(bad, mx.eye(x.shape[-2], x.shape[-1], dtype=x.dtype), x)


def _tri_solve(t, b, *, upper):
    """``t⁻¹ b`` for an explicit triangle ``t``; a zero pivot marks the matrix failed."""
    diag = _diagonal(t)
    singular = (diag == 0).any(axis=-1)
    n = t.shape[-1]
    t = t + mx.where(diag == 0, 1, 0).astype(t.dtype)[..., None, :] * mx.eye(n, dtype=t.dtype)
    return mx.linalg.solve_triangular(t, b, upper=upper, stream=CPU), singular


def _cholesky(a, *, upper):
    factor = mx.linalg.cholesky(_clean(a), upper=upper, stream=CPU)
    diag = _diagonal(factor)
    failed = ~((diag > 0) & mx.isfinite(diag)).all(axis=-1)
    return (_triu(factor) if upper else _tril(factor),), failed


def _qr(a, *, mode):
    """Householder QR in MLX operations, LAPACK's conventions (geqr2/dlarfg + org2r).

    MLX's own QR kernel has no vmap rule, so the reflectors are built column by column:
    H_j = I − τ v vᵀ with v_j = 1, β = −sign(α)·‖(α, x)‖, τ = (β − α)/β (τ = 0 when x = 0).
    Q = H_0 ⋯ H_(k−1) applied to the first k (reduced) or all m (complete) columns of the
    identity, last reflector first, as org2r does: M x K work per reflector in reduced mode.
    """
    m, n = a.shape[-2:]
    k = min(m, n)
    rows = mx.arange(m)[:, None]
    r = _clean(a)
    reflectors = []
    for j in range(k):
        col = r[..., :, j : j + 1]
        alpha = r[..., j : j + 1, j : j + 1]
        below = mx.where(rows > j, col, 0)
        xnorm = mx.sqrt((below * below).sum(axis=-2, keepdims=True))
        beta = -mx.where(alpha >= 0, 1, -1).astype(a.dtype) * mx.sqrt(alpha * alpha + xnorm * xnorm)
        trivial = xnorm == 0
        beta = mx.where(trivial, alpha, beta)
        tau = mx.where(trivial, 0, (beta - alpha) / mx.where(trivial, 1, beta))
        v = mx.where(rows == j, 1, below / mx.where(trivial, 1, alpha - beta))
        r = r - tau * v * (mx.swapaxes(v, -1, -2) @ r)
        reflectors.append((v, tau))
    columns = m if mode == "complete" else k
    q = mx.broadcast_to(mx.eye(m, columns, dtype=a.dtype), (*a.shape[:-2], m, columns))
    for v, tau in reversed(reflectors):
        q = q - tau * v * (mx.swapaxes(v, -1, -2) @ q)
    if mode == "complete":
        return (q, _triu(r)), None
    return (q, _triu(r[..., :k, :])), None


def _eigh(a):
    return mx.linalg.eigh(_clean(a), UPLO="L", stream=CPU), None


def _eigvalsh(a):
    return (mx.linalg.eigvalsh(_clean(a), UPLO="L", stream=CPU),), None


def _eig(a):
    return mx.linalg.eig(_clean(a), stream=CPU), None


def _eigvals(a):
    return (mx.linalg.eigvals(_clean(a), stream=CPU),), None


def _svd(a, *, full_matrices):
    u, s, vh = mx.linalg.svd(_clean(a), stream=CPU)
    if not full_matrices:
        k = s.shape[-1]
        u, vh = u[..., :, :k], vh[..., :k, :]
    return (u, s, vh), None


def _svdvals(a):
    return (mx.linalg.svd(_clean(a), compute_uv=False, stream=CPU),), None


def permutation(piv: mx.array, n: int) -> mx.array:
    """Row order ``perm`` with ``Pᵀ A = A[perm]`` from sequential 0-based pivots."""
    idx = mx.arange(n, dtype=mx.int32)
    perm = mx.broadcast_to(idx, (*piv.shape[:-1], n))
    for i in range(piv.shape[-1]):
        p = piv[..., i : i + 1].astype(mx.int32)
        at_i = perm[..., i : i + 1]
        at_p = mx.take_along_axis(perm, p, axis=-1)
        perm = mx.where(idx == i, at_p, mx.where(idx == p, at_i, perm))
    return perm


def _lu_factor(a):
    """Partial-pivoting LU in MLX operations, LAPACK getf2's pivots (first largest |aᵢⱼ|).

    MLX's own LU kernel has no vmap rule, so elimination runs column by column.
    """
    m, n = a.shape[-2:]
    rows, cols = mx.arange(m)[:, None], mx.arange(n)[None, :]
    packed = _clean(a)
    pivots = []
    for j in range(min(m, n)):
        column = mx.where(rows >= j, mx.abs(packed[..., :, j : j + 1]), -1)
        p = mx.argmax(column, axis=-2, keepdims=True).astype(mx.int32)
        row_j = packed[..., j : j + 1, :]
        row_p = mx.take_along_axis(packed, mx.broadcast_to(p, (*p.shape[:-1], n)), axis=-2)
        packed = mx.where(rows == j, row_p, mx.where(rows == p, row_j, packed))
        pivot = packed[..., j : j + 1, j : j + 1]
        multipliers = mx.where(rows > j, packed[..., :, j : j + 1], 0) / mx.where(
            pivot == 0, 1, pivot
        )
        update = multipliers * mx.where(cols > j, packed[..., j : j + 1, :], 0)
        packed = mx.where((rows > j) & (cols == j), multipliers, packed - update)
        pivots.append(p[..., 0, 0])
    piv = mx.stack(pivots, axis=-1) if pivots else mx.zeros((*a.shape[:-2], 0), dtype=mx.int32)
    return (packed, piv), None


def _lu(a):
    (packed, piv), _ = _lu_factor(a)
    m, n = a.shape[-2:]
    k = min(m, n)
    perm = permutation(piv, m)
    p = (mx.arange(m)[:, None] == perm[..., None, :]).astype(a.dtype)
    low = _tril(packed[..., :, :k], -1) + mx.eye(m, k, dtype=a.dtype)
    return (p, low, _triu(packed[..., :k, :])), None


def _lu_solve(packed, piv, b, *, trans):
    """``op(A)⁻¹ b`` with A = P L U packed: PᵀAx: L U x = Pᵀb; AᵀPx... via triangles."""
    n = packed.shape[-1]
    perm = permutation(piv, n)
    low = _tril(packed, -1) + mx.eye(n, dtype=packed.dtype)
    up = _triu(packed)
    if trans == 0:
        y, _ = _tri_solve(low, mx.take_along_axis(b, perm[..., :, None], axis=-2), upper=False)
        x, singular = _tri_solve(up, y, upper=True)
    else:
        # Aᵀ x = b: Uᵀ Lᵀ (Pᵀ x) = b (real only: complex is refused above).
        z, singular = _tri_solve(mx.swapaxes(up, -1, -2), b, upper=False)
        w, _ = _tri_solve(mx.swapaxes(low, -1, -2), z, upper=True)
        x = mx.take_along_axis(w, mx.argsort(perm, axis=-1)[..., :, None], axis=-2)
    return (x,), singular


def _solve(a, b):
    (packed, piv), _ = _lu_factor(a)
    return _lu_solve(packed, piv, b, trans=0)


def _inv(a):
    n = a.shape[-1]
    return _solve(a, mx.broadcast_to(mx.eye(n, dtype=a.dtype), a.shape))


def _slogdet(a):
    (packed, piv), _ = _lu_factor(a)
    diag = _diagonal(packed)
    swaps = (piv != mx.arange(piv.shape[-1], dtype=mx.int32)).sum(axis=-1)
    sign = mx.where(swaps % 2 == 1, -1, 1).astype(a.dtype) * mx.sign(diag).prod(axis=-1)
    return (sign, mx.log(mx.abs(diag)).sum(axis=-1)), None


def _det(a):
    (packed, piv), _ = _lu_factor(a)
    swaps = (piv != mx.arange(piv.shape[-1], dtype=mx.int32)).sum(axis=-1)
    sign = mx.where(swaps % 2 == 1, -1, 1).astype(a.dtype)
    return (sign * _diagonal(packed).prod(axis=-1),), None


def _solve_triangular(a, b, *, lower, unit_diagonal, trans):
    t = _tril(a) if lower else _triu(a)
    if unit_diagonal:
        t = _tril(t, -1) + _triu(t, 1) + mx.eye(a.shape[-1], dtype=a.dtype)
    if trans:
        t, lower = mx.swapaxes(t, -1, -2), not lower
    x, singular = _tri_solve(t, b, upper=not lower)
    return (x,), singular


def _cho_solve(c, b, *, lower):
    low = _tril(c) if lower else mx.swapaxes(_triu(c), -1, -2)
    y, singular = _tri_solve(low, b, upper=False)
    x, _ = _tri_solve(mx.swapaxes(low, -1, -2), y, upper=True)
    return (x,), singular


def _lstsq(a, b, *, rcond):
    u, s, vh = mx.linalg.svd(_clean(a), stream=CPU)
    k = s.shape[-1]
    u, vh = u[..., :, :k], vh[..., :k, :]
    largest = s[..., :1] if k else mx.zeros((*s.shape[:-1], 1), dtype=s.dtype)
    keep = s > rcond * largest
    inv_s = mx.where(keep, 1 / mx.where(keep, s, 1), 0)
    x = mx.swapaxes(vh, -1, -2) @ (inv_s[..., :, None] * (mx.swapaxes(u, -1, -2) @ b))
    return (x, keep.sum(axis=-1).astype(mx.int32), s), None


_OPS = {
    "cholesky": _cholesky,
    "qr": _qr,
    "eigh": _eigh,
    "eigvalsh": _eigvalsh,
    "eig": _eig,
    "eigvals": _eigvals,
    "svd": _svd,
    "svdvals": _svdvals,
    "solve": _solve,
    "inv": _inv,
    "slogdet": _slogdet,
    "det": _det,
    "lu": _lu,
    "lu_factor": _lu_factor,
    "lu_solve": _lu_solve,
    "solve_triangular": _solve_triangular,
    "cho_solve": _cho_solve,
    "lstsq": _lstsq,
}
