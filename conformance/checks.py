"""Metrics of each op: LAPACK-style ratios, forward errors, structure, per case.

A check takes a :class:`Ctx` (the op's inputs and outputs, the float64 reference and the
same-precision LAPACK peer, all NumPy float64/complex128) and returns
:class:`~conformance.metrics.Metric` values. The formulas and thresholds are those of
DESIGN.md "Accuracy metrics"; docs/conformance.md explains each one.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from conformance import metrics as M
from conformance.metrics import Metric, ct, fro, ratio_div, relative_error, worst
from conformance.zoo import Case

INF = math.inf
# Eigen/singular vectors are compared only where every other value is this far away,
# relative to the largest |value|.
MIN_GAP = 1e-2

@dataclass
class Ctx:
    """Everything the metrics of one case need (NumPy float64/complex128 arrays).

    Attributes:
        case: the zoo case.
        args: the op's inputs, exactly as the op saw them.
        out: the op's outputs by name.
        ref: SciPy/NumPy in float64 on ``args``.
        peer: SciPy/NumPy at the case's precision on ``args`` (the LAPACK ratio reference).
        peer_fwd: the forward-error peer: ``peer`` for float32/complex64/float16/bfloat16,
            and float64 LAPACK on ``args`` perturbed elementwise by u for float64.
        u: unit roundoff of the precision the results carry.
        n: max(M, N) of the core matrix (at least 1).
    """

    case: Case
    args: tuple
    out: dict
    ref: dict
    peer: dict
    peer_fwd: dict
    u: float
    n: int
    notes: list = field(default_factory=list)

    @property
    def batch(self) -> tuple[int, ...]:
        return self.case.a.shape[:-2]

    @property
    def well_posed(self) -> bool:
        """The input is not singular to working precision (κ·u < 0.1)."""
        return self.case.cond is not None and self.case.cond * self.u < 0.1


RatioFn = Callable[[tuple, dict, float], np.ndarray]


# ----------------------------------------------------------------------------- helpers


def _flat(x: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """x with its batch axes merged into one leading axis (one entry if unbatched)."""
    nb = int(np.prod(batch)) if batch else 1
    return np.asarray(x).reshape((nb,) + np.asarray(x).shape[len(batch):])


def ratio_metrics(ctx: Ctx, fn: RatioFn, threshold: float | None, name: str = "ratio") -> list:
    """The LAPACK-style ratio (≤ threshold) and the same ratio against the LAPACK peer's.

    ``ratio_vs_lapack`` is max over the batch of ours / max(10·peer, RATIO_FLOOR) and must
    be ≤ 1: no more than 10x LAPACK's own ratio on the same input at the same precision.
    """
    ours = np.asarray(fn(ctx.args, ctx.out, ctx.u), float)
    peer = np.asarray(fn(ctx.args, ctx.peer, ctx.u), float)
    # Where LAPACK at this precision gets no finite answer either (the result overflows
    # the dtype), the entry is out of range and excused.
    excused = ~np.isfinite(peer)
    note = f"{int(excused.sum())} entries excused (peer non-finite)" if excused.any() else ""
    out = []
    if threshold is not None:
        value, index = worst(np.where(excused, 0.0, ours))
        out.append(Metric(name, "ratio", value, threshold, index, note=note))
    rel = ratio_div(ours, np.maximum(M.PEER_FACTOR * np.where(excused, 0.0, peer),
                                     M.RATIO_FLOOR))
    value, index = worst(np.where(excused, 0.0, rel))
    m = Metric(f"{name}_vs_lapack", "lapack", value, 1.0, index, note=note)
    if index is not None or ours.size:
        flat_o, flat_p = ours.reshape(-1), peer.reshape(-1)
        i = index or 0
        if flat_o.size:
            m.error, m.peer_error = float(flat_o[i]), float(flat_p[i])
    out.append(m)
    return out


def forward(
    ctx: Ctx,
    name: str,
    get: Callable[[dict], np.ndarray],
    c: float = M.FORWARD_C["default"],
    scale: Callable[[dict], np.ndarray] | None = None,
    needs_well_posed: bool = False,
    floor_factor: np.ndarray | float = 1.0,
    kappa: bool = False,
) -> list:
    """Normwise forward error against the float64 reference, per batch entry.

    The guard is ‖X − X_ref‖/‖X_ref‖ ≤ max(c·√n·u·floor_factor, c_κ·κ₂(A)·u, 10·e_peer),
    where e_peer is the same-precision LAPACK peer's error on the same input, and the κ term
    applies only to quantities whose condition number is κ₂(A) (``kappa=True``: solutions,
    inverses, factors, det, cond): a backward-stable algorithm has forward error up to
    κ·u there. Reported as the worst ratio error/tolerance (≤ 1 passes).
    """
    if (needs_well_posed and not ctx.well_posed) or 0 in ctx.batch:
        return []
    x, r, p = (_flat(get(d), ctx.batch) for d in (ctx.out, ctx.ref, ctx.peer_fwd))
    if x.shape != r.shape:
        return [Metric(f"forward:{name}", "forward", INF, 1.0,
                       note=f"shape {x.shape[1:]} != reference {r.shape[1:]}")]
    s = None if scale is None else _flat(scale(ctx.ref), ctx.batch).reshape(x.shape[0])
    err = relative_error(x, r, s)
    perr = relative_error(p, r, s)
    base = c * math.sqrt(ctx.n) * ctx.u * np.asarray(floor_factor)
    if kappa and ctx.case.cond is not None:
        base = np.maximum(base, M.FORWARD_KAPPA_C * ctx.case.cond * ctx.u)
    # Where the same-precision peer cannot represent the answer either (overflow, NaN),
    # the entry is out of range at this precision and is excused.
    excused = ~np.isfinite(perr)
    tol = np.maximum(base, M.PEER_FACTOR * np.where(excused, 0.0, perr))
    rel = np.where(excused, 0.0, ratio_div(err, tol))
    value, index = worst(rel)
    m = Metric(f"forward:{name}", "forward", value, 1.0, index,
               note=f"{int(excused.sum())} entries excused (peer non-finite)" if excused.any()
               else "")
    i = index or 0
    if err.size:
        m.error, m.peer_error = float(err[i]), float(perr[i])
    return [m]


def structure(name: str, violations: float, note: str = "") -> Metric:
    """A structural property that must hold exactly (0 violations)."""
    return Metric(name, "structure", float(violations), 0.0, note=note)


# ----------------------------------------------------------------------------- ratios


def qr_ratio(args, o, u):
    a = args[0]
    m = max(a.shape[-2], 1)
    rec = ratio_div(fro(a - o["Q"] @ o["R"]), m * fro(a) * u)
    return np.maximum(rec, ratio_div(M.orthogonality(o["Q"]), m * u))


def _chol_ratio(upper: bool):
    def ratio(args, o, u):
        a, f = args[0], o["L"]
        n = max(a.shape[-1], 1)
        prod = ct(f) @ f if upper else f @ ct(f)
        return ratio_div(fro(prod - a), n * fro(a) * u)

    return ratio


def _lu_ratio(args, o, u):
    a = args[0]
    n = max(a.shape[-2:] + (1,))
    return ratio_div(fro(a - _permuted(o["P"], o["L"]) @ o["U"]), n * fro(a) * u)


def _permuted(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P @ X, as a row gather where P is a stack of permutation matrices: the same values
    for finite X (each entry of P X is one entry of X), without an O(m²k) product."""
    if (p.size and p.shape[:-2] == x.shape[:-2] and p.shape[-1] == x.shape[-2]
            and np.all((p == 0) | (p == 1)) and np.all(p.sum(axis=-1) == 1)
            and np.all(p.sum(axis=-2) == 1)):
        rows = np.argmax(p, axis=-1)
        return np.take_along_axis(x, rows[..., None], axis=-2)
    return p @ x


