"""Accuracy metrics: LAPACK-style ratios, normwise forward errors, structure checks.

All metrics work on NumPy float64/complex128 stacks (..., M, N) and return the worst value
over the stack together with the batch index where it occurred. Norms are Frobenius norms
(unitarily invariant, cheap, and within √rank of the 2-norm). ``u`` is the unit roundoff
of the precision the result carries (2⁻²⁴ for float32).

The ratio formulas and thresholds are the table of DESIGN.md "Accuracy metrics"; they
follow the LAPACK test suite (dqrt01, dget01, dpot01, dget02, dget03, dqrt17, dsyt21,
dbdt01; Anderson et al., LAPACK Working Note 41).
"""

import math
from dataclasses import dataclass

import numpy as np

# Thresholds of the LAPACK-style ratios (DESIGN.md).
RATIO_THRESHOLD = {
    "qr": 30.0,
    "lu": 30.0,
    "cholesky": 30.0,
    "solve": 30.0,
    "inv": 30.0,
    "lstsq": 30.0,
    "eigh": 60.0,
    "eig": 60.0,
    "svd": 50.0,
    "polar": 50.0,
}
# A ratio may exceed the LAPACK ratio on the same input by at most this factor ...
PEER_FACTOR = 10.0
# ... unless it is below this floor (ratios this small are all rounding noise).
RATIO_FLOOR = 0.5
# Named constants c of the normwise forward-error guard ‖X − X_ref‖/‖X_ref‖ ≤ c·√n·u.
FORWARD_C = {
    "default": 16.0,
    "products": 4.0,
    "values": 16.0,
    "vectors": 16.0,
}
# c_κ of the condition-number term c_κ·κ₂(A)·u of the forward guard (κ-sensitive outputs).
FORWARD_KAPPA_C = 1.0


@dataclass
class Metric:
    """One checked quantity of one case.

    Attributes:
        name: e.g. ``"ratio"``, ``"ratio_vs_lapack"``, ``"forward:Q"``, ``"R_triangular"``.
        kind: "ratio" | "lapack" | "forward" | "structure" | "derived" | "policy" | "shape".
        value: the measured value (NaN counts as a failure).
        threshold: the largest passing value.
        index: batch index of the worst entry, if the input is a stack.
        note: a short explanation for a failure or a skipped comparison.
    """

    name: str
    kind: str
    value: float
    threshold: float
    index: int | None = None
    note: str = ""
    error: float | None = None
    peer_error: float | None = None

    @property
    def passed(self) -> bool:
        return bool(self.value <= self.threshold)

    @property
    def score(self) -> float:
        """value / threshold: ≤ 1 passes; inf for a failure against a zero threshold."""
        if math.isnan(self.value):
            return math.inf
        if self.threshold == 0:
            return 0.0 if self.value == 0 else math.inf
        return self.value / self.threshold

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "value": _finite_or_str(self.value),
            "threshold": _finite_or_str(self.threshold),
            "passed": self.passed,
            "index": self.index,
            "note": self.note,
            "error": None if self.error is None else _finite_or_str(self.error),
            "peer_error": None if self.peer_error is None else _finite_or_str(self.peer_error),
        }


def _finite_or_str(x: float):
    return float(x) if math.isfinite(x) else str(x)


def fro(x: np.ndarray) -> np.ndarray:
    """Frobenius norms over the last two axes, shape (...,)."""
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        return np.zeros(x.shape[:-2])
    return np.sqrt(np.sum(np.abs(x) ** 2, axis=(-2, -1)))


def vec(x: np.ndarray) -> np.ndarray:
    """2-norms over the last axis, shape (...,)."""
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1])
    return np.sqrt(np.sum(np.abs(x) ** 2, axis=-1))


def ratio_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0/0 = 0 and x/0 = inf (NaN stays NaN)."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, np.inf)
    zero = num == 0
    out[zero] = 0.0
    ok = ~zero & (den > 0)
    out[ok] = num[ok] / den[ok]
    out[np.isnan(num) | np.isnan(den)] = np.nan
    return out


def worst(values: np.ndarray) -> tuple[float, int | None]:
    """The largest value of a batch (NaN counts as largest) and its flat batch index."""
    values = np.asarray(values, float).reshape(-1)
    if values.size == 0:
        return 0.0, None
    key = np.where(np.isnan(values), np.inf, values)
    i = int(np.argmax(key))
    return float(values[i]), (i if values.size > 1 else None)


