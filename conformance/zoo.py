"""The matrix zoo: seeded, reproducible test matrices in every class the suite covers.

Every matrix is built in float64 (complex128 for complex dtypes) and then rounded to the
target dtype, so ``Case.a`` holds exactly the values the op under test sees, in float64.
References are computed from those rounded values. A case's random stream is seeded from
the suite seed and the case name (CRC32), so one case is the same matrix in every run,
whatever cases run before it.

Classes with prescribed singular values or eigenvalues follow LAPACK's ``xLATMS``
(mode 3: geometric distribution from 1 down to 1/κ) with Haar-random orthogonal or
unitary factors (QR of a Gaussian matrix with the signs of diag(R) folded in; Mezzadri,
"How to generate random matrices from the classical compact groups", 2007).
"""

import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

TIERS = ("quick", "full", "large")  # "large": conformance.large

# Condition numbers of the prescribed-spectrum classes, by dtype (largest below ~1/u).
CONDITIONS = {
    "float32": (1e0, 1e1, 1e3, 1e5, 1e7),
    "complex64": (1e0, 1e1, 1e3, 1e5, 1e7),
    "float64": (1e0, 1e3, 1e7, 1e10, 1e13, 1e15),
    "float16": (1e0, 1e1, 1e2),
    "bfloat16": (1e0, 1e1),
}
QUICK_CONDITIONS = {
    "float32": (1e0, 1e3, 1e7),
    "complex64": (1e0, 1e7),
    "float64": (1e0, 1e7, 1e15),
    "float16": (1e0, 1e2),
    "bfloat16": (1e0, 1e1),
}

# Square sizes per tier (n ≤ 64 always included, DESIGN.md "Accuracy metrics").
SIZES = {"quick": (3, 24), "full": (3, 24, 64, 200)}
# Large sizes (Gaussian class only): where TF32-level error hides below the ratios.
LARGE = {"quick": (64,), "full": (1024,)}
# n = 1024 runs for these dtypes only (the GPU's working precisions and the reference one).
LARGE_DTYPES = ("float32", "complex64", "float64")
# Sizes of the prescribed-condition classes.
COND_SIZES = {"quick": (24, 64), "full": (24, 200, 1024)}
# Small matrices in stacks: (batch, n).
STACKS = {"quick": ((1, 5), (7, 5), (1000, 4)), "full": ((1, 16), (7, 16), (1000, 16))}
# Largest exponent (base 2) of the badly-scaled class, by dtype range.
SCALE_EXPONENT = {"float16": 6, "bfloat16": 30, "float32": 30, "complex64": 30, "float64": 60}

# Decades spanned by the graded classes (float16's normal range is 6e-5..65504).
GRADING = {"float16": 2, "bfloat16": 6, "float32": 6, "complex64": 6, "float64": 6}

DTYPES = ("float32", "float64", "complex64", "float16", "bfloat16")
MX_DTYPES = {
    "float32": mx.float32,
    "float64": mx.float64,
    "complex64": mx.complex64,
    "float16": mx.float16,
    "bfloat16": mx.bfloat16,
}
UNIT_ROUNDOFF = {
    "float32": 2.0**-24,
    "complex64": 2.0**-24,
    "float64": 2.0**-53,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}


@dataclass
class Case:
    """One test input.

    Attributes:
        cls: matrix class, e.g. ``"cond_1e7"``; the report groups by it.
        name: unique id within a dtype, e.g. ``"cond_1e7/24x24"``.
        dtype: target dtype name.
        a: (..., M, N) float64 or complex128, exactly representable in ``dtype``.
        hermitian: every matrix of the stack equals its conjugate transpose.
        spd: Hermitian positive definite (checked on the rounded values).
        triangular: "upper", "lower" or None.
        cond: largest 2-norm condition number over the stack (inf if singular), None if empty.
        cond_scaled: the same after scaling rows and then columns to unit max-norm (what
            decides whether the matrix is singular to working precision).
        policy: None for a value case; "nonfinite", "not_pd" or "singular" for a
            failure-policy case whose ``bad`` batch entry must fail and the others not.
        bad: the failing batch index of a policy case.
        seed: the case's random seed (for right-hand sides drawn by ops).
        ops: the only op names that run on this case (None: every op that applies); the
            large tier's cases name theirs.
        order: the large tier's order the case is planned under (``--sizes``; the stacks,
            policy stacks and tall matrix go with the smallest); None elsewhere.
    """

    cls: str
    name: str
    dtype: str
    a: np.ndarray
    hermitian: bool = False
    spd: bool = False
    triangular: str | None = None
    cond: float | None = None
    cond_scaled: float | None = None
    policy: str | None = None
    bad: int | None = None
    seed: int = 0
    ops: tuple[str, ...] | None = None
    order: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.a.shape)

    @property
    def square(self) -> bool:
        return self.a.shape[-1] == self.a.shape[-2]

    @property
    def empty(self) -> bool:
        return self.a.size == 0

    def rng(self, salt: str) -> np.random.Generator:
        """A generator for extra random data (right-hand sides) of this case, keyed by salt."""
        return np.random.default_rng([self.seed, zlib.crc32(salt.encode())])