def _unpack_lu(packed: np.ndarray, piv: np.ndarray):
    """(P, L, U) with A = P L U from LAPACK getrf's packed form and 0-based swaps."""
    m, n = packed.shape[-2:]
    k = min(m, n)
    lower = np.tril(packed[..., :, :k], -1) + np.eye(m, k)
    upper = np.triu(packed[..., :k, :])
    batch = packed.shape[:-2]
    if packed.size == 0 or k == 0:
        p = np.broadcast_to(np.eye(m), batch + (m, m))
        return p, lower, upper
    perm = np.broadcast_to(np.arange(m), batch + (m,)).copy()
    flat_perm = perm.reshape(-1, m)
    flat_piv = np.asarray(piv).reshape(-1, k).astype(int)
    for b in range(flat_perm.shape[0]):
        for i in range(k):
            j = flat_piv[b, i]
            if 0 <= j < m:
                flat_perm[b, [i, j]] = flat_perm[b, [j, i]]
            else:
                flat_perm[b, :] = -1
    p = np.zeros(batch + (m, m))
    fp = p.reshape(-1, m, m)
    for b in range(fp.shape[0]):
        if (flat_perm[b] >= 0).all():
            fp[b, flat_perm[b], np.arange(m)] = 1
        else:
            fp[b] = np.nan
    return p, lower, upper


