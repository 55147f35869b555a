"""The large tier: the blocked large-matrix GPU paths at n = 2048, 4096 and 8192, float32.

``python -m conformance --large --device gpu`` runs the ops whose GPU implementation at these
orders is a blocked graph (``mlx_linalg._gpu.blocked_rules``: every op of ``RULES`` takes over
from ``CROSSOVER[op]`` <= 2048) or the two-stage eigensolver (``mlx_linalg._gpu.two_stage``:
eigh and eigvalsh from ``CROSSOVER`` = 1024) on a few matrix classes per size, with the
metrics of the other tiers, and the reduced SVD and singular values
(``mlx_linalg._gpu.qdwh_svd``: QDWH polar + the two-stage eigh of H, from a short side of
1024 / 2048) at 2048 and 4096 (their float64 reference SVDs would take minutes on the host
at 8192). Ops without a GPU path at these orders (eig, lstsq's default driver, the norms
and products, ...) run on the CPU (LAPACK) above n = 64 on a GPU machine too, and at
n = 8192 a single one takes minutes there; this tier skips them (``SKIPPED``).

Cost. Every float64 reference, float32 LAPACK peer and metric product is computed on the host
(a LAPACK call, and for some metrics an n x n float64 GEMM such as Q R or X A), so the plan
puts the classes that cost a QR of n x n to build (Haar factors) at 2048 and 4096 only, and
runs each op once at 8192 (``specs`` says which variants stay below). docs/conformance.md
"Large tier" gives the case list and the estimate of its running time.

Condition numbers. The zoo's ``_analyse`` takes SVDs (O(n^3) with a large constant; minutes
at n = 8192). Here ``Case.cond`` is the construction's own κ₂ for the prescribed-spectrum
classes (``cond_1eK``, ``spd_cond_1e3``) and otherwise :func:`estimate_cond`: block Krylov
iteration (4 start vectors, 8 from n = 4096; at most 200 basis vectors) on A for σ_max and
on A⁻¹ (through one float64 LU, Cholesky or the triangle itself) for 1/σ_min. Its
Rayleigh-Ritz values σ_max(M V) (V orthonormal) approach the extreme singular values from
inside, so the estimate is a lower bound on κ₂ (up to rounding errors of relative order
κ₂·2⁻⁵³) that converges to it, and the κ·u allowance of the forward guard can only get
tighter than with the exact κ₂, never looser. Against SVDs at n = 2048: within 1e-6 (Gaussian,
triangular, equilibrated matrices) and 1e-4 for the Wishart class, whose smallest
eigenvalues cluster at the hard edge (κ₂ ≈ 5 there, far below the c·√n of the guard: its
κ·u term never decides); tests/test_conformance_large.py checks 2e-4 at n = 40 and 160.
``Case.cond_scaled`` (the κ₂ after row and column equilibration, which decides which square
matrices are singular to working precision) is estimated the same way through the same
factorization, for the cases whose ops read it. ``Case.spd`` is "a float64 Cholesky of the
rounded matrix exists".
"""

import math
import os
import time
import warnings
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np
import scipy.linalg

from conformance import zoo

# The orders of the tier (small, medium, large). Tests shrink them to run the plan on a CPU.
SIZES = (2048, 4096, 8192)
# Stacks: (batch, n) of the Gaussian stack (every LU and QR op) and of the SPD and
# triangular stacks (Cholesky and triangular solves, blocked from n = 512 and 256).
GAUSSIAN_STACK = (2, 2048)
SMALL_STACK = (4, 1024)
# Order of the failure-policy stacks (3 matrices, entry 1 fails).
POLICY_N = 2048
DTYPES = ("float32",)

LU_OPS = ("lu", "lu_factor", "lu_solve", "solve", "solve[refine]", "inv", "det", "slogdet")
QR_OPS = ("qr", "qr[complete]")
CHOLESKY_OPS = ("cholesky", "cholesky[upper]", "cho_factor", "cho_solve")
TRIANGULAR_OPS = ("solve_triangular", "solve_triangular[T]")
GELS_OPS = ("lstsq[gels]",)
EIGH_OPS = ("eigh", "eigvalsh")
# svd (reduced; the square matrices' full SVD is the same call) and svdvals: QDWH polar +
# the two-stage eigh of H (mlx_linalg._gpu.qdwh_svd) from a short side of 1024 / 2048; at
# 8192 svd[reduced] only, on the Gaussian matrix.
SVD_OPS = ("svd[reduced]", "svdvals")
# Every op of the tier, in report order (OpSpec names of conformance.ops).
OPS = (QR_OPS + CHOLESKY_OPS + LU_OPS + ("solve[vector]",) + TRIANGULAR_OPS + GELS_OPS
       + EIGH_OPS + SVD_OPS)

