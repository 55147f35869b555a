"""Stacks of small matrices on the GPU: Cholesky, LU with partial pivoting and the solves
built on them (solve, inv, lu_solve, cho_solve, solve_triangular, det, slogdet, lu).

One threadgroup factors or solves with one matrix held in threadgroup memory (kernels in
``metal/``: ``cholesky_small``, ``lu_small``, ``solve_small``, ``lu_solve_small``,
``trsm_small``; MLX-op references with the same contracts in ``mlx_linalg._gpu.reference``).
The functions here follow the implementation contract of ``mlx_linalg._dispatch``:
validated float32 arrays in, ``(outputs, failed)`` out, lazy (no host synchronization),
batch axes kept. Each ``applies_*`` predicate accepts float32 stacks of at least one
matrix with 1 <= n <= :data:`MAX_N`; everything else stays on the CPU path.

NaN/Inf entries affect only their own matrix: the kernels never compare across matrices,
a non-finite Cholesky pivot marks that matrix failed, and the LU-based kernels let NaN
propagate through its own elimination.
"""

import mlx.core as mx

from mlx_linalg import _kernels
from mlx_linalg._gpu.scaling import times_power_of_two

MAX_N = 64
# Which kernels factor in the registers of one simdgroup (lu_small and solve_small with
# SIMD) instead of in threadgroup memory. Same arithmetic and contracts; chosen by
# measurement (float32, docs/kernels.md): registers for LU (H100, 10000x32x32: 0.32 against
# 0.52 ms) and for the fused solve with lane-per-column substitutions (H200, 10000x32x32:
# 0.51 against 0.77 ms; inv 0.42 against 0.70 ms).
# The register LU is used for n <= 32 only: at NMAX = 64 it needs 158-164 registers per
# thread and about a minute of compilation (nvcc, sm_90), against 5 s at NMAX = 32.
SIMD_FACTOR = {"lu": True, "solve": True}
_SIMD_LU_MAX_N = 32
# Size classes: (largest n, NMAX the tile capacity, threads per threadgroup). Two
# capacities keep the number of compiled variants small; the threads scale with the work
# of a trailing update (rows spread over simdgroups, columns over lanes).
_CLASSES = ((8, 32, 32), (16, 32, 64), (32, 32, 128), (64, 64, 256))
# Substitution kernels (solve_small, trsm_small, lu_solve_small) give each lane one
# right-hand-side column; up to this many simdgroups per matrix share the chunks of 32 columns
# (the kernels' XW: their threadgroup memory holds that many chunks). See _rhs_threads.
_RHS_SIMDGROUPS = 2
# Right-hand sides per threadgroup of trsm_small (its TASK): a wide right-hand side is
# solved by ceil(K / TRSM_TASK) threadgroups per matrix.
TRSM_TASK = 64


def _class(n: int) -> tuple[int, int]:
    """(NMAX, threads) for matrices of order ``n`` <= MAX_N."""
    for largest, nmax, threads in _CLASSES:
        if n <= largest:
            return nmax, threads
    raise ValueError(f"[mlx_linalg.kernels] n = {n} is above the small-matrix limit {MAX_N}")


def _small(x: mx.array, *, square: bool = True) -> bool:
    m, n = x.shape[-2:]
    return (
        x.dtype == mx.float32
        and 1 <= m <= MAX_N
        and 1 <= n <= MAX_N
        and (m == n or not square)
        and x.size > 0
    )


def applies_square(x: mx.array, *_, **__) -> bool:
    """A float32 stack of square matrices, 1 <= n <= 64, not empty."""
    return _small(x)


def applies_matrix(x: mx.array, *_, **__) -> bool:
    """A float32 stack of (M, N) matrices, 1 <= M, N <= 64, not empty."""
    return _small(x, square=False)


def applies_rhs(a: mx.array, *rest: mx.array, **__) -> bool:
    """A float32 square stack (1 <= n <= 64) and float32 right-hand sides (..., n, K>=1)."""
    b = rest[-1]
    return _small(a) and b.dtype == mx.float32 and b.size > 0


