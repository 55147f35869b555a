"""A cheap accuracy check of each peer's output, so that speed is compared at equal accuracy.

The metrics are those of DESIGN.md ("Accuracy metrics"), in units of the unit roundoff ``u``
of the input dtype, computed in float64 on the host and maximized over the batch. A peer that
computes in reduced precision (TF32 matmuls, say) shows a value hundreds of times larger than
LAPACK's. Values-only ops (eigvalsh, svdvals) are compared with a float64 NumPy reference.
``lu`` (pivot conventions differ between frameworks) and ``det`` (overflows at the benchmark
sizes) are not checked.
"""

from __future__ import annotations

import numpy as np

from benchmarks.cases import Case

CHECKED_OPS = ("cholesky", "qr", "eigh", "eigvalsh", "svd", "svdvals", "solve", "inv", "matmul")


def _unit_roundoff(dtype: str) -> float:
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def _herm(x: np.ndarray) -> np.ndarray:
    return np.conj(np.swapaxes(x, -1, -2))


def _norm(x: np.ndarray) -> np.ndarray:
    """Frobenius norm of each matrix of a stack (a vector stack counts as one row each)."""
    if x.ndim == 1:
        return np.linalg.norm(x)
    return np.linalg.norm(x, axis=(-2, -1))


def _orthogonality(q: np.ndarray) -> np.ndarray:
    eye = np.eye(q.shape[-1])
    return _norm(_herm(q) @ q - eye)


def error_in_u(case: Case, inputs: tuple[np.ndarray, ...], outputs: tuple[np.ndarray, ...]):
    """The op's error metric in units of ``u`` (max over the batch), or None if not checked.

    Args:
        case: the case that produced ``outputs``.
        inputs: the host operands the peer received.
        outputs: the peer's outputs as NumPy arrays, in the order the op returns them.
    """
    if case.op not in CHECKED_OPS:
        return None
    u = _unit_roundoff(case.dtype)
    a = inputs[0].astype(np.complex128 if np.iscomplexobj(inputs[0]) else np.float64)
    out = [np.asarray(o) for o in outputs]
    if any(not np.all(np.isfinite(o)) for o in out):
        return float("inf")
    m, n = a.shape[-2], a.shape[-1]
    norm_a = _norm(a)
    if case.op == "cholesky":
        low = out[0]
        value = _norm(low @ _herm(low) - a) / (n * norm_a * u)
    elif case.op == "qr":
        q, r = out
        value = np.maximum(_norm(a - q @ r) / (m * norm_a * u), _orthogonality(q) / (m * u))
    elif case.op == "eigh":
        w, v = out
        residual = _norm(a @ v - v * w[..., None, :]) / (n * norm_a * u)
        value = np.maximum(residual, _orthogonality(v) / (n * u))
    elif case.op == "svd":
        uu, s, vh = out
        k = s.shape[-1]
        rebuilt = (uu[..., :, :k] * s[..., None, :]) @ vh[..., :k, :]
        value = np.maximum.reduce(
            [
                _norm(a - rebuilt) / (max(m, n) * norm_a * u),
                _orthogonality(uu) / (m * u),
                _orthogonality(_herm(vh)) / (n * u),
            ]
        )
    elif case.op in ("eigvalsh", "svdvals"):
        reference = (
            np.linalg.eigvalsh(a) if case.op == "eigvalsh" else np.linalg.svd(a, compute_uv=False)
        )
        got = np.sort(out[0].real, axis=-1)
        value = np.max(np.abs(got - np.sort(reference, axis=-1)), axis=-1) / (
            max(m, n) * norm_a * u
        )
    elif case.op == "solve":
        x = out[0]
        value = _norm(inputs[1] - a @ x) / (norm_a * _norm(x) * u)
    elif case.op == "inv":
        x = out[0]
        value = _norm(x @ a - np.eye(n)) / (n * norm_a * _norm(x) * u)
    else:  # matmul: normwise error of the product
        b = inputs[1].astype(a.dtype)
        value = _norm(out[0] - a @ b) / (_norm(a) * _norm(b) * u)
    return float(np.max(value))
