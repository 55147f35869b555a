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
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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
    """The tier's cases, smallest order first (module constants read at call time).

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
        yield LargeSpec("gaussian", f"gaussian/{n}x{n}", _gaussian(n, n), gaussian[n])
        # solve[refine] converges on the GPU's TF32 factors only where κ·2⁻¹¹ < 1: here
        # (κ ≈ 5), not on the Gaussian matrices (κ ≈ 10⁴-10⁵), where it falls back.
        yield LargeSpec("spd_wishart", f"spd_wishart/{n}x{n}", _wishart(n),
                        cholesky + ("solve[refine]",), hermitian=True)
        for which in ("upper", "lower"):
            yield LargeSpec("triangular", f"{which}/{n}x{n}", _triangular(n, which),
                            TRIANGULAR_OPS, triangular=which)
        for cond in {small: (1e3, 1e5), medium: (1e3,), large: ()}[n]:
            label = f"cond_1e{round(math.log10(cond))}"
            yield LargeSpec(label, f"{label}/{n}x{n}", _prescribed(n, cond), lu_qr + GELS_OPS,
                            cond=cond)
        if n != small:
            continue
        yield LargeSpec("spd_cond_1e3", f"spd_cond_1e3/{n}x{n}",
                        lambda r, n=n: zoo.spd_from(r, n, 1e3, False), CHOLESKY_OPS,
                        hermitian=True, cond=1e3)
        yield LargeSpec("tall", f"tall/{2 * n}x{n}", _gaussian(2 * n, n), QR_OPS + GELS_OPS)
        b, m = GAUSSIAN_STACK
        yield LargeSpec(f"stack_{b}", f"stack_{b}/{b}x{m}x{m}", _stack(_gaussian(m, m), b),
                        lu_qr)
        b, m = SMALL_STACK
        yield LargeSpec(f"stack_{b}", f"stack_{b}_spd/{b}x{m}x{m}", _stack(_wishart(m), b),
                        CHOLESKY_OPS, hermitian=True)
        yield LargeSpec(f"stack_{b}", f"stack_{b}_upper/{b}x{m}x{m}",
                        _stack(_triangular(m, "upper"), b), TRIANGULAR_OPS, triangular="upper")
        m = POLICY_N
        for kind in ("nonfinite", "not_pd", "singular"):
            label = "nonfinite_nan" if kind == "nonfinite" else kind
            yield LargeSpec(kind, f"{label}/3x{m}x{m}", _policy_stack(m, kind),
                            _checked_on(kind), hermitian=kind != "singular", policy=kind,
                            bad=1)
        yield LargeSpec("singular", f"singular_triangular/3x{m}x{m}", _singular_triangular(m),
                        _checked_on("singular"), triangular="upper", policy="singular", bad=1)


def _checked_on(policy: str) -> tuple[str, ...]:
    """The tier's ops whose failure policy is checked on ``policy`` cases (square stacks:
    qr[complete] would repeat qr)."""
    from conformance.ops import SPECS

    return tuple(name for name in OPS if policy in SPECS[name].policies
                 and name != "qr[complete]")


# ----------------------------------------------------------------------------- κ₂ estimates


def _largest_singular_value(matvec, rmatvec, shape, rng) -> float:
    """σ_max of a linear operator by Golub-Kahan-Lanczos bidiagonalization with full
    reorthogonalization (Golub and Van Loan, Matrix Computations, 4th ed., 10.4): σ_max of
    the k x k bidiagonal B_k = U_kᵀ A V_k is a lower bound that increases to σ_max(A)."""
    m, n = shape
    steps = min(MAX_STEPS, m, n)
    us, vs = np.zeros((steps, m)), np.zeros((steps + 1, n))
    alpha, beta = np.zeros(steps), np.zeros(steps)
    v = rng.standard_normal(n)
    vs[0] = v / np.linalg.norm(v)
    history: list[float] = []
    for j in range(steps):
        u = matvec(vs[j]) - (beta[j - 1] * us[j - 1] if j else 0)
        u -= us[:j].T @ (us[:j] @ u)
        alpha[j] = np.linalg.norm(u)
        if alpha[j] == 0 or not np.isfinite(alpha[j]):
            break
        us[j] = u / alpha[j]
        w = rmatvec(us[j]) - alpha[j] * vs[j]
        w -= vs[: j + 1].T @ (vs[: j + 1] @ w)
        beta[j] = np.linalg.norm(w)
        k = j + 1
        if beta[j] <= 1e-14 * alpha[j] or k == steps or k % CHECK_EVERY == 0:
            bidiagonal = np.diag(alpha[:k]) + np.diag(beta[: k - 1], 1)
            history.append(float(scipy.linalg.svdvals(bidiagonal)[0]))
            if beta[j] <= 1e-14 * alpha[j]:  # an invariant subspace: B_k's values are exact
                break
            if len(history) > 1 and history[-1] - history[-2] <= TOL * history[-1]:
                break
        vs[j + 1] = w / beta[j]
    if not history:
        return float(alpha[0]) if alpha[0] > 0 else 0.0
    return history[-1]


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
    to ``r[:, None] * a * c[None, :]`` for one matrix (LAPACK xGEEQU-style)."""
    rows = np.max(np.abs(a), axis=-1)
    r = np.where(rows > 0, 2.0 ** -np.floor(np.log2(np.where(rows > 0, rows, 1))), 1)
    cols = np.max(np.abs(a * r[:, None]), axis=-2)
    c = np.where(cols > 0, 2.0 ** -np.floor(np.log2(np.where(cols > 0, cols, 1))), 1)
    return r, c


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

    def kappa(row: np.ndarray, col: np.ndarray) -> float:
        # B = diag(row) A diag(col), B⁻¹ = diag(1/col) A⁻¹ diag(1/row).
        smax = _largest_singular_value(lambda x: row * (a @ (col * x)),
                                       lambda y: col * (a.T @ (row * y)), (n, n), rng)
        if solve is None:
            return math.inf
        inv = _largest_singular_value(lambda y: solve(y / row) / col,
                                      lambda x: solve_t(x / col) / row, (n, n), rng)
        if not np.isfinite(inv):
            return math.inf
        return smax * inv

    ones = np.ones(n)
    cond = kappa(ones, ones)
    cond_scaled = kappa(*equilibration(a)) if scaled else None
    return cond, cond_scaled, spd


