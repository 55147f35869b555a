"""What is measured: ops, their flop counts, the cases (op x size x batch x dtype) and the data.

A :class:`Case` is one op on one shape and dtype. Every peer of a case gets the same host data
(NumPy arrays made here from a fixed seed), converted to its own arrays outside the timed
region.

Flop counts are the nominal counts of one matrix, multiplied by the batch size; they turn a
time into an achieved GFLOP/s for the roofline column, so they follow the standard convention
for each op (LAPACK Working Note 41, Golub & Van Loan, *Matrix Computations*, 4th ed.) rather
than what a given implementation executes. With ``A`` of shape (m, n), m >= n, and k right-hand
sides:

==========  ====================================  ==============================================
op          count                                 source / convention
==========  ====================================  ==============================================
cholesky    n^3/3                                 potrf (LAWN 41)
lu          mn^2 - n^3/3  (2n^3/3 square)          getrf (LAWN 41)
det         2n^3/3                                getrf
solve       2n^3/3 + 2n^2 k                       getrf + getrs (LAWN 41)
inv         2n^3                                  getrf + getri (LAWN 41)
qr          4mn^2 - 4n^3/3 (8n^3/3 square)         geqrf 2mn^2-2n^3/3 plus orgqr forming the
                                                  reduced Q, 2mn^2-2n^3/3 (LAWN 41)
eigvalsh    4n^3/3                                tridiagonal reduction (GvL 8.3)
eigh        9n^3                                  symmetric QR with vectors (GvL 8.3); divide
                                                  and conquer or MRRR do less: a nominal count
svdvals     4mn^2 - 4n^3/3                        bidiagonalization (GvL 8.6, Fig. 8.6.1)
svd         4m^2 n + 8mn^2 + 9n^3  (21n^3 square)  Golub-Reinsch, full U and V (GvL Fig. 8.6.1);
                                                  the Array API default full_matrices=True
matmul      2mnk                                  gemm
==========  ====================================  ==============================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

OPS: tuple[str, ...] = (
    "cholesky",
    "lu",
    "qr",
    "eigh",
    "eigvalsh",
    "svd",
    "svdvals",
    "solve",
    "inv",
    "det",
    "matmul",
)
"""Every op a peer may implement, in table order."""

DTYPES: tuple[str, ...] = ("float32", "float64", "complex64")

SEED = 20260


@dataclass(frozen=True)
class Case:
    """One op on a stack of (m, n) matrices.

    Attributes:
        op: a name from :data:`OPS`.
        n: columns of each matrix (and rows, when ``m`` is None).
        batch: batch shape, ``()`` for a single matrix.
        dtype: NumPy dtype name of the inputs.
        m: rows, for tall ops (qr, svd, svdvals); None means square.
        k: right-hand sides for solve and the inner size for matmul; None means n.
    """

    op: str
    n: int
    batch: tuple[int, ...] = ()
    dtype: str = "float32"
    m: int | None = None
    k: int | None = None

    @property
    def rows(self) -> int:
        return self.n if self.m is None else self.m

    @property
    def rhs(self) -> int:
        return self.n if self.k is None else self.k

    @property
    def count(self) -> int:
        """Number of matrices in the batch."""
        return math.prod(self.batch)

    @property
    def label(self) -> str:
        """A short, unique description: ``qr 10000x32x32 float32``."""
        shape = "x".join(str(d) for d in (*self.batch, self.rows, self.n))
        extra = f" k={self.k}" if self.k is not None else ""
        return f"{self.op} {shape}{extra} {self.dtype}"

    @property
    def flops(self) -> float:
        """Nominal floating-point operations of the whole batch (see the module table)."""
        return self.count * matrix_flops(self.op, self.rows, self.n, self.rhs)

    def as_dict(self) -> dict:
        return {
            "op": self.op,
            "m": self.rows,
            "n": self.n,
            "k": self.rhs if self.op in ("solve", "matmul") else None,
            "batch": list(self.batch),
            "dtype": self.dtype,
            "label": self.label,
            "flops": self.flops,
        }


def matrix_flops(op: str, m: int, n: int, k: int) -> float:
    """Nominal real flop count of ``op`` on one (m, n) matrix (module docstring's table).

    Complex inputs cost about four times as much; the count stays the real one so that the
    GFLOP/s of a complex case reads as a real-equivalent rate divided by four.
    """
    big, small = max(m, n), min(m, n)
    counts = {
        "cholesky": n**3 / 3,
        "lu": big * small**2 - small**3 / 3,
        "det": 2 * n**3 / 3,
        "solve": 2 * n**3 / 3 + 2 * n**2 * k,
        "inv": 2 * n**3,
        "qr": 4 * big * small**2 - 4 * small**3 / 3,
        "eigvalsh": 4 * n**3 / 3,
        "eigh": 9 * n**3,
        "svdvals": 4 * big * small**2 - 4 * small**3 / 3,
        "svd": 4 * big**2 * small + 8 * big * small**2 + 9 * small**3,
        "matmul": 2 * m * n * k,
    }
    if op not in counts:
        raise ValueError(f"[benchmarks] unknown op {op!r}; known: {', '.join(OPS)}")
    return float(counts[op])


@dataclass
class Inputs:
    """Host data of a case: the operands in call order, as C-contiguous NumPy arrays."""

    arrays: tuple[np.ndarray, ...]
    notes: dict = field(default_factory=dict)


def make_inputs(case: Case, seed: int = SEED) -> Inputs:
    """Well-conditioned random operands for ``case``, the same for every peer.

    cholesky: ``G Gᴴ / n + I`` (SPD, condition ~ 5); eigh/eigvalsh: ``(G + Gᴴ) / 2``;
    solve/inv/lu/det: ``G + sqrt(n) I`` (well conditioned, so every solver succeeds);
    qr/svd/svdvals: Gaussian ``G``; matmul: two Gaussian factors. ``G`` is standard normal
    (real and imaginary parts for complex dtypes), generated in float64 then cast.
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(case.dtype)
    shape = (*case.batch, case.rows, case.n)

    def gaussian(*dims: int) -> np.ndarray:
        g = rng.standard_normal(dims)
        if dtype.kind == "c":
            g = g + 1j * rng.standard_normal(dims)
        return g

    def cast(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.astype(dtype))

    n = case.n
    eye = np.eye(n)
    if case.op == "cholesky":
        g = gaussian(*case.batch, n, n)
        a = g @ np.conj(np.swapaxes(g, -1, -2)) / n + eye
        return Inputs((cast(a),))
    if case.op in ("eigh", "eigvalsh"):
        g = gaussian(*case.batch, n, n)
        return Inputs((cast((g + np.conj(np.swapaxes(g, -1, -2))) / 2),))
    if case.op in ("solve", "inv", "lu", "det"):
        a = gaussian(*case.batch, n, n) + math.sqrt(n) * eye
        if case.op != "solve":
            return Inputs((cast(a),))
        return Inputs((cast(a), cast(gaussian(*case.batch, n, case.rhs))))
    if case.op == "matmul":
        return Inputs((cast(gaussian(*shape)), cast(gaussian(*case.batch, n, case.rhs))))
    if case.op in ("qr", "svd", "svdvals"):
        return Inputs((cast(gaussian(*shape)),))
    raise ValueError(f"[benchmarks] unknown op {case.op!r}; known: {', '.join(OPS)}")


def build_cases(
    ops: list[str], sizes: list[int], batches: list[tuple[int, ...]], dtypes: list[str]
) -> list[Case]:
    """The cross product ops x sizes x batch shapes x dtypes, as square cases.

    ``batches`` holds batch shapes; ``()`` is the unbatched case. Sizes pair with every batch
    shape, so keep batched sizes small through presets or ``--batch`` with ``--sizes``.
    """
    for op in ops:
        if op not in OPS:
            raise ValueError(f"[benchmarks] unknown op {op!r}; known: {', '.join(OPS)}")
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"[benchmarks] unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return [
        Case(op=op, n=n, batch=batch, dtype=dtype)
        for dtype in dtypes
        for op in ops
        for batch in batches
        for n in sizes
    ]


def parse_batch(text: str) -> tuple[int, ...]:
    """``"10000"`` -> (10000,), ``"8x4"`` -> (8, 4), ``""``/``"none"``/``"1"`` -> ()."""
    text = text.strip().lower()
    if text in ("", "none", "1", "()"):
        return ()
    try:
        dims = tuple(int(d) for d in text.replace(",", "x").split("x") if d)
    except ValueError:
        raise ValueError(f"[benchmarks] bad batch shape {text!r}; write e.g. 1000 or 8x4") from None
    if any(d < 1 for d in dims):
        raise ValueError(f"[benchmarks] bad batch shape {text!r}; dimensions must be >= 1")
    return dims