SKIPPED = ("eig, eigvals, lstsq (gelsd), matrix_power, norms, products: no GPU path at "
           "these orders (CPU LAPACK above n = 64, minutes at n = 8192); what is built on "
           "svd (full svd of the tall matrix, polar, pinv, matrix_rank, orth, null_space, "
           "cond): the same route as svd[reduced] and svdvals, which run here")

# κ₂ estimates (block Krylov): BLOCK[0] start vectors per operator below the order
# BLOCK[1], BLOCK[2] from there (where a pass over the matrix costs about the same for 2 or
# 16 columns, and fewer passes win), at most MAX_DIM basis vectors, stopping once the
# estimate grew by less than TOL (relative) in two consecutive steps.
BLOCK = (4, 4096, 8)
MAX_DIM = 200
TOL = 1e-6


@dataclass
class LargeSpec:
    """One case of the tier before its matrix is built.

    Attributes:
        cls: matrix class (the report groups by it).
        name: unique case name, ``class/shape``.
        build: ``build(rng) -> (..., M, N) float64``.
        ops: the op names (``OPS``) that run on it; the op's own applicability still holds.
        hermitian: the matrix (each of the stack) is symmetric.
        triangular: "upper", "lower" or None.
        cond: the construction's κ₂ (prescribed spectra), or None to estimate it.
        policy: None, or the failure-policy kind of a stack whose entry ``bad`` fails.
        bad: the failing entry of a policy stack.
        order: the order of ``SIZES`` the case is planned under (``--sizes`` selects by it).
    """

    cls: str
    name: str
    build: Callable[[np.random.Generator], np.ndarray]
    ops: tuple[str, ...]
    hermitian: bool = False
    triangular: str | None = None
    cond: float | None = None
    policy: str | None = None
    bad: int | None = None
    order: int = 0


# ----------------------------------------------------------------------------- matrices


def wishart_spd(rng: np.random.Generator, n: int) -> np.ndarray:
    """I + G Gᵀ/n for Gaussian G (n x n): SPD with eigenvalues in [1, 5] (Marchenko-Pastur,
    aspect ratio 1), κ₂ about 5, Haar-distributed eigenvectors; one GEMM to build."""
    g = rng.standard_normal((n, n))
    return np.eye(n) + (g @ g.T) / n


def _wishart(n: int):
    return lambda r: wishart_spd(r, n)


def _stack(build: Callable[[np.random.Generator], np.ndarray], batch: int):
    return lambda r: np.stack([build(r) for _ in range(batch)])


def _gaussian(m: int, n: int):
    return lambda r: zoo.gaussian(r, (m, n), False)


def _symmetric(n: int):
    """(G + Gᵀ)/2 for Gaussian G (n x n): eigenvalues of both signs, semicircle-distributed."""

    def build(r):
        g = zoo.gaussian(r, (n, n), False)
        return (g + g.T) / 2

    return build


def _prescribed(n: int, cond: float):
    return lambda r: zoo.prescribed(r, n, n, zoo.geometric(n, cond), False)


def _triangular(n: int, which: str):
    build = zoo._triangular(n, which)
    return lambda r: build(r, False)