def _lu_factor_ratio(args, o, u):
    p, lower, upper = _unpack_lu(o["lu"], o["piv"])
    return _lu_ratio(args, {"P": p, "L": lower, "U": upper}, u)


def _solve_ratio(args, o, u):
    a, b = args[0], args[1]
    x = o["X"]
    return ratio_div(fro(b - a @ x), fro(a) * fro(x) * u)


def _inv_ratio(args, o, u):
    a, x = args[0], o["X"]
    n = max(a.shape[-1], 1)
    return ratio_div(fro(M.eye_like(n, a.shape[:-2]) - x @ a) if a.shape[-1] else fro(x),
                     n * fro(a) * fro(x) * u)


def _lstsq_ratio(args, o, u):
    # Note: DESIGN.md's ‖rᴴA‖/(‖A‖‖r‖max(m,n)u) is 0/0 for a consistent system; the
    # denominator uses ‖r‖ + ‖A‖‖X‖ (the scale of the residual's rounding errors) instead.
    a, b, x = args[0], args[1], o["X"]
    r = b - a @ x
    m = max(a.shape[-2:] + (1,))
    return ratio_div(fro(ct(a) @ r), fro(a) * (fro(r) + fro(a) * fro(x)) * m * u)


def _eigh_ratio(args, o, u):
    a, w, v = args[0], o["w"], o["V"]
    n = max(a.shape[-1], 1)
    rec = ratio_div(fro(a - (v * w[..., None, :]) @ ct(v)), n * fro(a) * u)
    return np.maximum(rec, ratio_div(M.orthogonality(v), n * u))


def _eig_ratio(args, o, u):
    a, w, v = args[0], o["w"], o["V"]
    n = max(a.shape[-1], 1)
    if a.shape[-1] == 0:
        return np.zeros(a.shape[:-2])
    res = M.vec(np.swapaxes(a @ v - v * w[..., None, :], -1, -2))
    norms = M.vec(np.swapaxes(v, -1, -2))
    per_col = ratio_div(res, n * fro(a)[..., None] * norms * u)
    return np.max(per_col, axis=-1)


def _svd_ratio(args, o, u):
    a, uu, s, vh = args[0], o["U"], o["S"], o["Vh"]
    m, n = a.shape[-2:]
    k = min(m, n)
    rec = ratio_div(fro(a - (uu[..., :, :k] * s[..., None, :]) @ vh[..., :k, :]),
                    max(m, n, 1) * fro(a) * u)
    ou = ratio_div(M.orthogonality(uu), max(m, 1) * u)
    ov = ratio_div(M.orthogonality(ct(vh)), max(n, 1) * u)
    return np.maximum(rec, np.maximum(ou, ov))


def _polar_ratio(args, o, u):
    a, w, p = args[0], o["u"], o["p"]
    m, n = a.shape[-2:]
    rec = ratio_div(fro(a - w @ p), max(m, n, 1) * fro(a) * u)
    orth = ratio_div(M.orthogonality(w if m >= n else ct(w)), max(m, n, 1) * u)
    herm = ratio_div(fro(p - ct(p)), max(n, 1) * fro(p) * u)
    return np.maximum(np.maximum(rec, orth), herm)


def _pinv_penrose(args, o, u):
    a, x = args[0], o["X"]
    m = max(a.shape[-2:] + (1,))
    return ratio_div(fro(a @ x @ a - a), m * fro(a) * u)


# ----------------------------------------------------------------------------- checks