# ----------------------------------------------------------------------------- cases


def cases(dtype: str, seed: int = 0, classes: set[str] | None = None,
          ops: set[str] | None = None) -> list[zoo.Case]:
    """The tier's cases for ``dtype`` (none unless float32), as ``zoo.cases`` builds them:
    seeded by name, rounded to the dtype, Hermitian ones symmetrized after rounding; only
    those of ``classes`` and naming one of ``ops`` (None: all)."""
    if dtype not in DTYPES:
        return []
    out = []
    for spec in specs():
        if classes is not None and spec.cls not in classes:
            continue
        if ops is not None and not set(spec.ops) & set(ops):
            continue
        case_seed = zlib.crc32(f"{seed}:{spec.name}:False".encode())
        rng = np.random.default_rng(case_seed)
        with np.errstate(invalid="ignore", over="ignore"):
            a = zoo.round_to(np.asarray(spec.build(rng)), dtype)
            if spec.hermitian:
                a = zoo.symmetrize(a)
        cond, cond_scaled, spd = _analyse(a, spec, np.random.default_rng([case_seed, 1]))
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
    """(case name, shape, ops) of every case, without building a matrix (``--list``)."""
    out = []
    for s in specs():
        shape = tuple(int(x) for x in s.name.split("/")[1].split("x"))
        out.append((s.name, shape, s.ops))
    return out