def _policy_stack(n: int, kind: str):
    """Three SPD (I + GGᵀ/n) matrices of which entry 1 fails as ``kind`` says: a NaN pair
    ("nonfinite"), indefinite GGᵀ/n − I ("not_pd"), a zero column ("singular")."""

    def build(r):
        a = np.stack([wishart_spd(r, n) for _ in range(3)])
        if kind == "nonfinite":
            a[1, 2, 3] = a[1, 3, 2] = math.nan
        elif kind == "not_pd":
            a[1] -= 2 * np.eye(n)  # eigenvalues in [-1, 3]
        else:
            a[1, :, n // 2] = 0
        return a

    return build


def _singular_triangular(n: int):
    def build(r):
        a = np.stack([_triangular(n, "upper")(r) for _ in range(3)])
        a[1, n // 2, n // 2] = 0
        return a

    return build


def specs(sizes: Collection[int] | None = None) -> Iterator[LargeSpec]:
    """The tier's cases, smallest order first (module constants read at call time), only
    those planned under one of ``sizes`` (``--sizes``; None: all). Each case belongs to one
    order of ``SIZES`` (``LargeSpec.order``): the stacks, the policy stacks and the tall
    matrix to the smallest."""
    for order, spec in _all_specs():
        if sizes is None or order in sizes:
            spec.order = order
            yield spec


def _all_specs() -> Iterator[tuple[int, LargeSpec]]:
    """(order, case) for every case of the tier.

    qr[complete] of a square matrix is the reduced QR (the same call), so it runs on the tall
    class only; cho_factor is cholesky(upper=True), so it runs at the small order and on the
    stack only. The classes whose construction costs a QR of n x n (Haar factors) stay below
    the large order. At the large order, where the host's float64 references and metric
    products dominate the run time, each op runs on one class, and lu (lu_factor's
    factorization assembled as P, L, U), lu_solve (lu_factor, then solve's substitutions),
    det (slogdet's; it overflows float32 for a Gaussian matrix), cholesky[upper]
    (cholesky, transposed), eigvalsh (eigh's eigenvalues) and svdvals (svd's singular
    values) are left to the smaller orders.
    """
    small, medium, large = SIZES
    lu_qr = LU_OPS + ("qr",)
    gaussian = {small: lu_qr + ("solve[vector]",) + GELS_OPS + SVD_OPS, medium: lu_qr + SVD_OPS,
                large: ("lu_factor", "solve", "solve[refine]", "inv", "slogdet", "qr",
                        "svd[reduced]")}
    for n, cholesky in ((small, CHOLESKY_OPS), (medium, ("cholesky", "cholesky[upper]",
                                                         "cho_solve")),
                        (large, ("cholesky", "cho_solve"))):
        yield n, LargeSpec("gaussian", f"gaussian/{n}x{n}", _gaussian(n, n), gaussian[n])
        # solve[refine] converges on the GPU's TF32 factors only where κ·2⁻¹¹ < 1: here
        # (κ ≈ 5), not on the Gaussian matrices (κ ≈ 10⁴-10⁵), where it falls back.
        eigh = EIGH_OPS if n != large else ("eigh",)
        yield n, LargeSpec("spd_wishart", f"spd_wishart/{n}x{n}", _wishart(n),
                        cholesky + ("solve[refine]",) + eigh, hermitian=True)
        if n != large:  # eigenvalues of both signs (Wigner's semicircle)
            yield n, LargeSpec("symmetric", f"symmetric/{n}x{n}", _symmetric(n), EIGH_OPS,
                            hermitian=True)
        for which in ("upper", "lower"):
            yield n, LargeSpec("triangular", f"{which}/{n}x{n}", _triangular(n, which),
                            TRIANGULAR_OPS, triangular=which)
        for cond in {small: (1e3, 1e5), medium: (1e3,), large: ()}[n]:
            label = f"cond_1e{round(math.log10(cond))}"
            yield n, LargeSpec(label, f"{label}/{n}x{n}", _prescribed(n, cond),
                            lu_qr + GELS_OPS + SVD_OPS, cond=cond)
        if n != small:
            continue
        yield n, LargeSpec("spd_cond_1e3", f"spd_cond_1e3/{n}x{n}",
                        lambda r, n=n: zoo.spd_from(r, n, 1e3, False),
                        CHOLESKY_OPS + EIGH_OPS, hermitian=True, cond=1e3)
        yield n, LargeSpec("tall", f"tall/{2 * n}x{n}", _gaussian(2 * n, n),
                        QR_OPS + GELS_OPS + SVD_OPS)
        b, m = GAUSSIAN_STACK
        yield n, LargeSpec(f"stack_{b}", f"stack_{b}/{b}x{m}x{m}", _stack(_gaussian(m, m), b),
                        lu_qr)
        b, m = SMALL_STACK
        yield n, LargeSpec(f"stack_{b}", f"stack_{b}_spd/{b}x{m}x{m}", _stack(_wishart(m), b),
                        CHOLESKY_OPS + EIGH_OPS, hermitian=True)
        yield n, LargeSpec(f"stack_{b}", f"stack_{b}_upper/{b}x{m}x{m}",
                        _stack(_triangular(m, "upper"), b), TRIANGULAR_OPS, triangular="upper")
        m = POLICY_N
        for kind in ("nonfinite", "not_pd", "singular"):
            label = "nonfinite_nan" if kind == "nonfinite" else kind
            yield n, LargeSpec(kind, f"{label}/3x{m}x{m}", _policy_stack(m, kind),
                            _checked_on(kind), hermitian=kind != "singular", policy=kind,
                            bad=1)
        yield n, LargeSpec("singular", f"singular_triangular/3x{m}x{m}", _singular_triangular(m),
                        _checked_on("singular"), triangular="upper", policy="singular", bad=1)


def _checked_on(policy: str) -> tuple[str, ...]:
    """The tier's ops whose failure policy is checked on ``policy`` cases (square stacks:
    qr[complete] would repeat qr)."""
    from conformance.ops import SPECS

    return tuple(name for name in OPS if policy in SPECS[name].policies
                 and name != "qr[complete]")


# ----------------------------------------------------------------------------- κ₂ estimates


def _largest_singular_values(matvec, rmatvec, shape, starts: list[np.ndarray],
                             symmetric: tuple[bool, ...] | None = None) -> list[float]:
    """σ_max of p linear operators M_0..M_{p-1} at once by block Krylov iteration with full
    reorthogonalization and Rayleigh-Ritz (the block Lanczos/Golub-Kahan subspace; Golub and
    Van Loan, Matrix Computations, 4th ed., 10.3.6 and 10.4; Musco and Musco, Randomized
    block Krylov methods, NeurIPS 2015).

    Each problem keeps an orthonormal basis V (n, k) of its Krylov subspace, grown by one
    block of the start blocks' width per step: K(M_iᵀM_i, V₀) (one application of M_i and one of
    M_iᵀ per step), or K(M_i, V₀) for a symmetric M_i (one application). The estimate is
    σ_max(M_i V) = ‖M_i restricted to span V‖₂, the square root of the largest eigenvalue of
    the Gram matrix (M_i V)ᵀ(M_i V) (k x k, updated by one block per step). Since V has
    orthonormal columns, ‖M_i V x‖ ≤ ‖M_i‖ ‖x‖: a lower bound on σ_max(M_i) for every k (up
    to rounding errors), increasing with k and exact once V spans an invariant subspace.

    The p problems run in lockstep, so that each step applies the operators to one (n, q)
    block of the q columns of those still running: one GEMM or one multi-right-hand-side
    triangular solve (level-3 BLAS), one pass over the matrix or its factors per step for
    all of them. Blocks converge in fewer steps than single vectors (a Gaussian matrix's
    κ₂ at n = 2048: 62 passes over A or its LU factors with 4 start vectors, 52 with 8,
    128 with single-vector Lanczos), and at n = 8192 a pass costs about the same for 2 or
    16 columns (memory-bound): fewer, larger BLAS calls, at the price of more flops (10%
    faster on the 2-core CPU machine at n = 8192, 1.6 times slower there at 2048 and 4096,
    where the flops count).

    Args:
        matvec: ``matvec(x, idx)`` -> the columns M_i x_c for the columns c of x (n, q) and
            the problems i = idx[c] (m, q).
        rmatvec: ``rmatvec(y, idx)`` -> M_iᵀ y_c (n, q).
        shape: (m, n) of every M_i.
        starts: p start blocks (n, b).
        symmetric: per problem, whether M_i = M_iᵀ (then m = n and rmatvec is not called
            for it). Default: none.

    Returns:
        The p estimates, in the order of ``starts``. Stops a problem once its estimate grew
        by less than ``TOL`` (relative) in each of two consecutive steps, or its basis has
        ``MAX_DIM`` (or n) columns, or the new block is numerically in the span of the basis
        (an invariant subspace: exact).
    """
    m, n = shape
    p = len(starts)
    symmetric = tuple(symmetric) if symmetric is not None else (False,) * p
    limit = min(MAX_DIM, n)
    bases = [np.zeros((n, 0)) for _ in range(p)]
    images = [np.zeros((m, 0)) for _ in range(p)]
    grams = [np.zeros((0, 0)) for _ in range(p)]
    estimates = [0.0] * p
    quiet = [0] * p  # consecutive steps with a relative growth below TOL
    blocks = [_orthonormal(s, bases[i], limit) for i, s in enumerate(starts)]
    active = [i for i in range(p) if blocks[i].shape[1]]
    while active:
        image = matvec(np.concatenate([blocks[i] for i in active], axis=1),
                       np.concatenate([[i] * blocks[i].shape[1] for i in active]).astype(int))
        parts = np.split(image, np.cumsum([blocks[i].shape[1] for i in active])[:-1], axis=1)
        going, grown = [], {}
        for i, w in zip(active, parts, strict=True):
            if not np.all(np.isfinite(w)):
                estimates[i] = math.inf
                continue
            cross = images[i].T @ w
            grams[i] = np.block([[grams[i], cross], [cross.T, w.T @ w]])
            bases[i] = np.concatenate([bases[i], blocks[i]], axis=1)
            images[i] = np.concatenate([images[i], w], axis=1)
            top = float(np.sqrt(max(scipy.linalg.eigvalsh(grams[i], subset_by_index=[
                grams[i].shape[0] - 1, grams[i].shape[0] - 1], check_finite=False)[0], 0.0)))
            quiet[i] = quiet[i] + 1 if top - estimates[i] <= TOL * top else 0
            estimates[i] = max(estimates[i], top)
            if quiet[i] >= 2 or bases[i].shape[1] >= limit:
                continue
            going.append(i)
            grown[i] = w
        needs = [i for i in going if not symmetric[i]]
        if needs:
            back = rmatvec(np.concatenate([grown[i] for i in needs], axis=1),
                           np.concatenate([[i] * grown[i].shape[1] for i in needs]).astype(int))
            for i, z in zip(needs, np.split(back, np.cumsum(
                    [grown[i].shape[1] for i in needs])[:-1], axis=1), strict=True):
                grown[i] = z
        active = []
        for i in going:
            blocks[i] = _orthonormal(grown[i], bases[i], limit)
            if blocks[i].shape[1]:
                active.append(i)
    return estimates


def _orthonormal(z: np.ndarray, basis: np.ndarray, limit: int) -> np.ndarray:
    """An orthonormal basis of the part of span(z) orthogonal to ``basis`` (orthonormal
    columns), at most ``limit`` columns in basis and result together.

    Two block Gram-Schmidt passes against ``basis``, then the remainder's directions whose
    singular value exceeds 1e-7·‖z‖_F (the others lie in the span already, to that accuracy:
    dropping them only shrinks the subspace), from the eigenvectors of its b x b Gram
    matrix, then one more pass and a Cholesky QR (CholeskyQR2: orthonormal to working
    accuracy). Only (n, k) x (k, b) and (n, b) x (b, b) products: no n x b QR or SVD.
    """
    scale = np.linalg.norm(z)
    if not np.isfinite(scale) or scale == 0:
        return np.zeros((z.shape[0], 0))
    v = z / scale
    for _ in range(2):
        v = v - basis @ (basis.T @ v)
    values, vectors = np.linalg.eigh(v.T @ v)
    keep = values > 1e-14
    keep[: max(int(keep.sum()) - max(limit - basis.shape[1], 0), 0)] = False  # ascending
    if not keep.any():
        return np.zeros((z.shape[0], 0))
    u = v @ (vectors[:, keep] / np.sqrt(values[keep]))
    u = u - basis @ (basis.T @ u)
    try:
        r = np.linalg.cholesky(u.T @ u)
    except np.linalg.LinAlgError:
        return np.zeros((z.shape[0], 0))
    return scipy.linalg.solve_triangular(r, u.T, lower=True, check_finite=False).T


def _solver(a: np.ndarray, hermitian: bool, triangular: str | None):
    """(solve(x), solve_transposed(x), spd) for a square float64 matrix: the triangle itself,
    a Cholesky factor (Hermitian and positive definite) or an LU factorization; None for the
    solves if the matrix is singular."""
    if triangular is not None:
        lower = triangular == "lower"
        if np.any(np.diagonal(a) == 0):
            return None, None, False

        def tri(trans):
            return lambda x: scipy.linalg.solve_triangular(a, x, lower=lower, trans=trans,
                                                           check_finite=False)

        return tri(0), tri(1), False
    if hermitian:
        try:
            c = scipy.linalg.cho_factor(a, check_finite=False)
        except np.linalg.LinAlgError:
            c = None
        if c is not None:
            def chol(x):
                return scipy.linalg.cho_solve(c, x, check_finite=False)

            return chol, chol, True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # exactly singular
        lu = scipy.linalg.lu_factor(a, check_finite=False)
    if np.any(np.diagonal(lu[0]) == 0):
        return None, None, False
    return (lambda x: scipy.linalg.lu_solve(lu, x, check_finite=False),
            lambda x: scipy.linalg.lu_solve(lu, x, trans=1, check_finite=False), False)


def equilibration(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column scale vectors r, c (powers of two) with ``zoo._equilibrated(a)`` equal
    to ``r[:, None] * a * c[None, :]`` for one matrix (``zoo.equilibration_scales``)."""
    r, c = zoo.equilibration_scales(a)
    return r[:, 0], c[0]


def estimate_cond(a: np.ndarray, *, hermitian: bool = False, triangular: str | None = None,
                  rng: np.random.Generator | None = None, scaled: bool = True):
    """(κ₂, equilibrated κ₂, SPD) of one float64 matrix without an SVD.

    Args:
        a: (M, N) finite float64.
        hermitian: try a Cholesky factorization first (it also decides SPD).
        triangular: "upper"/"lower": the matrix is its own factorization.
        rng: the start vectors' generator (default: seeded 0, reproducible).
        scaled: also estimate κ₂ of the equilibrated matrix (square only; else None).

    Returns:
        ``(cond, cond_scaled, spd)``: lower bounds on the 2-norm condition numbers that
        converge to them (module docstring), inf for a singular matrix; cond_scaled is None
        when not asked or not square; spd is True if a float64 Cholesky of ``a`` exists.

    Cost: one O(n³) factorization (LU n³·2/3, Cholesky n³/3; none for a triangle; for M ≠ N a
    QR of the M x N matrix for its triangle R, σ(A) = σ(R)) plus O(n²) per Lanczos step.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    m, n = a.shape
    if a.size == 0:
        return 1.0, (1.0 if scaled and m == n else None), False
    if m != n:  # σ(A) = σ(R) for the triangle R of A = QR (of Aᵀ if wide)
        r = scipy.linalg.qr(a if m > n else a.T, mode="r", check_finite=False)[0]
        k = min(m, n)
        return estimate_cond(r[:k, :k], triangular="upper", rng=rng, scaled=False)[0], None, False
    solve, solve_t, spd = _solver(a, hermitian, triangular)
    # (row, col) scalings B = diag(row) A diag(col), B⁻¹ = diag(1/col) A⁻¹ diag(1/row): A
    # itself, then the equilibrated matrix; B is symmetric where A is and row == col (then
    # its Krylov space is that of B, one application per step, else that of BᵀB).
    ones = np.ones(n)
    scalings = [(ones, ones)] + ([equilibration(a)] if scaled else [])
    rows = np.stack([r for r, _ in scalings], axis=1)  # (n, p)
    cols = np.stack([c for _, c in scalings], axis=1)
    symmetric = hermitian and triangular is None and np.array_equal(a, a.T)
    same = tuple(symmetric and np.array_equal(r, c) for r, c in scalings)
    width = BLOCK[0] if n < BLOCK[1] else BLOCK[2]
    starts = [[rng.standard_normal((n, width)) for _ in range(1 if solve is None else 2)]
              for _ in scalings]
    smax = _largest_singular_values(lambda x, i: rows[:, i] * (a @ (cols[:, i] * x)),
                                    lambda y, i: cols[:, i] * (a.T @ (rows[:, i] * y)),
                                    (n, n), [s[0] for s in starts], same)
    if solve is None:
        inv = [math.inf] * len(scalings)
    else:
        inv = _largest_singular_values(lambda y, i: solve(y / rows[:, i]) / cols[:, i],
                                       lambda x, i: solve_t(x / cols[:, i]) / rows[:, i],
                                       (n, n), [s[1] for s in starts], same)
    kappas = [s * v if np.isfinite(v) else math.inf for s, v in zip(smax, inv, strict=True)]
    cond = kappas[0]
    cond_scaled = kappas[1] if scaled else None
    return cond, cond_scaled, spd


# ----------------------------------------------------------------------------- cases


def cases(dtype: str, seed: int = 0, classes: Collection[str] | None = None,
          ops: Collection[str] | None = None, sizes: Collection[int] | None = None,
          log: TextIO | None = None, phases=None) -> list[zoo.Case]:
    """The tier's cases for ``dtype`` (none unless float32), as ``zoo.cases`` builds them:
    seeded by name, rounded to the dtype, Hermitian ones symmetrized after rounding.

    Args:
        dtype: "float32" (other dtypes have no case).
        seed: suite seed.
        classes, ops, sizes: only the cases of these classes, naming one of these ops and
            planned under one of these orders (``--classes``, ``--ops``, ``--sizes``; None:
            all).
        log: a text file (``--trace``) that gets each case's build times (matrix, κ
            estimates), flushed before and after, so a run cut off while building shows
            where.
        phases: ``conformance.runner.Phases`` (or anything with its ``add``) that gets
            the wall and CPU seconds of the phases "matrix" and "condition" per order.
    """
    if dtype not in DTYPES:
        return []
    out = []
    for spec in specs(sizes):
        if classes is not None and spec.cls not in classes:
            continue
        if ops is not None and not set(spec.ops) & set(ops):
            continue
        if log is not None:
            log.write(f"build {spec.name} ...")
            log.flush()
        start, start_cpu = time.perf_counter(), os.times()
        case_seed = zlib.crc32(f"{seed}:{spec.name}:False".encode())
        rng = np.random.default_rng(case_seed)
        with np.errstate(invalid="ignore", over="ignore"):
            a = zoo.round_to(np.asarray(spec.build(rng)), dtype)
            if spec.hermitian:
                a = zoo.symmetrize(a)
        built, built_cpu = time.perf_counter(), os.times()
        cond, cond_scaled, spd = _analyse(a, spec, np.random.default_rng([case_seed, 1]))
        done, done_cpu = time.perf_counter(), os.times()
        if phases is not None:
            for phase, (w0, c0), (w1, c1) in (("matrix", (start, start_cpu), (built, built_cpu)),
                                              ("condition", (built, built_cpu), (done, done_cpu))):
                phases.add(phase, spec.order, w1 - w0, c1.user + c1.system - c0.user - c0.system,
                           c1.system - c0.system)
        if log is not None:
            log.write(f" matrix {built - start:.2f} s, κ {done - built:.2f} s"
                      f" (κ₂ {cond:.3g})\n")
            log.flush()
        out.append(zoo.Case(spec.cls, spec.name, dtype, a, hermitian=spec.hermitian, spd=spd,
                            triangular=spec.triangular, cond=cond, cond_scaled=cond_scaled,
                            policy=spec.policy, bad=spec.bad, seed=case_seed, ops=spec.ops,
                            order=spec.order))
    return out


def needs_scaled(ops: tuple[str, ...]) -> bool:
    """Whether any of ``ops`` runs only on matrices not singular to working precision, which
    ``conformance.ops.nonsingular`` decides from ``Case.cond_scaled`` (QR, Cholesky and
    lstsq[gels] use ``Case.cond``)."""
    return not set(ops) <= set(QR_OPS + CHOLESKY_OPS + GELS_OPS)


def _analyse(a: np.ndarray, spec: LargeSpec, rng: np.random.Generator):
    """(cond, cond_scaled, spd) of a case: the worst over its stack, without the failing
    entry of a policy stack; the construction's κ₂ where it is known. cond_scaled is None
    where no op of the case reads it (Cholesky and QR only) or the matrix is not square."""
    stack = a.reshape((-1,) + a.shape[-2:])
    keep = [i for i in range(stack.shape[0]) if i != spec.bad]
    conds, scaled, spds = [], [], []
    for i in keep:
        c, s, p = estimate_cond(stack[i], hermitian=spec.hermitian, triangular=spec.triangular,
                                rng=rng, scaled=needs_scaled(spec.ops))
        conds.append(c)
        scaled.append(s)
        spds.append(p)
    cond = spec.cond if spec.cond is not None else max(conds)
    cond_scaled = None if None in scaled else max(scaled)
    return cond, cond_scaled, spec.hermitian and all(spds)


def class_names() -> list[str]:
    """The tier's matrix classes, in run order."""
    return list(dict.fromkeys(s.cls for s in specs()))


def plan_table(sizes: Collection[int] | None = None
               ) -> list[tuple[str, tuple[int, ...], tuple[str, ...]]]:
    """(case name, shape, ops) of every case (of ``sizes``; None: all), without building a matrix
    (``--list``)."""
    out = []
    for s in specs(sizes):
        shape = tuple(int(x) for x in s.name.split("/")[1].split("x"))
        out.append((s.name, shape, s.ops))
    return out


# ----------------------------------------------------------------------------- run time

# Host work of each op per matrix, in float64 flops / n³ (M·N² for a rectangular one): the
# float64 reference and the float32 LAPACK peer (counted half), and the metric products
# (2 per n x n GEMM: Q R and QᵀQ twice for qr, P L U and X A twice for lu and inv, L Lᵀ
# twice (SYRK, 1 each) for the Cholesky ops).
HOST_FLOPS = {"qr": 12.0, "qr[complete]": 16.0, "cholesky": 2.5, "cholesky[upper]": 2.5,
              "cho_factor": 2.5, "cho_solve": 0.5, "lu": 5.0, "lu_factor": 5.0,
              "lu_solve": 1.0, "solve": 1.0, "solve[refine]": 1.0, "solve[vector]": 1.0,
              "inv": 7.0, "det": 1.0, "slogdet": 1.0, "solve_triangular": 0.0,
              "solve_triangular[T]": 0.0, "lstsq[gels]": 3.0,
              # syevd's tridiagonalization runs at a fraction of the GEMM rate: the float64
              # reference and the float32 peer (9n³ and 4n³/3 flops each) count thrice,
              # plus the metrics' products (A V, VᵀV) for eigh.
              "eigh": 40.0, "eigvalsh": 8.0,
              # gesdd likewise (about 22n³ with vectors, 8n³/3 without, counted thrice),
              # plus U Σ Vᵀ, UᵀU and VᵀV for svd.
              "svd[reduced]": 70.0, "svdvals": 10.0}
# Building each class's matrix and its κ estimate's factorization (float64 flops / n³ per
# matrix; the stacks by kind: Gaussian (LU), SPD (GEMM, Cholesky), triangular (none)).
BUILD_FLOPS = {"gaussian": 0.7, "spd_wishart": 1.4, "triangular": 0.0, "cond_1e3": 8.0,
               "cond_1e5": 8.0, "spd_cond_1e3": 6.0, "tall": 1.4, "nonfinite": 1.4,
               "not_pd": 1.4, "singular": 1.0, "symmetric": 0.7}
# The host's LAPACK and metric products run at this fraction of its measured GEMM rate.
FLOP_EFFICIENCY = 0.5
# Single-threaded NumPy passes over an n x n float64 array per op (conversions, roundings,
# differences and norms of the metrics) and per matrix built (rounding, symmetrizing,
# equilibration scales, and the κ estimate's 60-150 passes over the matrix or its factors,
# each about two elementwise passes). With these three constants the model is 1.2-1.4
# times below the host times measured on the 2-core CPU machine at n = 2048 and 8192.
OP_PASSES = 60
BUILD_PASSES = 300


def keep_freed_memory() -> str:
    """Make glibc's malloc keep the memory freed by large arrays for reuse: no mmap per
    allocation (M_MMAP_MAX = 0) and no trim below 2 GiB free at the top of the heap
    (M_TRIM_THRESHOLD), so the n x n float64 temporaries of the references and metrics
    (512 MiB each at n = 8192) reuse pages instead of faulting fresh ones in every time:
    page faults are costly in a virtual machine (on the 2-core CPU machine, itself a
    Firecracker VM, 20 rounds of two 4096 x 4096 temporaries took 2.1-2.6 s with faults and
    0.9-1.3 s without). Returns what was done, "" where malloc is not glibc's."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or not hasattr(os, "confstr"):
        return ""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return ""
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
        ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1
    except (OSError, ValueError, AttributeError):
        return ""
    return "malloc keeps freed memory (mallopt M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB)" if ok \
        else ""


def host_rates() -> tuple[float, float, float]:
    """(float64 GEMM Gflop/s, CPU/wall of that GEMM (cores busy), elementwise passes over a
    2048 x 2048 float64 array per second), measured now (about a second)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2048, 2048)), rng.standard_normal((2048, 2048))
    a @ b  # warm-up: BLAS threads start
    wall, cpu = time.perf_counter(), time.process_time()
    a @ b
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = np.empty_like(a)
    start = time.perf_counter()
    for _ in range(5):
        np.subtract(a, b, out=out)
    passes = 5 / (time.perf_counter() - start)
    return 2 * 2048**3 / wall / 1e9, cpu / wall, passes


def host_summary(rates: tuple[float, float, float] | None = None) -> str:
    """What decides the tier's host time: CPUs (and a cgroup CPU quota), memory, the BLAS
    libraries and their threads (threadpoolctl, where installed), the thread environment
    variables, and the GEMM and elementwise rates (``host_rates``; measured now unless
    given)."""
    from pathlib import Path

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    lines = [f"[conformance] host: {os.cpu_count()} CPUs, {usable} usable by this process"]
    quota = Path("/sys/fs/cgroup/cpu.max")
    if quota.exists():
        lines[0] += f", cgroup cpu.max {quota.read_text().strip()!r}"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total = [x for x in meminfo.read_text().splitlines() if x.startswith("MemTotal")]
        lines[0] += f", {' '.join(total[0].split()[1:]) if total else '?'} MemTotal"
    env = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                            "MKL_NUM_THREADS") if k in os.environ]
    if env:
        lines.append("  environment: " + " ".join(env))
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            lines.append(f"  {info['internal_api']} {info.get('version')}: "
                         f"{info['num_threads']} threads ({Path(info['filepath']).name})")
    except ImportError:
        lines.append("  BLAS threads: unknown (threadpoolctl is not installed)")
    rate, busy, passes = host_rates() if rates is None else rates
    lines.append(f"  float64 GEMM n = 2048: {rate:.0f} Gflop/s on {busy:.1f} cores; "
                 f"{passes:.0f} elementwise passes/s over 2048 x 2048 float64")
    return "\n".join(lines)