def check_qr(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, qr_ratio, M.RATIO_THRESHOLD["qr"])
    out.append(structure("R_triangular", M.triangular_violation(ctx.out["R"], lower=False)))

    def signed(d, key):
        r = d["R"]
        k = min(r.shape[-2:])
        diag = np.diagonal(r[..., :k, :k], axis1=-2, axis2=-1)
        mag = np.abs(diag)
        ph = np.where(mag > 0, diag / np.where(mag > 0, mag, 1), 1)
        if key == "Q":
            return d["Q"][..., :, :k] * ph[..., None, :]
        return np.conj(ph)[..., :, None] * r[..., :k, :]

    if ctx.case.a.shape[-2] >= ctx.case.a.shape[-1]:
        out += forward(ctx, "Q", lambda d: signed(d, "Q"), needs_well_posed=True, kappa=True)
        out += forward(ctx, "R", lambda d: signed(d, "R"), needs_well_posed=True, kappa=True)
    return out


def check_cholesky(upper: bool):
    def check(ctx: Ctx) -> list:
        out = ratio_metrics(ctx, _chol_ratio(upper), M.RATIO_THRESHOLD["cholesky"])
        out.append(structure("factor_triangular",
                             M.triangular_violation(ctx.out["L"], lower=not upper)))
        d = np.diagonal(ctx.out["L"], axis1=-2, axis2=-1)
        out.append(structure("diagonal_real_positive",
                             float(np.sum((np.real(d) <= 0) | (np.imag(d) != 0)))))
        out += forward(ctx, "factor", lambda o: o["L"], kappa=True)
        return out

    return check


def check_cho_factor(ctx: Ctx) -> list:
    return check_cholesky(upper=True)(ctx)


def check_lu(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _lu_ratio, M.RATIO_THRESHOLD["lu"])
    lower, upper, p = ctx.out["L"], ctx.out["U"], ctx.out["P"]
    out.append(structure("L_unit_lower", M.triangular_violation(lower, lower=True) + float(
        np.sum(np.diagonal(lower, axis1=-2, axis2=-1) != 1))))
    out.append(structure("U_upper", M.triangular_violation(upper, lower=False)))
    perm_ok = np.all((p == 0) | (p == 1)) and np.all(p.sum(-1) == 1) and np.all(p.sum(-2) == 1)
    out.append(structure("P_permutation", 0.0 if perm_ok else 1.0))
    return out


def check_lu_factor(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _lu_factor_ratio, M.RATIO_THRESHOLD["lu"])
    piv = ctx.out["piv"]
    m = ctx.case.a.shape[-2]
    out.append(structure("piv_in_range", float(np.sum((piv < 0) | (piv >= max(m, 1))))))
    return out


def check_solve(ratio_fn=_solve_ratio):
    def check(ctx: Ctx) -> list:
        out = ratio_metrics(ctx, ratio_fn, M.RATIO_THRESHOLD["solve"])
        out += forward(ctx, "X", lambda o: o["X"], kappa=True)
        return out

    return check


def check_inv(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _inv_ratio, M.RATIO_THRESHOLD["inv"])
    out += forward(ctx, "X", lambda o: o["X"], kappa=True)
    return out


def check_lstsq(ctx: Ctx, *, singular_values: bool = True) -> list:
    """lstsq's metrics: the backward ratio, X's forward error, the singular values (not
    with ``singular_values=False``: driver="gels" does not give them), the rank, and the
    residuals of a tall system."""
    out = ratio_metrics(ctx, _lstsq_ratio, M.RATIO_THRESHOLD["lstsq"])
    out += forward(ctx, "X", lambda o: o["X"], kappa=True)
    if singular_values:
        out += forward(ctx, "s", lambda o: o["s"], c=M.FORWARD_C["values"])
    out.append(_rank_metric(ctx, "rank"))
    m, n = ctx.case.a.shape[-2:]
    if m > n:
        out += forward(ctx, "residuals", lambda o: o["res"],
                       scale=lambda o: np.sum(np.abs(ctx.args[1]) ** 2, axis=(-2, -1)))
    return out


def _rank_metric(ctx: Ctx, key: str) -> Metric:
    """Rank equals the float64 reference's or, near the cutoff, the LAPACK peer's."""
    ours, ref, peer = (np.asarray(d[key]) for d in (ctx.out, ctx.ref, ctx.peer))
    bad = (ours != ref) & (ours != peer)
    value, index = worst(np.abs(ours - ref) * bad)
    return Metric(key, "derived", value, 0.0, index)