def is_complex(dtype: str) -> bool:
    return dtype.startswith("complex")


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` rounded to ``dtype`` and returned in float64/complex128 (exact values)."""
    if dtype == "bfloat16":
        return np.asarray(mx.array(x.astype(np.float32)).astype(mx.bfloat16).astype(mx.float32))\
            .astype(np.float64)
    rounded = x.astype(np.dtype(dtype))
    return rounded.astype(np.complex128 if is_complex(dtype) else np.float64)


def gaussian(rng: np.random.Generator, shape: tuple[int, ...], complex_: bool) -> np.ndarray:
    """Standard Gaussian entries (complex: unit variance split over real and imaginary)."""
    if complex_:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)
    return rng.standard_normal(shape)


def haar(rng: np.random.Generator, m: int, k: int, complex_: bool) -> np.ndarray:
    """(m, k) with Haar-distributed orthonormal columns (Mezzadri 2007)."""
    q, r = np.linalg.qr(gaussian(rng, (m, max(k, 1)), complex_))
    d = np.diagonal(r).copy()
    d[d == 0] = 1
    return (q * (d / np.abs(d)))[:, :k]


def prescribed(rng, m: int, n: int, sigma: np.ndarray, complex_: bool) -> np.ndarray:
    """U diag(sigma) Vᴴ with Haar U (m, k) and V (n, k), k = len(sigma) (xLATMS)."""
    k = len(sigma)
    u, v = haar(rng, m, k, complex_), haar(rng, n, k, complex_)
    return (u * sigma) @ v.conj().T


def hermitian_from(rng, eigenvalues: np.ndarray, complex_: bool) -> np.ndarray:
    """Q diag(λ) Qᴴ with Haar Q, made exactly Hermitian."""
    q = haar(rng, len(eigenvalues), len(eigenvalues), complex_)
    return symmetrize((q * eigenvalues) @ q.conj().T)


def symmetrize(a: np.ndarray) -> np.ndarray:
    """(A + Aᴴ)/2 with a real diagonal, over the last two axes."""
    h = (a + np.conj(np.swapaxes(a, -1, -2))) / 2
    if np.iscomplexobj(h):
        idx = np.arange(h.shape[-1])
        h[..., idx, idx] = h[..., idx, idx].real
    return h


def geometric(n: int, cond: float) -> np.ndarray:
    """n values from 1 down to 1/cond, geometrically spaced (xLATMS mode 3)."""
    if n == 1:
        return np.ones(1)
    return cond ** (-np.arange(n) / (n - 1))


def hilbert(n: int) -> np.ndarray:
    i = np.arange(n)
    return 1.0 / (i[:, None] + i[None, :] + 1)


def kahan(n: int, theta: float = 1.2) -> np.ndarray:
    """Kahan's upper-triangular matrix diag(1, s, s², ...)(I − c·strictly-upper ones)."""
    s, c = math.sin(theta), math.cos(theta)
    k = np.eye(n) - c * np.triu(np.ones((n, n)), 1)
    return (s ** np.arange(n))[:, None] * k


def spd_from(rng, n: int, cond: float, complex_: bool) -> np.ndarray:
    return hermitian_from(rng, geometric(n, cond), complex_)


def _well_spd(rng, n: int, complex_: bool) -> np.ndarray:
    return spd_from(rng, n, 10.0, complex_)


Builder = Callable[[np.random.Generator, bool], np.ndarray]


@dataclass
class _Spec:
    cls: str
    name: str
    build: Builder
    hermitian: bool = False
    triangular: str | None = None
    policy: str | None = None
    bad: int | None = None


def _specs(tier: str, dtype: str) -> Iterator[_Spec]:
    """Every case spec of a tier for a dtype (the builders run later, seeded per case)."""
    u = UNIT_ROUNDOFF[dtype]
    conds = (CONDITIONS if tier == "full" else QUICK_CONDITIONS)[dtype]
    sizes = SIZES[tier]
    for n in sizes + (LARGE[tier] if dtype in LARGE_DTYPES else ()):
        yield _Spec("gaussian", f"gaussian/{n}x{n}", lambda r, c, n=n: gaussian(r, (n, n), c))
    for m, n in ((2 * sizes[-1], sizes[-1]), (sizes[1], sizes[0]), (sizes[0], sizes[1]),
                 (sizes[-1], 2 * sizes[-1])):
        cls = "tall" if m > n else "wide"
        yield _Spec(cls, f"{cls}/{m}x{n}", lambda r, c, m=m, n=n: gaussian(r, (m, n), c))
    for cond in conds:
        label = f"cond_1e{round(math.log10(cond))}"
        for n in COND_SIZES[tier]:
            if n > 200 and dtype not in LARGE_DTYPES:
                continue
            yield _Spec(label, f"{label}/{n}x{n}",
                        lambda r, c, n=n, k=cond: prescribed(r, n, n, geometric(n, k), c))
        m, n = 2 * COND_SIZES[tier][0], COND_SIZES[tier][0]
        yield _Spec(label, f"{label}/{m}x{n}",
                    lambda r, c, m=m, n=n, k=cond: prescribed(r, m, n, geometric(n, k), c))
    e = SCALE_EXPONENT[dtype]
    g = GRADING[dtype]
    for n in sizes[1:]:
        yield _Spec("graded", f"graded/{n}x{n}",
                    lambda r, c, n=n: gaussian(r, (n, n), c) * 10.0 ** -np.linspace(0, g, n))
        yield _Spec("graded", f"graded_rows/{n}x{n}",
                    lambda r, c, n=n: 10.0 ** -np.linspace(0, g, n)[:, None]
                    * gaussian(r, (n, n), c))
        yield _Spec("badly_scaled", f"badly_scaled/{n}x{n}",
                    lambda r, c, n=n: 2.0 ** r.integers(-e, e, (n, 1)) * gaussian(r, (n, n), c)
                    * 2.0 ** r.integers(-e, e, (1, n)))
    for n in sizes[1:]:
        yield _Spec("rank_deficient", f"rank_deficient/{n}x{n}",
                    lambda r, c, n=n: gaussian(r, (n, n // 2), c) @ gaussian(r, (n // 2, n), c))
        yield _Spec("rank_deficient", f"rank_deficient/{2 * n}x{n}",
                    lambda r, c, n=n: gaussian(r, (2 * n, 2), c) @ gaussian(r, (2, n), c))
        yield _Spec("clustered", f"clustered/{n}x{n}", _clustered(n), hermitian=True)
        yield _Spec("repeated", f"repeated/{n}x{n}", _repeated(n), hermitian=True)
        yield _Spec("sym_indefinite", f"sym_indefinite/{n}x{n}",
                    lambda r, c, n=n: hermitian_from(
                        r, geometric(n, 1e3) * r.choice((-1.0, 1.0), n), c), hermitian=True)
        yield _Spec("spd", f"spd/{n}x{n}", lambda r, c, n=n: _well_spd(r, n, c), hermitian=True)
        near = min(0.05 / (n * u), 1e14)
        yield _Spec("spd_near_singular", f"spd_near_singular/{n}x{n}",
                    lambda r, c, n=n, k=near: spd_from(r, n, k, c), hermitian=True)
        yield _Spec("triangular", f"upper/{n}x{n}", _triangular(n, "upper"), triangular="upper")
        yield _Spec("triangular", f"lower/{n}x{n}", _triangular(n, "lower"), triangular="lower")
        yield _Spec("kahan", f"kahan/{n}x{n}", lambda r, c, n=n: kahan(n), triangular="upper")
        yield _Spec("diagonal", f"diagonal/{n}x{n}",
                    lambda r, c, n=n: np.diag(10.0 ** r.uniform(-3, 3, n)), hermitian=True)
        yield _Spec("identity", f"identity/{n}x{n}", lambda r, c, n=n: np.eye(n), hermitian=True)
        yield _Spec("zero", f"zero/{n}x{n}", lambda r, c, n=n: np.zeros((n, n)), hermitian=True)
    for n in _hilbert_sizes(dtype, tier):
        yield _Spec("hilbert", f"hilbert/{n}x{n}", lambda r, c, n=n: hilbert(n), hermitian=True)
    for m, n in ((0, 0), (1, 1), (0, 3), (3, 0)):
        yield _Spec("tiny", f"tiny/{m}x{n}", lambda r, c, m=m, n=n: gaussian(r, (m, n), c) + 2,
                    hermitian=m == n)
    for batch, n in STACKS[tier]:
        yield _Spec(f"stack_{batch}", f"stack_{batch}/{batch}x{n}x{n}",
                    lambda r, c, b=batch, n=n: gaussian(r, (b, n, n), c))
        yield _Spec(f"stack_{batch}", f"stack_{batch}_spd/{batch}x{n}x{n}",
                    lambda r, c, b=batch, n=n: np.stack([_well_spd(r, n, c) for _ in range(b)]),
                    hermitian=True)
    yield _Spec("stack_0", "stack_0/0x4x4", lambda r, c: np.zeros((0, 4, 4)), hermitian=True)
    n = 6
    for value, label in ((math.nan, "nan"), (math.inf, "inf")):
        yield _Spec("nonfinite", f"nonfinite_{label}/3x{n}x{n}", _with_bad(n, value),
                    hermitian=True, policy="nonfinite", bad=1)
    yield _Spec("not_pd", f"not_pd/3x{n}x{n}", _not_pd(n), hermitian=True, policy="not_pd", bad=1)
    yield _Spec("singular", f"singular/3x{n}x{n}", _singular(n), policy="singular", bad=1)
    yield _Spec("singular", f"singular_triangular/3x{n}x{n}", _singular_triangular(n),
                triangular="upper", policy="singular", bad=1)


def _hilbert_sizes(dtype: str, tier: str) -> tuple[int, ...]:
    sizes = {"float64": (4, 8, 10), "float16": (3,), "bfloat16": (3,)}.get(dtype, (4, 6))
    return sizes if tier == "full" else sizes[:2]


def _clustered(n: int) -> Builder:
    def build(r, c):
        centers = np.repeat([1.0, 2.0, 4.0], -(-n // 3))[:n]
        return hermitian_from(r, np.sort(centers + 1e-6 * r.uniform(-1, 1, n)), c)

    return build


def _repeated(n: int) -> Builder:
    def build(r, c):
        values = np.repeat([-1.0, 0.5, 3.0], -(-n // 3))[:n]
        return hermitian_from(r, values, c)

    return build


def _triangular(n: int, which: str) -> Builder:
    def build(r, c):
        g = gaussian(r, (n, n), c) / math.sqrt(n)
        g[np.diag_indices(n)] = (1 + np.abs(g.diagonal())) * r.choice((-1.0, 1.0), n)
        return np.triu(g) if which == "upper" else np.tril(g)

    return build


def _with_bad(n: int, value: float) -> Builder:
    def build(r, c):
        a = np.stack([_well_spd(r, n, c) for _ in range(3)]).astype(
            np.complex128 if c else np.float64)
        a[1, 2, 3] = value
        a[1, 3, 2] = value
        return a

    return build


def _not_pd(n: int) -> Builder:
    def build(r, c):
        a = np.stack([_well_spd(r, n, c) for _ in range(3)])
        a[1] = hermitian_from(r, np.linspace(-1, 1, n) + 0.05, c)
        return a

    return build


def _singular(n: int) -> Builder:
    def build(r, c):
        a = np.stack([_well_spd(r, n, c) for _ in range(3)])
        a[1, :, n // 2] = 0  # a zero column: an exactly zero pivot in any LU
        return a

    return build


def _singular_triangular(n: int) -> Builder:
    def build(r, c):
        a = np.stack([_triangular(n, "upper")(r, c) for _ in range(3)])
        a[1, n // 2, n // 2] = 0
        return a

    return build


def _cond(a: np.ndarray) -> float:
    s = np.linalg.svd(a, compute_uv=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = float(np.max(s[..., 0] / s[..., -1])) if s.shape[-1] else 1.0
    return math.inf if math.isnan(cond) else cond


def equilibration_scales(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column scale factors, powers of two, r (..., M, 1) and c (..., 1, N): rows,
    then columns, scaled to max-norm about 1 (LAPACK xGEEQU); (a·r)·c is
    :func:`_equilibrated`'s matrix."""
    with np.errstate(divide="ignore"):
        rows = np.max(np.abs(a), axis=-1, keepdims=True)
        r = np.where(rows > 0, 2.0 ** -np.floor(np.log2(np.where(rows > 0, rows, 1))), 1)
        cols = np.max(np.abs(a * r), axis=-2, keepdims=True)
        c = np.where(cols > 0, 2.0 ** -np.floor(np.log2(np.where(cols > 0, cols, 1))), 1)
    return r, c


def _equilibrated(a: np.ndarray) -> np.ndarray:
    """Rows, then columns, scaled by powers of two to max-norm about 1 (LAPACK xGEEQU)."""
    r, c = equilibration_scales(a)
    return a * r * c


def _analyse(a: np.ndarray, hermitian: bool) -> tuple[bool, float | None, float | None]:
    """(Hermitian positive definite, 2-norm κ, equilibrated κ) of a finite stack (worst)."""
    if a.size == 0 or not np.isfinite(a).all():
        return False, None, None
    cond = _cond(a)
    spd = False
    if hermitian:
        try:
            np.linalg.cholesky(a)
            spd = bool(np.all(np.linalg.eigvalsh(a)[..., 0] > 0))
        except np.linalg.LinAlgError:
            spd = False
    return spd, cond, _cond(_equilibrated(a))


def cases(tier: str, dtype: str, seed: int = 0, classes: set[str] | None = None,
          ops: set[str] | None = None, sizes: set[int] | None = None, log=None,
          phases=None) -> list[Case]:
    """All cases of a tier for a dtype, optionally only the named classes.

    Args:
        tier: "quick", "full" or "large" (``conformance.large``: float32 only).
        dtype: one of ``DTYPES``.
        seed: suite seed; the same seed gives bit-identical matrices.
        classes: keep only these matrix classes (None keeps all).
        ops: large tier only: build only the cases that name one of these ops.
        sizes: large tier only: build only the cases planned under these orders.
        log: large tier only: a text file that gets each case's build times.
        phases: large tier only: ``conformance.runner.Phases`` that gets the build's
            seconds (``conformance.large.cases``).

    Returns:
        The cases, in a fixed order.
    """
    if tier not in TIERS:
        raise ValueError(f"[conformance.zoo] expected tier in {TIERS}, got {tier!r}")
    if tier == "large":
        from conformance import large

        return large.cases(dtype, seed=seed, classes=classes, ops=ops, sizes=sizes, log=log,
                           phases=phases)
    if sizes is not None:
        raise ValueError("[conformance.zoo] sizes: only for the large tier")
    complex_ = is_complex(dtype)
    out = []
    for spec in _specs(tier, dtype):
        if classes is not None and spec.cls not in classes:
            continue
        case_seed = zlib.crc32(f"{seed}:{spec.name}:{complex_}".encode())
        rng = np.random.default_rng(case_seed)
        with np.errstate(invalid="ignore", over="ignore"):
            raw = np.asarray(spec.build(rng, complex_))
            if complex_:
                raw = raw.astype(np.complex128)
            a = round_to(raw, dtype)
            if spec.hermitian:
                a = symmetrize(a)
        finite = a[np.arange(a.shape[0]) != spec.bad] if spec.bad is not None else a
        spd, cond, cond_scaled = _analyse(finite, spec.hermitian)
        if spec.policy is None and spec.hermitian and not spd and spec.cls.startswith("spd"):
            continue  # rounding to a short dtype destroyed definiteness: not this class any more
        out.append(Case(spec.cls, spec.name, dtype, a, hermitian=spec.hermitian, spd=spd,
                        triangular=spec.triangular, cond=cond, cond_scaled=cond_scaled,
                        policy=spec.policy, bad=spec.bad,
                        seed=case_seed))
    return out


def class_names(tier: str = "full") -> list[str]:
    """The matrix class names, in zoo order."""
    if tier == "large":
        from conformance import large

        return large.class_names()
    seen: dict[str, None] = {}
    for dtype in DTYPES:
        for spec in _specs(tier, dtype):
            seen.setdefault(spec.cls, None)
    return list(seen)