def ct(x: np.ndarray) -> np.ndarray:
    """Conjugate transpose of the last two axes: a view for real input (``np.conj`` would
    copy it, and NumPy forms ``Qᵀ @ Q`` of a view with the symmetric rank-k update, at half
    the flops of a general product)."""
    t = np.swapaxes(x, -1, -2)
    return np.conj(t) if np.iscomplexobj(t) else t


def eye_like(k: int, batch: tuple[int, ...] = ()) -> np.ndarray:
    return np.broadcast_to(np.eye(k), batch + (k, k))


def orthogonality(q: np.ndarray) -> np.ndarray:
    """‖I − QᴴQ‖ per matrix (columns orthonormal)."""
    k = q.shape[-1]
    return fro(eye_like(k, q.shape[:-2]) - ct(q) @ q)


def relative_error(x: np.ndarray, ref: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """‖x − ref‖/‖ref‖ per batch entry (over all non-batch axes), or /scale when given.

    ``x`` and ``ref`` have one leading batch axis (use [None] for an unbatched result).
    """
    b = x.shape[0] if x.ndim else 1
    x, ref = np.asarray(x), np.asarray(ref)
    same = (x == ref) | (np.isnan(x) & np.isnan(ref))
    with np.errstate(invalid="ignore"):
        d = np.where(same, 0.0, np.abs(x - ref)).reshape(b, -1)
    err = np.sqrt(np.sum(d**2, axis=1)) if d.shape[1] else np.zeros(b)
    if scale is None:
        r = np.abs(np.asarray(ref)).reshape(b, -1)
        scale = np.sqrt(np.sum(r**2, axis=1)) if r.shape[1] else np.zeros(b)
    return ratio_div(err, scale)


def triangular_violation(x: np.ndarray, lower: bool) -> float:
    """Largest |entry| on the wrong side of the diagonal (0 for an exactly triangular x)."""
    if x.size == 0:
        return 0.0
    mask = np.triu(np.ones(x.shape[-2:], bool), 1) if lower else np.tril(
        np.ones(x.shape[-2:], bool), -1)
    return float(np.max(np.abs(x[..., mask]), initial=0.0))


def unsorted(x: np.ndarray, descending: bool = False) -> float:
    """Number of adjacent pairs out of order along the last axis (real parts)."""
    if x.shape[-1] < 2:
        return 0.0
    d = np.diff(np.real(x), axis=-1)
    return float(np.sum(d > 0 if descending else d < 0))


def fix_phases(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Columns of ``x`` rotated by unit scalars to best match the columns of ``ref``.

    Eigenvectors and singular vectors are unique up to sign (real) or phase (complex);
    the optimal phase of column j is that of ⟨x_j, ref_j⟩.
    """
    inner = np.sum(np.conj(x) * ref, axis=-2, keepdims=True)
    mag = np.abs(inner)
    phase = np.where(mag > 0, inner / np.where(mag > 0, mag, 1), 1)
    if not np.iscomplexobj(x) and not np.iscomplexobj(ref):
        phase = np.real(phase)
    return x * phase


def separated_columns(values: np.ndarray, scale: np.ndarray, min_gap: float) -> np.ndarray:
    """Mask (..., K) of spectrum entries whose distance to every other entry is ≥ min_gap·scale.

    Only such eigen/singular vectors are determined well enough to compare with a reference
    (Davis-Kahan: the angle error is ≲ u‖A‖/gap).
    """
    v = np.asarray(values)
    k = v.shape[-1]
    if k < 2:
        return np.ones(v.shape, bool)
    d = np.abs(v[..., :, None] - v[..., None, :])
    d[..., np.arange(k), np.arange(k)] = np.inf
    return d.min(axis=-1) >= min_gap * np.asarray(scale)[..., None]


def match_eigenvalues(w: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``w`` reordered to pair each entry with the nearest reference entry (per matrix).

    Uses an optimal assignment (Hungarian algorithm) on |wᵢ − refⱼ|, so no sort order
    of complex numbers is assumed.
    """
    from scipy.optimize import linear_sum_assignment

    if w.size == 0:
        return w
    out = np.empty_like(w)
    flat_w = w.reshape(-1, w.shape[-1])
    flat_r = ref.reshape(-1, ref.shape[-1])
    flat_o = out.reshape(-1, w.shape[-1])
    for i, (a, b) in enumerate(zip(flat_w, flat_r, strict=True)):
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            flat_o[i] = a
            continue
        rows, cols = linear_sum_assignment(np.abs(a[:, None] - b[None, :]))
        flat_o[i, cols] = a[rows]
    return out