def check_eigh(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _eigh_ratio, M.RATIO_THRESHOLD["eigh"])
    out.append(structure("eigenvalues_ascending", M.unsorted(ctx.out["w"])))
    out += _eigenvalue_forward(ctx)
    out += _vector_forward(ctx, "V", lambda d: d["V"], values=lambda d: d["w"])
    return out


def _eigenvalue_forward(ctx: Ctx) -> list:
    # Weyl: |λᵢ − λ̂ᵢ| ≤ ‖E‖₂, so the error is measured relative to ‖A‖_F = ‖λ‖₂.
    return forward(ctx, "eigenvalues", lambda d: d["w"], c=M.FORWARD_C["values"])


def check_eigvalsh(ctx: Ctx) -> list:
    return [structure("eigenvalues_ascending", M.unsorted(ctx.out["w"]))] + _eigenvalue_forward(
        ctx)


def _vector_forward(ctx: Ctx, name: str, get, values) -> list:
    """Eigen/singular vectors against the reference, after fixing each column's phase,
    on the columns whose value is separated by ≥ MIN_GAP·max|value| from all others."""
    ref_values = values(ctx.ref)
    if ref_values.shape[-1] == 0:
        return []
    scale = np.max(np.abs(ref_values), axis=-1)
    sep = M.separated_columns(ref_values, scale, MIN_GAP)
    if not sep.any():
        return []
    ref_vecs = get(ctx.ref)
    k = ref_values.shape[-1]

    def fixed(d):
        v = get(d)[..., :, :k]
        return np.where(sep[..., None, :], M.fix_phases(v, ref_vecs[..., :, :k]), 0)

    return forward(ctx, name, fixed, c=M.FORWARD_C["vectors"], floor_factor=1 / MIN_GAP)


def check_eig(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _eig_ratio, M.RATIO_THRESHOLD["eig"])
    v = ctx.out["V"]
    if v.size:
        norms = np.sqrt(np.sum(np.abs(v) ** 2, axis=-2))
        value, index = worst(np.max(np.abs(norms - 1), axis=-1) / (ctx.n * ctx.u))
        out.append(Metric("vectors_unit_norm", "structure", value, 30.0, index))
    out += eig_values_forward(ctx)
    return out


def eig_values_forward(ctx: Ctx) -> list:
    def matched(d):
        return M.match_eigenvalues(d["w"], ctx.ref["w"])

    return forward(ctx, "eigenvalues", matched, c=M.FORWARD_C["values"],
                   scale=lambda d: fro(ctx.case.a))


def check_svd(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _svd_ratio, M.RATIO_THRESHOLD["svd"])
    s = ctx.out["S"]
    out.append(structure("S_descending", M.unsorted(s, descending=True)))
    out.append(structure("S_nonnegative", float(np.sum(s < 0))))
    out += forward(ctx, "S", lambda d: d["S"], c=M.FORWARD_C["values"])
    k = s.shape[-1]

    def joint(d):
        # Scale both U and V by the phase that best aligns U with the reference.
        uu = d["U"][..., :, :k]
        v = ct(d["Vh"][..., :k, :])
        inner = np.sum(np.conj(uu) * ctx.ref["U"][..., :, :k], axis=-2, keepdims=True)
        mag = np.abs(inner)
        ph = np.where(mag > 0, inner / np.where(mag > 0, mag, 1), 1)
        if not np.iscomplexobj(ph):
            ph = np.real(ph)
        return np.concatenate([uu * ph, v * ph], axis=-2)

    if k:
        scale = np.max(np.abs(ctx.ref["S"]), axis=-1)
        sep = M.separated_columns(ctx.ref["S"], scale, MIN_GAP) & (
            ctx.ref["S"] > MIN_GAP * scale[..., None])
        if sep.any():
            out += forward(ctx, "UV", lambda d: np.where(sep[..., None, :], joint(d), 0),
                           c=M.FORWARD_C["vectors"], floor_factor=1 / MIN_GAP)
    return out