def _launch(
    name: str,
    inputs: list[mx.array],
    batch_shapes: list[tuple],
    n: int,
    template: dict,
    *,
    threads: int | None = None,
    tasks: int = 1,
    shared: tuple[mx.array, ...] = (),
) -> list[mx.array]:
    """Launch a one-threadgroup-per-matrix kernel (``tasks`` threadgroups per matrix where
    the kernel splits its work so) over a (B, ...) stack.

    Splits B into launches that keep the grid (threads) within MLX's int range.

    Args:
        name: kernel name.
        inputs: arrays whose first axis is the batch B.
        batch_shapes: per output, its shape without the leading batch axis.
        n: the order that picks the capacity class.
        template: template arguments besides NMAX.
        threads: threads per threadgroup, when the caller fixes them (else the class's).
        tasks: threadgroups per matrix.
        shared: inputs after ``inputs`` without a batch axis, passed whole to every launch.
    """
    nmax, class_threads = _class(n)
    threads = threads or class_threads
    batch = inputs[0].shape[0]
    per_launch = _kernels.MAX_GRID // (threads * tasks)
    parts = []
    for start in range(0, batch, per_launch):
        count = min(per_launch, batch - start)
        chunk = inputs if count == batch else [x[start : start + count] for x in inputs]
        parts.append(
            _kernels.launch(
                name,
                [*chunk, *shared],
                template={"NMAX": nmax, **template},
                grid=(count * tasks * threads, 1, 1),
                threadgroup=(threads, 1, 1),
                output_shapes=[(count, *s) for s in batch_shapes],
            )
        )
    if len(parts) == 1:
        return parts[0]
    return [mx.concatenate(group, axis=0) for group in zip(*parts, strict=True)]


def flat(x: mx.array) -> mx.array:
    """(..., M, N) as (B, M, N)."""
    return x.reshape(-1, *x.shape[-2:])


def cholesky(x: mx.array, *, upper: bool) -> tuple:
    """Cholesky factor (``cholesky_small``: blocked by 8-column panels): ``((factor,), failed)``.

    One simdgroup per matrix up to n = 32, two above: the second one only joins the trailing
    updates (measured on an H100: 1000x64x64 0.14 ms with 64 threads, 0.15 with 32 and 0.18
    with 128; at 10000x32x32 one simdgroup is fastest, 0.20 against 0.24 ms).
    """
    n = x.shape[-1]
    threads = _kernels.SIMD_WIDTH * (1 if n <= 32 else 2)
    factor, failed = _launch(
        "cholesky_small", [flat(x)], [(n, n), ()], n, {"UPPER": upper}, threads=threads
    )
    return (factor.reshape(x.shape),), failed.reshape(x.shape[:-2])


