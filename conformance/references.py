"""NumPy/SciPy references of every op, at the precision of the arrays they are given.

Called once with the case's float64/complex128 inputs (the reference) and once with the
inputs cast to float32/complex64 (the LAPACK peer at the op's precision). SciPy ≥ 1.15
batches every function used here; empty inputs get NumPy's result shapes.
"""

from collections.abc import Callable

import numpy as np
import scipy.linalg

from conformance.zoo import Case


def _cutoff_eps(case: Case) -> float:
    """The eps of the dtype whose default cutoffs (rtol = max(M,N)·eps) the op uses."""
    from conformance.zoo import UNIT_ROUNDOFF

    return 2 * max(UNIT_ROUNDOFF[case.dtype], 2.0**-24 if case.dtype != "float64" else 0)



def ref_lu(a):
    if a.size == 0:
        m, n = a.shape[-2:]
        k = min(m, n)
        b = a.shape[:-2]
        return {"P": np.broadcast_to(np.eye(m, dtype=a.dtype), b + (m, m)),
                "L": np.zeros(b + (m, k), a.dtype), "U": np.zeros(b + (k, n), a.dtype)}
    p, lower, upper = scipy.linalg.lu(a)
    return {"P": p, "L": lower, "U": upper}


def ref_lu_factor(a):
    if a.size == 0:
        k = min(a.shape[-2:])
        return {"lu": a.copy(), "piv": np.zeros(a.shape[:-2] + (k,), np.int32)}
    packed, piv = scipy.linalg.lu_factor(a)
    return {"lu": packed, "piv": piv}


def scipy_ref(fn, empty_fn, keys):
    """A SciPy reference (LAPACK at the arrays' own precision, batched), with NumPy's
    result for empty inputs, as a dict keyed by ``keys``."""
    keys = (keys,) if isinstance(keys, str) else tuple(keys)

    def ref(*args):
        res = fn(*args) if all(np.size(a) for a in args) else empty_fn(*args)
        res = tuple(res) if isinstance(res, tuple | list) else (res,)
        return dict(zip(keys, res, strict=True))

    return ref


def ref_det(a):
    """det = sign·exp(log|det|) from getrf at the input's precision. (scipy.linalg.det
    multiplies the pivots directly and overflows to inf for a badly scaled 200×200 matrix
    whose determinant is 1e37.)"""
    res = ref_slogdet(a)
    with np.errstate(over="ignore"):
        return {"d": res["sign"] * np.exp(res["logabsdet"])}