def check_svdvals(ctx: Ctx) -> list:
    s = ctx.out["S"]
    return [
        structure("S_descending", M.unsorted(s, descending=True)),
        structure("S_nonnegative", float(np.sum(s < 0))),
    ] + forward(ctx, "S", lambda d: d["S"], c=M.FORWARD_C["values"])


def check_polar(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _polar_ratio, M.RATIO_THRESHOLD["polar"])
    out += forward(ctx, "p", lambda d: d["p"])
    out += forward(ctx, "u", lambda d: d["u"], needs_well_posed=True, kappa=True)
    return out


def check_pinv(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _pinv_penrose, None, name="penrose")
    out += forward(ctx, "X", lambda d: d["X"], kappa=True)
    return out


def check_value(key: str, c: float = M.FORWARD_C["default"], scale=None, kappa=False):
    def check(ctx: Ctx) -> list:
        return forward(ctx, key, lambda d: d[key], c=c, scale=scale, kappa=kappa)

    return check


def check_slogdet(ctx: Ctx) -> list:
    ours, ref, peer = (np.asarray(d["sign"]) for d in (ctx.out, ctx.ref, ctx.peer_fwd))
    wrong = (np.abs(ours - ref) > 1e-3) & (np.abs(peer - ref) <= 1e-3)
    # The sign of a determinant that is zero to working precision is noise.
    out = [Metric("sign", "derived", float(np.sum(wrong)), 0.0)] if ctx.well_posed else []
    # logabsdet's absolute error is det's relative error.
    x, r, p = (np.asarray(d["logabsdet"]).reshape(-1) for d in (ctx.out, ctx.ref, ctx.peer_fwd))
    same = x == r
    err = np.where(same, 0.0, np.abs(x - r))
    perr = np.where(p == r, 0.0, np.abs(p - r))
    kappa = ctx.case.cond if ctx.case.cond is not None else 0.0
    tol = np.maximum(max(M.FORWARD_C["default"], M.FORWARD_KAPPA_C * kappa) * ctx.n * ctx.u,
                     M.PEER_FACTOR * np.nan_to_num(perr))
    value, index = worst(ratio_div(err, tol))
    m = Metric("forward:logabsdet", "forward", value, 1.0, index)
    if err.size:
        m.error, m.peer_error = float(err[index or 0]), float(perr[index or 0])
    out.append(m)
    return out


def check_det(ctx: Ctx) -> list:
    # det's relative condition number under relative perturbations grows like n, not √n.
    return forward(ctx, "d", lambda d: d["d"], floor_factor=math.sqrt(ctx.n), kappa=True)


def check_exact(key: str):
    def check(ctx: Ctx) -> list:
        x, r = ctx.out[key], ctx.ref[key]
        if x.shape != r.shape:
            return [Metric(f"exact:{key}", "forward", INF, 0.0, note="shape mismatch")]
        diff = np.abs(x - r)
        return [Metric(f"exact:{key}", "forward", float(np.max(diff, initial=0.0)), 0.0)]

    return check


def check_rank(ctx: Ctx) -> list:
    return [_rank_metric(ctx, "rank")]


def check_matmul(ctx: Ctx) -> list:
    # Plain relative error ‖C − C_ref‖/‖C_ref‖: scaling by ‖A‖‖B‖ instead would divide
    # TF32's error by ~√n for random factors and let it pass at n = 4096. Cancellation
    # (‖C‖ ≪ ‖A‖‖B‖) is covered by the peer term of the tolerance.
    return forward(ctx, "C", lambda d: d["C"], c=M.FORWARD_C["products"])


def check_projector(ctx: Ctx) -> list:
    """orth/null_space: the orthogonal projector B Bᴴ, formed here in float64 (not with MLX
    on the device under test, whose TF32 products would be charged to the op)."""
    return forward(ctx, "P", lambda d: d["B"] @ ct(d["B"]), kappa=True)


def vector_ctx(ctx: Ctx) -> Ctx:
    """The context of a vector right-hand side seen as a one-column matrix."""
    args = (ctx.args[0], ctx.args[1][..., None])
    return Ctx(ctx.case, args, ctx.out, ctx.ref, ctx.peer, ctx.peer_fwd, ctx.u, ctx.n)


def solve_t_ratio(args, o, u):
    a, b = args
    return _solve_ratio((np.swapaxes(a, -1, -2), b), o, u)
