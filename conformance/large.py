"""The large tier: the blocked large-matrix GPU paths at n = 2048, 4096 and 8192, float32.

``python -m conformance --large --device gpu`` runs the ops whose GPU implementation at these
orders is a blocked graph (``mlx_linalg._gpu.blocked_rules``: every op of ``RULES`` takes over
from ``CROSSOVER[op]`` <= 2048) on a few matrix classes per size, with the metrics of the
other tiers. Ops without a blocked path (eigh, svd, eig, polar, lstsq's default driver, the
norms and products, ...) run on the CPU (LAPACK) above n = 64 on a GPU machine too, and at
n = 8192 a single one takes minutes there; this tier skips them (``SKIPPED``).

Cost. Every float64 reference, float32 LAPACK peer and metric product is computed on the host
(a LAPACK call, and for some metrics an n x n float64 GEMM such as Q R or X A), so the plan
puts the classes that cost a QR of n x n to build (Haar factors) at 2048 and 4096 only, and
runs each op once at 8192 (``specs`` says which variants stay below). docs/conformance.md
"Large tier" gives the case list and the estimate of its running time.

Condition numbers. The zoo's ``_analyse`` takes SVDs (O(n^3) with a large constant; minutes
at n = 8192). Here ``Case.cond`` is the construction's own κ₂ for the prescribed-spectrum
classes (``cond_1eK``, ``spd_cond_1e3``) and otherwise :func:`estimate_cond`: Golub-Kahan-
Lanczos bidiagonalization of A for σ_max and of A⁻¹ (through one float64 LU, Cholesky or the
triangle itself) for 1/σ_min. Its Ritz values approach the extreme singular values from
inside, so the estimate is a lower bound on κ₂ (up to rounding errors of relative order
κ₂·2⁻⁵³) that converges to it: within 6e-5 of SVDs at n = 128..2048 for every class here
(tests/test_conformance_large.py checks 2e-4), so the κ·u allowance of the forward guard
can only get tighter than with the exact κ₂, never looser. ``Case.cond_scaled`` (the κ₂
after row and column equilibration, which decides which square matrices are singular to
working precision) is estimated the same way through the same factorization, for the cases
whose ops read it. ``Case.spd`` is "a float64 Cholesky of the rounded matrix exists".
"""

import math
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np
import scipy.linalg

from conformance import zoo

# The orders of the tier (small, medium, large). Tests shrink them to run the plan on a CPU.
SIZES = (2048, 4096, 8192)
# ``--sizes``: build only the cases planned under these orders (None: all). Each case belongs
# to one order of SIZES (LargeSpec.order): the stacks, the policy stacks and the tall
# matrix to the smallest.
ONLY_SIZES: frozenset[int] | None = None
# ``--trace``: a text file that gets each case's build time (matrix, κ estimates), flushed.
BUILD_LOG: TextIO | None = None
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
# Every op of the tier, in report order (OpSpec names of conformance.ops).
OPS = QR_OPS + CHOLESKY_OPS + LU_OPS + ("solve[vector]",) + TRIANGULAR_OPS + GELS_OPS

SKIPPED = ("eigh, eigvalsh, eig, eigvals, svd, svdvals, polar, pinv, matrix_rank, orth, "
           "null_space, cond, lstsq (gelsd), matrix_power, norms, products: no blocked GPU "
           "path (CPU LAPACK above n = 64, minutes at n = 8192)")

# Golub-Kahan-Lanczos: at most this many steps, stopping once σ_max of the bidiagonal
# changed by less than TOL (relative) over the last CHECK_EVERY steps.
MAX_STEPS = 100
CHECK_EVERY = 4
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