def cholesky_panel(a: mx.array, width: int) -> tuple[mx.array, mx.array]:
    """One leaf of the blocked Cholesky (``cholesky_panel``: potf2 of the top block and the
    substitution below it, one launch): ``(L, failed)``.

    Args:
        a: (B, m, k) float32 whose top ``width`` x ``width`` block (width <= MAX_N, m and
            k >= width) is symmetric positive definite; only its first ``width`` columns are
            read, of the top block only the lower triangle. Row-contiguous ``a`` is read in
            place, so a trailing matrix needs no copy of its leading columns.
        width: the leaf's columns.

    Returns:
        L (B, m, width): L11 with A11 = L11 L11ᵀ on top (zeros above its diagonal), L21 =
        A21 L11⁻ᵀ below, every entry NaN where ``failed`` (B,) marks a top block that is
        not positive definite. Bit for bit :func:`cholesky` of the top block followed by
        :func:`trsm` with ``rows`` below it (the kernel runs their code).
    """
    m = a.shape[1]
    factor, failed = _launch(
        "cholesky_panel",
        [a],
        [(m, width), ()],
        width,
        {},
        threads=_kernels.SIMD_WIDTH * (1 if width <= 32 else 2),
        tasks=1 + -(-(m - width) // _kernels.SIMD_WIDTH),
        shared=(_kernels.extents(width),),
    )
    return factor, failed


def _lu(x: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    m, n = x.shape[-2:]
    simd = SIMD_FACTOR["lu"] and max(m, n) <= _SIMD_LU_MAX_N
    packed, piv, perm = _launch(
        "lu_small",
        [flat(x)],
        [(m, n), (min(m, n),), (m,)],
        max(m, n),
        {"SIMD": simd},
        threads=_kernels.SIMD_WIDTH if simd else None,
    )
    batch = x.shape[:-2]
    return packed.reshape(x.shape), piv.reshape(*batch, -1), perm.reshape(*batch, m)


def lu_factor(x: mx.array) -> tuple:
    """Packed LU and 0-based pivots (``lu_small``): ``((lu, piv), None)``."""
    packed, piv, _ = _lu(x)
    return (packed, piv), None


def lu(x: mx.array) -> tuple:
    """``((P, L, U), None)`` with x = P L U, from ``lu_small``'s packed form."""
    m, n = x.shape[-2:]
    k = min(m, n)
    packed, _, perm = _lu(x)
    rows = mx.arange(m, dtype=mx.int32)
    p = (perm[..., None, :] == rows[:, None]).astype(x.dtype)
    lower = mx.tril(packed[..., :, :k], -1) + mx.eye(m, k, dtype=x.dtype)
    upper = mx.triu(packed[..., :k, :])
    return (p, lower, upper), None


def _lu_diagonal(x: mx.array) -> tuple[mx.array, mx.array]:
    """U's diagonal and the permutation's sign (+1/-1) of the LU of ``x``."""
    packed, piv, _ = _lu(x)
    swaps = mx.sum(piv != mx.arange(piv.shape[-1], dtype=mx.int32), axis=-1)
    parity = 1 - 2 * (swaps % 2).astype(x.dtype)
    return mx.diagonal(packed, axis1=-2, axis2=-1), parity


def det(x: mx.array) -> tuple:
    """Determinant: product of U's diagonal with the pivots' sign. ``((det,), None)``."""
    diagonal, parity = _lu_diagonal(x)
    return (parity * scaled_product(diagonal),), None


def scaled_product(d: mx.array) -> mx.array:
    """Product over the last axis without intermediate overflow or underflow.

    Each factor is split exactly into a mantissa in [1, 2) and a power of two; the mantissas
    are multiplied (at most 2^64 for 64 factors) and the summed exponent is applied last, in
    two halves, so the result over- or underflows only when the product itself does. A plain
    running product of U's diagonal gave NaN (inf · 0) and -0 for representable determinants
    of badly scaled matrices on the H100.

    Args:
        d: (..., N) float32.

    Returns:
        (...,) the product; NaN where a factor is NaN, 0 where one is 0.
    """
    nonzero = d != 0
    exponent = mx.where(nonzero, mx.floor(mx.log2(mx.abs(d))), 0)
    mantissa = mx.where(nonzero, times_power_of_two(d, -exponent), d)
    return times_power_of_two(mx.prod(mantissa, axis=-1), mx.sum(exponent, axis=-1))


def slogdet(x: mx.array) -> tuple:
    """``((sign, logabsdet), None)``: sums log|u_ii|, so no overflow or underflow."""
    diagonal, parity = _lu_diagonal(x)
    sign = parity * mx.prod(mx.sign(diagonal), axis=-1)
    return (sign, mx.sum(mx.log(mx.abs(diagonal)), axis=-1)), None


def _rhs_threads(k: int) -> int:
    """Threads per threadgroup for a substitution over ``k`` right-hand sides: one simdgroup
    per chunk of 32 columns, at most :data:`_RHS_SIMDGROUPS`.

    Each lane owns one column, so more simdgroups than chunks would only wait, while fewer
    threads per matrix let more matrices be resident per SM (measured on an H200 with one
    simdgroup at K = 32, 10000x32x32: solve 0.51 ms, solve_triangular 0.23 ms, lu_solve
    0.37 ms).
    """
    chunks = -(-k // _kernels.SIMD_WIDTH)
    return _kernels.SIMD_WIDTH * min(chunks, _RHS_SIMDGROUPS)


def _solve_kernel(a: mx.array, b: mx.array, eye: bool) -> tuple:
    n, k = b.shape[-2:]
    simd = SIMD_FACTOR["solve"] and n <= _SIMD_LU_MAX_N
    # The register LU runs on simdgroup 0 alone, so its launch is sized by the substitutions
    # (_rhs_threads); the threadgroup LU spreads its trailing updates over the size class's
    # simdgroups (threads=None), of which up to _RHS_SIMDGROUPS then substitute.
    x, info = _launch(
        "solve_small",
        [flat(a), flat(b)],
        [(n, k), ()],
        n,
        {"EYE": eye, "SIMD": simd},
        threads=_rhs_threads(k) if simd else None,
    )
    return (x.reshape(b.shape),), (info != 0).reshape(a.shape[:-2])


def solve(a: mx.array, b: mx.array) -> tuple:
    """A X = B, fused LU + substitutions (``solve_small``): ``((X,), failed)``."""
    return _solve_kernel(a, b, eye=False)


def inv(x: mx.array) -> tuple:
    """A⁻¹ as ``solve_small`` with the identity right-hand side: ``((inv,), failed)``."""
    return _solve_kernel(x, x, eye=True)


def lu_solve(packed: mx.array, piv: mx.array, b: mx.array, *, trans: int) -> tuple:
    """Solve with a packed LU (``lu_solve_small``): ``((X,), failed)``."""
    n, k = b.shape[-2:]
    x, info = _launch(
        "lu_solve_small",
        [flat(packed), piv.reshape(-1, n), flat(b)],
        [(n, k), ()],
        n,
        {"TRANS": trans != 0},
        threads=_rhs_threads(k),
    )
    return (x.reshape(b.shape),), (info != 0).reshape(packed.shape[:-2])


def trsm(
    a: mx.array, b: mx.array, *, lower: bool, trans: bool, unit: bool, rows: bool = False
) -> tuple:
    """``trsm_small``: op(A) X = B for (..., n, n) and (..., n, K), or with ``rows``
    X op(A)ᵀ = B for (..., K, n) (B's rows are the right-hand sides): ``(X, failed)``, any
    K, ceil(K / TRSM_TASK) threadgroups per matrix."""
    k = b.shape[-2] if rows else b.shape[-1]
    x, info = _launch(
        "trsm_small",
        [flat(a), flat(b)],
        [b.shape[-2:], ()],
        a.shape[-1],
        {"LOWER": lower, "TRANS": trans, "UNIT": unit, "ROWS": rows},
        threads=_rhs_threads(min(k, TRSM_TASK)),
        tasks=-(-k // TRSM_TASK),
    )
    return x.reshape(b.shape), (info != 0).reshape(a.shape[:-2])


def solve_triangular(
    a: mx.array, b: mx.array, *, lower: bool, unit_diagonal: bool, trans: int
) -> tuple:
    """op(A) X = B by substitution (``trsm_small``): ``((X,), failed)``."""
    x, failed = trsm(a, b, lower=lower, trans=trans != 0, unit=unit_diagonal)
    return (x,), failed


def cho_solve(c: mx.array, b: mx.array, *, lower: bool) -> tuple:
    """A X = B from A's Cholesky factor: two ``trsm_small`` launches. ``((X,), failed)``."""
    y, failed = trsm(c, b, lower=lower, trans=not lower, unit=False)
    x, _ = trsm(c, y, lower=lower, trans=lower, unit=False)
    return (x,), failed