def estimate(sizes: Collection[int] | None = None, classes: Collection[str] | None = None,
             ops: Collection[str] | None = None,
             rates: tuple[float, float, float] | None = None) -> dict[int, float]:
    """Estimated host seconds (build, references, metrics; not the ops) per order of the
    planned cases: ``HOST_FLOPS`` and ``BUILD_FLOPS`` at ``FLOP_EFFICIENCY`` times the
    measured GEMM rate plus ``OP_PASSES`` and ``BUILD_PASSES`` elementwise passes at the
    measured pass rate (scaled by n²). A model (the metrics' passes vary by op): the
    per-phase times printed at the end of a run are the measurement."""
    rate, _, passes = host_rates() if rates is None else rates
    out: dict[int, float] = {}
    for spec in specs(sizes):
        if (classes is not None and spec.cls not in classes) or (
                ops is not None and not set(spec.ops) & set(ops)):
            continue
        shape = tuple(int(x) for x in spec.name.split("/")[1].split("x"))
        batch = math.prod(shape[:-2])
        m, n = shape[-2:]
        cube = batch * max(m, n) * min(m, n) ** 2 / (FLOP_EFFICIENCY * rate * 1e9)
        square = batch * m * n / 2048**2 / passes
        names = [o for o in spec.ops if ops is None or o in ops or o.split("[")[0] in ops]
        build = BUILD_FLOPS.get(spec.cls, 1.4 if spec.hermitian else 0.0 if spec.triangular
                                else 0.7)
        seconds = cube * (build + sum(HOST_FLOPS[o] for o in names))
        seconds += square * (BUILD_PASSES + OP_PASSES * len(names))
        out[spec.order] = out.get(spec.order, 0.0) + seconds
    return out


def phase_table(phases, seconds: float | None = None) -> str:
    """The seconds of each phase per order (``conformance.runner.Phases``) as text: wall
    clock, then CPU/wall (cores busy) and the system share of the CPU time."""
    from conformance.runner import PHASES

    if phases is None or not phases.wall:
        return "[conformance] no phase timings"
    orders = sorted({n for _, n in phases.wall})
    lines = ["[conformance] seconds per phase: wall (cores busy = CPU/wall, system share of "
             "the CPU time)",
             f"  {'order':>6} " + " ".join(f"{p:>20}" for p in PHASES) + f" {'total':>8}"]
    for n in orders:
        cells, total = [], 0.0
        for p in PHASES:
            wall, cpu = phases.wall.get((p, n), 0.0), phases.cpu.get((p, n), 0.0)
            sys = phases.sys.get((p, n), 0.0)
            total += wall
            cells.append(f"{wall:8.1f} ({cpu / wall if wall else 0:4.1f}, "
                         f"{sys / cpu if cpu else 0:3.0%})".rjust(20))
        lines.append(f"  {n:>6} " + " ".join(cells) + f" {total:8.1f}")
    if seconds is not None:
        lines.append(f"  whole run {seconds:.1f} s")
    return "\n".join(lines)