def specs() -> Iterator[LargeSpec]:
    """The tier's cases, smallest order first (module constants read at call time), only
    those of the orders in ``ONLY_SIZES`` when it is set."""
    for order, spec in _all_specs():
        if ONLY_SIZES is None or order in ONLY_SIZES:
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
    det (slogdet's; it overflows float32 for a Gaussian matrix) and cholesky[upper]
    (cholesky, transposed) are left to the smaller orders.
    """
    small, medium, large = SIZES
    lu_qr = LU_OPS + ("qr",)
    gaussian = {small: lu_qr + ("solve[vector]",) + GELS_OPS, medium: lu_qr,
                large: ("lu_factor", "solve", "solve[refine]", "inv", "slogdet", "qr")}
    for n, cholesky in ((small, CHOLESKY_OPS), (medium, ("cholesky", "cholesky[upper]",
                                                         "cho_solve")),
                        (large, ("cholesky", "cho_solve"))):
        yield n, LargeSpec("gaussian", f"gaussian/{n}x{n}", _gaussian(n, n), gaussian[n])
        # solve[refine] converges on the GPU's TF32 factors only where κ·2⁻¹¹ < 1: here
        # (κ ≈ 5), not on the Gaussian matrices (κ ≈ 10⁴-10⁵), where it falls back.
        yield n, LargeSpec("spd_wishart", f"spd_wishart/{n}x{n}", _wishart(n),
                        cholesky + ("solve[refine]",), hermitian=True)
        for which in ("upper", "lower"):
            yield n, LargeSpec("triangular", f"{which}/{n}x{n}", _triangular(n, which),
                            TRIANGULAR_OPS, triangular=which)
        for cond in {small: (1e3, 1e5), medium: (1e3,), large: ()}[n]:
            label = f"cond_1e{round(math.log10(cond))}"
            yield n, LargeSpec(label, f"{label}/{n}x{n}", _prescribed(n, cond), lu_qr + GELS_OPS,
                            cond=cond)
        if n != small:
            continue
        yield n, LargeSpec("spd_cond_1e3", f"spd_cond_1e3/{n}x{n}",
                        lambda r, n=n: zoo.spd_from(r, n, 1e3, False), CHOLESKY_OPS,
                        hermitian=True, cond=1e3)
        yield n, LargeSpec("tall", f"tall/{2 * n}x{n}", _gaussian(2 * n, n), QR_OPS + GELS_OPS)
        b, m = GAUSSIAN_STACK
        yield n, LargeSpec(f"stack_{b}", f"stack_{b}/{b}x{m}x{m}", _stack(_gaussian(m, m), b),
                        lu_qr)
        b, m = SMALL_STACK
        yield n, LargeSpec(f"stack_{b}", f"stack_{b}_spd/{b}x{m}x{m}", _stack(_wishart(m), b),
                        CHOLESKY_OPS, hermitian=True)
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


def _largest_singular_values(matvec, rmatvec, shape, starts: np.ndarray) -> list[float]:
    """σ_max of p linear operators M_0..M_{p-1} at once by Golub-Kahan-Lanczos
    bidiagonalization with full reorthogonalization (Golub and Van Loan, Matrix Computations,
    4th ed., 10.4): σ_max of the k x k bidiagonal B_k = U_kᵀ M_i V_k is a lower bound that
    increases to σ_max(M_i).

    The p iterations are independent (each its own start vector, bidiagonal and stopping
    rule) but run in lockstep, so that each step applies the operators to an (n, q) block of
    the q still running: one GEMM or one multi-right-hand-side triangular solve (level-3 BLAS)
    instead of q level-2 calls. Each column's numbers are those of a single-vector run.

    Args:
        matvec: ``matvec(x, idx)`` -> M_i x_c for the columns c of x (n, q) and the problems
            i = idx[c] (m, q).
        rmatvec: ``rmatvec(y, idx)`` -> M_iᵀ y_c (n, q).
        shape: (m, n) of every M_i.
        starts: (p, n) start vectors.

    Returns:
        The p estimates, in the order of ``starts``.
    """
    m, n = shape
    p = len(starts)
    steps = min(MAX_STEPS, m, n)
    us, vs = np.zeros((p, steps, m)), np.zeros((p, steps + 1, n))
    alpha, beta = np.zeros((p, steps)), np.zeros((p, steps))
    vs[:, 0] = starts / np.linalg.norm(starts, axis=1, keepdims=True)
    history: list[list[float]] = [[] for _ in range(p)]
    active = list(range(p))
    for j in range(steps):
        if not active:
            break
        image = matvec(vs[active, j].T, active)
        running = []
        for c, i in enumerate(active):
            u = image[:, c] - (beta[i, j - 1] * us[i, j - 1] if j else 0)
            u -= us[i, :j].T @ (us[i, :j] @ u)
            alpha[i, j] = np.linalg.norm(u)
            if alpha[i, j] == 0 or not np.isfinite(alpha[i, j]):
                continue
            us[i, j] = u / alpha[i, j]
            running.append(i)
        active = []
        if not running:
            break
        back = rmatvec(us[running, j].T, running)
        for c, i in enumerate(running):
            w = back[:, c] - alpha[i, j] * vs[i, j]
            w -= vs[i, : j + 1].T @ (vs[i, : j + 1] @ w)
            beta[i, j] = np.linalg.norm(w)
            k = j + 1
            if beta[i, j] <= 1e-14 * alpha[i, j] or k == steps or k % CHECK_EVERY == 0:
                bidiagonal = np.diag(alpha[i, :k]) + np.diag(beta[i, : k - 1], 1)
                history[i].append(float(scipy.linalg.svdvals(bidiagonal)[0]))
                if beta[i, j] <= 1e-14 * alpha[i, j]:  # an invariant subspace: exact values
                    continue
                if len(history[i]) > 1 and history[i][-1] - history[i][-2] <= TOL * history[i][-1]:
                    continue
            vs[i, j + 1] = w / beta[i, j]
            active.append(i)
    return [h[-1] if h else (float(alpha[i, 0]) if alpha[i, 0] > 0 else 0.0)
            for i, h in enumerate(history)]


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
    # itself, then the equilibrated matrix. The start vectors are drawn in the order of
    # one run at a time (σ_max(B), then σ_max(B⁻¹), per scaling).
    ones = np.ones(n)
    scalings = [(ones, ones)] + ([equilibration(a)] if scaled else [])
    rows = np.stack([r for r, _ in scalings], axis=1)  # (n, p)
    cols = np.stack([c for _, c in scalings], axis=1)
    starts = [[rng.standard_normal(n) for _ in range(1 if solve is None else 2)]
              for _ in scalings]
    smax = _largest_singular_values(lambda x, i: rows[:, i] * (a @ (cols[:, i] * x)),
                                    lambda y, i: cols[:, i] * (a.T @ (rows[:, i] * y)),
                                    (n, n), np.stack([s[0] for s in starts]))
    if solve is None:
        inv = [math.inf] * len(scalings)
    else:
        inv = _largest_singular_values(lambda y, i: solve(y / rows[:, i]) / cols[:, i],
                                       lambda x, i: solve_t(x / cols[:, i]) / rows[:, i],
                                       (n, n), np.stack([s[1] for s in starts]))
    kappas = [s * v if np.isfinite(v) else math.inf for s, v in zip(smax, inv, strict=True)]
    cond = kappas[0]
    cond_scaled = kappas[1] if scaled else None
    return cond, cond_scaled, spd


# ----------------------------------------------------------------------------- cases


def cases(dtype: str, seed: int = 0, classes: set[str] | None = None,
          ops: set[str] | None = None, sizes: set[int] | None = None) -> list[zoo.Case]:
    """The tier's cases for ``dtype`` (none unless float32), as ``zoo.cases`` builds them:
    seeded by name, rounded to the dtype, Hermitian ones symmetrized after rounding; only
    those of ``classes``, naming one of ``ops`` and planned under one of ``sizes`` (None: all;
    ``sizes`` None also means ``ONLY_SIZES``). Each build's times go to ``BUILD_LOG``."""
    if dtype not in DTYPES:
        return []
    out = []
    for spec in specs():
        if classes is not None and spec.cls not in classes:
            continue
        if ops is not None and not set(spec.ops) & set(ops):
            continue
        if sizes is not None and spec.order not in sizes:
            continue
        if BUILD_LOG is not None:
            BUILD_LOG.write(f"build {spec.name} ...")
            BUILD_LOG.flush()
        start = time.perf_counter()
        case_seed = zlib.crc32(f"{seed}:{spec.name}:False".encode())
        rng = np.random.default_rng(case_seed)
        with np.errstate(invalid="ignore", over="ignore"):
            a = zoo.round_to(np.asarray(spec.build(rng)), dtype)
            if spec.hermitian:
                a = zoo.symmetrize(a)
        built = time.perf_counter()
        cond, cond_scaled, spd = _analyse(a, spec, np.random.default_rng([case_seed, 1]))
        if BUILD_LOG is not None:
            BUILD_LOG.write(f" matrix {built - start:.2f} s, κ {time.perf_counter() - built:.2f} s"
                            f" (κ₂ {cond:.3g})\n")
            BUILD_LOG.flush()
        out.append(zoo.Case(spec.cls, spec.name, dtype, a, hermitian=spec.hermitian, spd=spd,
                            triangular=spec.triangular, cond=cond, cond_scaled=cond_scaled,
                            policy=spec.policy, bad=spec.bad, seed=case_seed, ops=spec.ops))
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


def plan_table() -> list[tuple[str, tuple[int, ...], tuple[str, ...]]]:
    """(case name, shape, ops) of every case (of ``ONLY_SIZES``), without building a matrix
    (``--list``)."""
    out = []
    for s in specs():
        shape = tuple(int(x) for x in s.name.split("/")[1].split("x"))
        out.append((s.name, shape, s.ops))
    return out