def ref_slogdet(a):
    """sign and log|det| from SciPy's getrf at the input's precision."""
    if a.size == 0:
        sign, logabsdet = np.linalg.slogdet(a)
        return {"sign": sign, "logabsdet": logabsdet}
    packed, piv = scipy.linalg.lu_factor(a)
    d = np.diagonal(packed, axis1=-2, axis2=-1)
    swaps = np.sum(piv != np.arange(piv.shape[-1]), axis=-1)
    mag = np.abs(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(mag > 0, d / np.where(mag > 0, mag, 1), 0)
        sign = np.prod(unit, axis=-1) * (-1.0) ** swaps
        logabsdet = np.sum(np.log(mag.astype(np.float64)), axis=-1)
    return {"sign": sign, "logabsdet": logabsdet}


def ref_svd(full: bool):
    def ref(a):
        m, n = a.shape[-2:]
        if a.size == 0:
            k = min(m, n)
            b = a.shape[:-2]
            um, vn = (m, n) if full else (k, k)
            return {"U": np.broadcast_to(np.eye(m, um, dtype=a.dtype), b + (m, um)),
                    "S": np.zeros(b + (k,), np.real(a[..., :0, :0]).dtype),
                    "Vh": np.broadcast_to(np.eye(vn, n, dtype=a.dtype), b + (vn, n))}
        uu, s, vh = scipy.linalg.svd(a, full_matrices=full, lapack_driver="gesdd")
        return {"U": uu, "S": s, "Vh": vh}

    return ref


def ref_eig(a):
    if a.size == 0:
        c = np.result_type(a.dtype, np.complex64)
        return {"w": np.zeros(a.shape[:-1], c), "V": np.zeros(a.shape, c)}
    w, v = scipy.linalg.eig(a)
    return {"w": w, "V": v}


def _ref_lstsq(case: Case):
    rcond = max(case.a.shape[-2:] + (1,)) * _cutoff_eps(case)

    def ref(a, b):
        m, n = a.shape[-2:]
        k = b.shape[-1]
        batch = a.shape[:-2]
        if a.size == 0 or b.size == 0:
            rdt = np.real(a[..., :0, :0]).dtype
            return {"X": np.zeros(batch + (n, k), a.dtype), "rank": np.zeros(batch, np.int32),
                    "s": np.zeros(batch + (min(m, n),), rdt),
                    "res": np.sum(np.abs(b) ** 2, axis=-2) if m > n else np.zeros(batch + (0,))}
        x, _, rank, s = scipy.linalg.lstsq(a, b, cond=rcond, lapack_driver="gelsd")
        res = {"X": x, "rank": rank, "s": s}
        r = b - a @ res["X"]
        res["res"] = np.sum(np.abs(r) ** 2, axis=-2) if m > n else np.zeros(batch + (0,))
        return res

    return ref


def _ref_rank(case: Case):
    def ref(a):
        if a.size == 0:
            return {"rank": np.zeros(a.shape[:-2], np.int64)}
        s = scipy.linalg.svdvals(a)
        tol = max(a.shape[-2:]) * _cutoff_eps(case) * s[..., :1]
        return {"rank": np.sum(s > tol, axis=-1)}

    return ref


def _ref_pinv(case: Case):
    def ref(a):
        if a.size == 0:
            return {"X": np.zeros(a.shape[:-2] + a.shape[-2:][::-1], a.dtype)}
        rtol = max(a.shape[-2:]) * _cutoff_eps(case)
        return {"X": scipy.linalg.pinv(a, rtol=rtol)}

    return ref


def ref_cond(p):
    # NumPy's convention: a singular matrix (finite input) has condition number inf.
    def ref(a):
        with np.errstate(all="ignore"):
            if p in (None, 2, -2):
                s = scipy.linalg.svdvals(a)
                c = s[..., 0] / s[..., -1]
                c = 1 / c if p == -2 else c
            else:
                try:
                    inv = scipy.linalg.inv(a)
                except np.linalg.LinAlgError:
                    inv = np.full(a.shape, np.inf)
                c = _matrix_norm(a, p) * _matrix_norm(inv, p)
        c = np.asarray(c, float)
        return {"c": np.where(np.isnan(c) & np.isfinite(a).all(axis=(-2, -1)), np.inf, c)}

    return ref


def _matrix_norm(a: np.ndarray, ord_) -> np.ndarray:
    """Matrix norms at the input's precision (2, -2 and nuc from SciPy's gesdd)."""
    if ord_ in (2, -2, "nuc"):
        s = scipy.linalg.svdvals(a) if a.size else np.zeros(a.shape[:-2] + (0,))
        return {2: s[..., 0] if s.shape[-1] else 0 * s.sum(-1), -2: s[..., -1] if s.shape[-1]
                else 0 * s.sum(-1), "nuc": s.sum(-1)}[ord_]
    return np.linalg.norm(a, ord=ord_, axis=(-2, -1))


def ref_polar(a):
    if a.size == 0:
        n = a.shape[-1]
        return {"u": np.zeros(a.shape, a.dtype),
                "p": np.zeros(a.shape[:-2] + (n, n), a.dtype)}
    uu, p = scipy.linalg.polar(a)
    return {"u": uu, "p": p}


def _ref_solve_triangular(case: Case, trans: int):
    lower = case.triangular == "lower"

    def ref(a, b):
        if a.size == 0:
            return {"X": b.copy()}
        return {"X": scipy.linalg.solve_triangular(a, b, trans=trans, lower=lower)}

    return ref


def _half_factor(case: Case, a: np.ndarray):
    """For a float16/bfloat16 case's float32 peer: round a factor to the case's dtype, as
    the two-step API (factor, then solve with the returned factor) must."""
    from conformance.zoo import round_to

    if case.dtype in ("float16", "bfloat16") and a.dtype == np.float32:
        return lambda f: round_to(f, case.dtype).astype(np.float32)
    return lambda f: f


def _ref_cho_solve(case: Case):
    def ref(a, b):
        if a.size == 0:
            return {"X": b.copy()}
        c, lower = scipy.linalg.cho_factor(a)
        return {"X": scipy.linalg.cho_solve((_half_factor(case, a)(c), lower), b)}

    return ref


def _ref_lu_solve(case: Case):
    def ref(a, b):
        if a.size == 0:
            return {"X": b.copy()}
        packed, piv = scipy.linalg.lu_factor(a)
        return {"X": scipy.linalg.lu_solve((_half_factor(case, a)(packed), piv), b)}

    return ref


def ref_cho_factor(a):
    if a.size == 0:
        return {"L": a.copy()}
    return {"L": np.triu(scipy.linalg.cho_factor(a)[0])}


def _ref_null_or_orth(kind: str, case: Case):
    def ref(a):
        rcond = max(a.shape[-2:] + (1,)) * _cutoff_eps(case)
        if a.size == 0:
            m, n = a.shape[-2:]
            return {"B": np.zeros((m, 0)) if kind == "orth" else np.eye(n)}
        f = scipy.linalg.orth if kind == "orth" else scipy.linalg.null_space
        return {"B": f(a, rcond=rcond)}

    return ref


def ref_matrix_norm(ord_):
    def ref(a):
        if a.size == 0:
            return {"v": np.zeros(a.shape[:-2])}
        return {"v": _matrix_norm(a, ord_)}

    return ref


def ref_vector_norm(ord_):
    def ref(a):
        with np.errstate(divide="ignore"):
            return {"v": np.linalg.norm(a, ord=ord_, axis=-1)}

    return ref


def reference_for_case(spec, case: Case) -> Callable:
    """The reference function of a spec, bound to a case where it depends on one."""
    by_name = {
        "lstsq": lambda: _ref_lstsq(case),
        "cho_solve": lambda: _ref_cho_solve(case),
        "lu_solve": lambda: _ref_lu_solve(case),
        "pinv": lambda: _ref_pinv(case),
        "matrix_rank": lambda: _ref_rank(case),
        "orth": lambda: _ref_null_or_orth("orth", case),
        "null_space": lambda: _ref_null_or_orth("null", case),
        "solve_triangular": lambda: _ref_solve_triangular(case, 0),
        "solve_triangular[T]": lambda: _ref_solve_triangular(case, 1),
    }
    return by_name[spec.name]() if spec.name in by_name else spec.reference
