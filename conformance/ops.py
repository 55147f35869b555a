"""Op specs: how to call each mlx_linalg function, its SciPy reference, and its metrics.

Each :class:`OpSpec` names the public function it exercises (``fn``); the runner resolves
it from ``mlx_linalg`` unless the caller overrides it (``run_suite(ops={"qr": my_qr})``),
which is how the tests plant wrong implementations. ``call`` adapts the function to the
op's inputs, ``reference`` computes the same quantities with NumPy/SciPy at the precision
of the arrays it gets (float64 for the reference, float32 for the LAPACK peer), and
``check`` turns a :class:`Ctx` into metrics.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np
import scipy.linalg

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


@dataclass
class OpSpec:
    """How the suite exercises one function.

    Attributes:
        name: op name in reports and filters (a function name, or name[variant]).
        fn: the mlx_linalg function name the runner resolves (the override key is ``name``).
        family: key of ``metrics.RATIO_THRESHOLD`` and of the docs' thresholds table.
        applies: which value cases it runs on.
        make: the op's inputs from a case (NumPy arrays; right-hand sides drawn here).
        call: ``call(fn, mx_args, stream) -> dict of mx.array``.
        reference: ``reference(np_args) -> dict of np arrays`` (NumPy/SciPy).
        check: ``check(ctx) -> list[Metric]``.
        out_dtype: "same" | "real" | "complex" | "int": dtype rule of the main output.
        policies: failure-policy cases it is checked on ("nonfinite", "not_pd", "singular").
        nan_on_failure: output names that must be all NaN for a failing batch entry.
    """

    name: str
    fn: str
    family: str
    applies: Callable[[Case], bool]
    make: Callable[[Case], tuple]
    call: Callable
    reference: Callable
    check: Callable[[Ctx], list]
    out_dtype: str = "same"
    policies: tuple[str, ...] = ("nonfinite",)
    nan_on_failure: tuple[str, ...] = ()
    main: str = ""


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



def _rhs(case: Case, k: int = 3, salt: str = "rhs") -> np.ndarray:
    """A seeded right-hand side (..., M, k) rounded to the case's dtype."""
    from conformance.zoo import gaussian, is_complex, round_to

    shape = case.a.shape[:-1] + (k,)
    return round_to(gaussian(case.rng(salt), shape, is_complex(case.dtype)), case.dtype)


def _a(case: Case) -> tuple:
    return (case.a,)


def _ab(k: int = 3) -> Callable[[Case], tuple]:
    return lambda case: (case.a, _rhs(case, k))


def _square_b(case: Case) -> tuple:
    return (case.a, _rhs(case, case.a.shape[-1], "square"))


# ----------------------------------------------------------------------------- applicability


def any_value(case: Case) -> bool:
    return case.policy is None


def square(case: Case) -> bool:
    return any_value(case) and case.square


def hermitian(case: Case) -> bool:
    return square(case) and case.hermitian


def spd(case: Case) -> bool:
    """Hermitian positive definite, and safely so at the case's precision (κ·n·u < 0.5)."""
    from conformance.zoo import UNIT_ROUNDOFF

    if not square(case):
        return False
    if case.empty:
        return True
    n = case.a.shape[-1]
    return case.spd and case.cond * n * UNIT_ROUNDOFF[case.dtype] < 0.5


def nonsingular(case: Case) -> bool:
    """Square and not singular to working precision once rows and columns are equilibrated."""
    from conformance.zoo import UNIT_ROUNDOFF

    if not square(case):
        return False
    if case.empty:
        return True
    return case.cond_scaled is not None and case.cond_scaled * UNIT_ROUNDOFF[case.dtype] < 0.5


def triangular(case: Case) -> bool:
    return (square(case) and case.triangular is not None and nonsingular(case)) or (
        square(case) and case.empty)


def not_empty(case: Case) -> bool:
    return any_value(case) and not case.empty


# ----------------------------------------------------------------------------- ratios


def _qr_ratio(args, o, u):
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
    return ratio_div(fro(a - o["P"] @ o["L"] @ o["U"]), n * fro(a) * u)


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


def _check_qr(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _qr_ratio, M.RATIO_THRESHOLD["qr"])
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


def _check_cholesky(upper: bool):
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


def _check_cho_factor(ctx: Ctx) -> list:
    return _check_cholesky(upper=True)(ctx)


def _check_lu(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _lu_ratio, M.RATIO_THRESHOLD["lu"])
    lower, upper, p = ctx.out["L"], ctx.out["U"], ctx.out["P"]
    out.append(structure("L_unit_lower", M.triangular_violation(lower, lower=True) + float(
        np.sum(np.diagonal(lower, axis1=-2, axis2=-1) != 1))))
    out.append(structure("U_upper", M.triangular_violation(upper, lower=False)))
    perm_ok = np.all((p == 0) | (p == 1)) and np.all(p.sum(-1) == 1) and np.all(p.sum(-2) == 1)
    out.append(structure("P_permutation", 0.0 if perm_ok else 1.0))
    return out


def _check_lu_factor(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _lu_factor_ratio, M.RATIO_THRESHOLD["lu"])
    piv = ctx.out["piv"]
    m = ctx.case.a.shape[-2]
    out.append(structure("piv_in_range", float(np.sum((piv < 0) | (piv >= max(m, 1))))))
    return out


def _check_solve(ratio_fn=_solve_ratio):
    def check(ctx: Ctx) -> list:
        out = ratio_metrics(ctx, ratio_fn, M.RATIO_THRESHOLD["solve"])
        out += forward(ctx, "X", lambda o: o["X"], kappa=True)
        return out

    return check


def _check_inv(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _inv_ratio, M.RATIO_THRESHOLD["inv"])
    out += forward(ctx, "X", lambda o: o["X"], kappa=True)
    return out


def _check_lstsq(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _lstsq_ratio, M.RATIO_THRESHOLD["lstsq"])
    out += forward(ctx, "X", lambda o: o["X"], kappa=True)
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


def _check_eigh(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _eigh_ratio, M.RATIO_THRESHOLD["eigh"])
    out.append(structure("eigenvalues_ascending", M.unsorted(ctx.out["w"])))
    out += _eigenvalue_forward(ctx)
    out += _vector_forward(ctx, "V", lambda d: d["V"], values=lambda d: d["w"])
    return out


def _eigenvalue_forward(ctx: Ctx) -> list:
    # Weyl: |λᵢ − λ̂ᵢ| ≤ ‖E‖₂, so the error is measured relative to ‖A‖_F = ‖λ‖₂.
    return forward(ctx, "eigenvalues", lambda d: d["w"], c=M.FORWARD_C["values"])


def _check_eigvalsh(ctx: Ctx) -> list:
    return [structure("eigenvalues_ascending", M.unsorted(ctx.out["w"]))] + _eigenvalue_forward(
        ctx)


def _vector_forward(ctx: Ctx, name: str, get, values, extra=None) -> list:
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


def _check_eig(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _eig_ratio, M.RATIO_THRESHOLD["eig"])
    v = ctx.out["V"]
    if v.size:
        norms = np.sqrt(np.sum(np.abs(v) ** 2, axis=-2))
        value, index = worst(np.max(np.abs(norms - 1), axis=-1) / (ctx.n * ctx.u))
        out.append(Metric("vectors_unit_norm", "structure", value, 30.0, index))
    out += _eig_values_forward(ctx)
    return out


def _eig_values_forward(ctx: Ctx) -> list:
    def matched(d):
        return M.match_eigenvalues(d["w"], ctx.ref["w"])

    return forward(ctx, "eigenvalues", matched, c=M.FORWARD_C["values"],
                   scale=lambda d: fro(ctx.case.a))


def _check_svd(ctx: Ctx) -> list:
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


def _check_svdvals(ctx: Ctx) -> list:
    s = ctx.out["S"]
    return [
        structure("S_descending", M.unsorted(s, descending=True)),
        structure("S_nonnegative", float(np.sum(s < 0))),
    ] + forward(ctx, "S", lambda d: d["S"], c=M.FORWARD_C["values"])


def _check_polar(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _polar_ratio, M.RATIO_THRESHOLD["polar"])
    out += forward(ctx, "p", lambda d: d["p"])
    out += forward(ctx, "u", lambda d: d["u"], needs_well_posed=True, kappa=True)
    return out


def _check_pinv(ctx: Ctx) -> list:
    out = ratio_metrics(ctx, _pinv_penrose, None, name="penrose")
    out += forward(ctx, "X", lambda d: d["X"], kappa=True)
    return out


def _check_value(key: str, c: float = M.FORWARD_C["default"], scale=None, kappa=False):
    def check(ctx: Ctx) -> list:
        return forward(ctx, key, lambda d: d[key], c=c, scale=scale, kappa=kappa)

    return check


def _check_slogdet(ctx: Ctx) -> list:
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


def _check_det(ctx: Ctx) -> list:
    # det's relative condition number under relative perturbations grows like n, not √n.
    return forward(ctx, "d", lambda d: d["d"], floor_factor=math.sqrt(ctx.n), kappa=True)


def _check_exact(key: str):
    def check(ctx: Ctx) -> list:
        x, r = ctx.out[key], ctx.ref[key]
        if x.shape != r.shape:
            return [Metric(f"exact:{key}", "forward", INF, 0.0, note="shape mismatch")]
        diff = np.abs(x - r)
        return [Metric(f"exact:{key}", "forward", float(np.max(diff, initial=0.0)), 0.0)]

    return check


def _check_rank(ctx: Ctx) -> list:
    return [_rank_metric(ctx, "rank")]


def _check_matmul(ctx: Ctx) -> list:
    # Plain relative error ‖C − C_ref‖/‖C_ref‖: scaling by ‖A‖‖B‖ instead would divide
    # TF32's error by ~√n for random factors and let it pass at n = 4096. Cancellation
    # (‖C‖ ≪ ‖A‖‖B‖) is covered by the peer term of the tolerance.
    return forward(ctx, "C", lambda d: d["C"], c=M.FORWARD_C["products"])


# ----------------------------------------------------------------------------- references



def _cutoff_eps(case: Case) -> float:
    """The eps of the dtype whose default cutoffs (rtol = max(M,N)·eps) the op uses."""
    from conformance.zoo import UNIT_ROUNDOFF

    return 2 * max(UNIT_ROUNDOFF[case.dtype], 2.0**-24 if case.dtype != "float64" else 0)



def _ref_lu(a):
    if a.size == 0:
        m, n = a.shape[-2:]
        k = min(m, n)
        b = a.shape[:-2]
        return {"P": np.broadcast_to(np.eye(m, dtype=a.dtype), b + (m, m)),
                "L": np.zeros(b + (m, k), a.dtype), "U": np.zeros(b + (k, n), a.dtype)}
    p, lower, upper = scipy.linalg.lu(a)
    return {"P": p, "L": lower, "U": upper}


def _ref_lu_factor(a):
    if a.size == 0:
        k = min(a.shape[-2:])
        return {"lu": a.copy(), "piv": np.zeros(a.shape[:-2] + (k,), np.int32)}
    packed, piv = scipy.linalg.lu_factor(a)
    return {"lu": packed, "piv": piv}


def _sp(fn, empty_fn, keys):
    """A SciPy reference (LAPACK at the arrays' own precision, batched), with NumPy's
    result for empty inputs, as a dict keyed by ``keys``."""
    keys = (keys,) if isinstance(keys, str) else tuple(keys)

    def ref(*args):
        res = fn(*args) if all(np.size(a) for a in args) else empty_fn(*args)
        res = tuple(res) if isinstance(res, tuple | list) else (res,)
        return dict(zip(keys, res, strict=True))

    return ref


def _ref_det(a):
    """det = sign·exp(log|det|) from getrf at the input's precision. (scipy.linalg.det
    multiplies the pivots directly and overflows to inf for a badly scaled 200×200 matrix
    whose determinant is 1e37.)"""
    res = _ref_slogdet(a)
    with np.errstate(over="ignore"):
        return {"d": res["sign"] * np.exp(res["logabsdet"])}


def _ref_slogdet(a):
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


def _ref_svd(full: bool):
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


def _ref_eig(a):
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


def _ref_cond(p):
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


def _ref_polar(a):
    if a.size == 0:
        n = a.shape[-1]
        return {"u": np.zeros(a.shape, a.dtype),
                "p": np.zeros(a.shape[:-2] + (n, n), a.dtype)}
    uu, p = scipy.linalg.polar(a)
    return {"u": uu, "p": p}


def _ref_null_space(a):
    m, n = a.shape[-2:]
    return {"N": scipy.linalg.null_space(a) if a.size else np.eye(n, dtype=a.dtype)}


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


def _ref_cho_factor(a):
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


# ----------------------------------------------------------------------------- calls


def _call_result(keys: tuple[str, ...]):
    def call(fn, args, stream, **kw):
        res = fn(*args, stream=stream, **kw)
        res = res if isinstance(res, tuple) else (res,)
        return dict(zip(keys, res, strict=True))

    return call


def _call_with(keys, **kw):
    base = _call_result(keys)
    return lambda fn, args, stream: base(fn, args, stream, **kw)


def _call_cho_solve(fn, args, stream):
    import mlx_linalg as la

    return {"X": fn(la.cho_factor(args[0], stream=stream), args[1], stream=stream)}


def _call_lu_solve(fn, args, stream):
    import mlx_linalg as la

    return {"X": fn(la.lu_factor(args[0], stream=stream), args[1], stream=stream)}


def _call_lstsq(fn, args, stream):
    x, res, rank, s = fn(args[0], args[1], stream=stream)
    return {"X": x, "res": res, "rank": rank, "s": s}


def _call_basis(fn, args, stream):
    return {"B": fn(args[0], stream=stream)}


def _check_projector(ctx: Ctx) -> list:
    """orth/null_space: the orthogonal projector B Bᴴ, formed here in float64 (not with MLX
    on the device under test, whose TF32 products would be charged to the op)."""
    return forward(ctx, "P", lambda d: d["B"] @ ct(d["B"]), kappa=True)


def _call_rows(fn, args, stream, **kw):
    return fn(*args, stream=stream, **kw)


# ----------------------------------------------------------------------------- registry


def _nonempty_square(case: Case) -> bool:
    return square(case) and not case.empty


def _tall(case: Case) -> bool:
    return any_value(case) and case.a.shape[-2] >= case.a.shape[-1]


def _at_least_3_cols(case: Case) -> bool:
    return any_value(case) and case.a.shape[-1] >= 3


def _unbatched(case: Case) -> bool:
    return any_value(case) and case.a.ndim == 2


def _same_rank_batch(case: Case) -> bool:
    return any_value(case) and (case.a.ndim == 2 or case.cls.startswith("stack"))


def _specs() -> list[OpSpec]:
    q = _call_result
    specs = [
        OpSpec("qr", "qr", "qr", any_value, _a, q(("Q", "R")),
               _sp(lambda a: scipy.linalg.qr(a, mode="economic"), np.linalg.qr, ("Q", "R")),
               _check_qr,
               main="Q"),
        OpSpec("qr[complete]", "qr", "qr", _tall, _a, _call_with(("Q", "R"), mode="complete"),
               _sp(lambda a: scipy.linalg.qr(a), lambda a: np.linalg.qr(a, mode="complete"),
                   ("Q", "R")),
               lambda ctx: ratio_metrics(ctx, _qr_ratio, M.RATIO_THRESHOLD["qr"]) + [
                   structure("R_triangular", M.triangular_violation(ctx.out["R"], False))],
               main="Q"),
        OpSpec("cholesky", "cholesky", "cholesky", spd, _a, q(("L",)),
               _sp(lambda a: scipy.linalg.cholesky(a, lower=True), np.linalg.cholesky, "L"),
               _check_cholesky(False),
               policies=("nonfinite", "not_pd"), nan_on_failure=("L",), main="L"),
        OpSpec("cholesky[upper]", "cholesky", "cholesky", spd, _a, _call_with(("L",), upper=True),
               _sp(lambda a: scipy.linalg.cholesky(a), np.linalg.cholesky, "L"),
               _check_cholesky(True),
               policies=("nonfinite", "not_pd"), nan_on_failure=("L",), main="L"),
        OpSpec("cho_factor", "cho_factor", "cholesky", spd, _a,
               _call_cho_factor, _ref_cho_factor, _check_cho_factor,
               policies=("nonfinite", "not_pd"), nan_on_failure=("c",), main="L"),
        OpSpec("cho_solve", "cho_solve", "solve", spd, _ab(), _call_cho_solve, None,
               _check_solve(), policies=("nonfinite", "not_pd"), nan_on_failure=("X",),
               main="X"),
        OpSpec("lu", "lu", "lu", any_value, _a, q(("P", "L", "U")), _ref_lu, _check_lu,
               main="L"),
        OpSpec("lu_factor", "lu_factor", "lu", any_value, _a, q(("lu", "piv")), _ref_lu_factor,
               _check_lu_factor, main="lu"),
        OpSpec("lu_solve", "lu_solve", "solve", nonsingular, _ab(), _call_lu_solve,
               None, _check_solve(), policies=("nonfinite", "singular"),
               nan_on_failure=("X",), main="X"),
        OpSpec("solve", "solve", "solve", nonsingular, _ab(), q(("X",)),
               _sp(scipy.linalg.solve, lambda a, b: b.copy(), "X"),
               _check_solve(), policies=("nonfinite", "singular"), nan_on_failure=("X",),
               main="X"),
        OpSpec("solve[vector]", "solve", "solve",
               lambda c: nonsingular(c) and _unbatched(c),
               lambda c: (c.a, _rhs(c, 1)[..., 0]),
               lambda fn, args, stream: {"X": fn(*args, stream=stream)[..., None]},
               lambda a, b: {"X": (scipy.linalg.solve(a, b) if a.size else b)[..., None]},
               lambda ctx: _check_solve()(_vector_ctx(ctx)), main="X"),
        OpSpec("inv", "inv", "inv", nonsingular, _a, q(("X",)),
               _sp(scipy.linalg.inv, np.copy, "X"), _check_inv,
               policies=("nonfinite", "singular"), nan_on_failure=("X",), main="X"),
        OpSpec("eigh", "eigh", "eigh", hermitian, _a, q(("w", "V")),
               _sp(scipy.linalg.eigh, np.linalg.eigh, ("w", "V")), _check_eigh,
               main="V"),
        OpSpec("eigvalsh", "eigvalsh", "eigh", hermitian, _a, q(("w",)),
               _sp(scipy.linalg.eigvalsh, np.linalg.eigvalsh, "w"), _check_eigvalsh,
               out_dtype="real",
               main="w"),
        OpSpec("eig", "eig", "eig", square, _a, q(("w", "V")), _ref_eig, _check_eig,
               out_dtype="complex", main="V"),
        OpSpec("eigvals", "eigvals", "eig", square, _a, q(("w",)),
               lambda a: {"w": _ref_eig(a)["w"]}, _eig_values_forward, out_dtype="complex",
               main="w"),
        OpSpec("svd", "svd", "svd", any_value, _a, q(("U", "S", "Vh")), _ref_svd(True),
               _check_svd, main="U"),
        OpSpec("svd[reduced]", "svd", "svd", any_value, _a,
               _call_with(("U", "S", "Vh"), full_matrices=False), _ref_svd(False), _check_svd,
               main="U"),
        OpSpec("svdvals", "svdvals", "svd", any_value, _a, q(("S",)),
               lambda a: {"S": _ref_svd(False)(a)["S"]}, _check_svdvals, out_dtype="real",
               main="S"),
        OpSpec("polar", "polar", "polar", any_value, _a, q(("u", "p")), _ref_polar,
               _check_polar, main="u"),
        OpSpec("det", "det", "lu", _nonempty_square, _a, q(("d",)),
               _ref_det, _check_det, main="d"),
        OpSpec("slogdet", "slogdet", "lu", _nonempty_square, _a, q(("sign", "logabsdet")),
               _ref_slogdet,
               _check_slogdet, main="sign"),
        OpSpec("matrix_power[3]", "matrix_power", "products", square, _a,
               lambda fn, args, stream: {"X": fn(args[0], 3, stream=stream)},
               lambda a: {"X": a @ a @ a},
               _check_value("X"), main="X"),
        OpSpec("matrix_power[-2]", "matrix_power", "inv", nonsingular, _a,
               lambda fn, args, stream: {"X": fn(args[0], -2, stream=stream)},
               _sp(lambda a: scipy.linalg.inv(a) @ scipy.linalg.inv(a), np.copy, "X"),
               _check_value("X", kappa=True), policies=("nonfinite", "singular"),
               nan_on_failure=("X",),
               main="X"),
        OpSpec("matmul", "matmul", "products", any_value, _square_b_or_rect, q(("C",)),
               lambda a, b: {"C": a @ b}, _check_matmul, main="C"),
        OpSpec("tensordot[1]", "tensordot", "products", _unbatched, _square_b_or_rect,
               _call_with(("C",), axes=1), lambda a, b: {"C": np.tensordot(a, b, axes=1)},
               _check_matmul, main="C"),
        OpSpec("tensordot[2]", "tensordot", "products", _unbatched, _same_shape_b,
               _call_with(("C",), axes=2),
               lambda a, b: {"C": np.asarray(np.tensordot(a, b, axes=2))},
               lambda ctx: forward(ctx, "C", lambda d: np.reshape(d["C"], (1,)),
                                   c=M.FORWARD_C["products"],
                                   scale=lambda d: fro(ctx.args[0]) * fro(ctx.args[1])),
               main="C"),
        OpSpec("vecdot", "vecdot", "products", any_value, _same_shape_b, q(("C",)),
               lambda a, b: {"C": np.sum(np.conj(a) * b, axis=-1)},
               lambda ctx: forward(ctx, "C", lambda d: d["C"], c=M.FORWARD_C["products"],
                                   scale=lambda d: fro(ctx.args[0]) * fro(ctx.args[1])),
               main="C"),
        OpSpec("outer", "outer", "products", _unbatched, _outer_args, q(("C",)),
               lambda x, y: {"C": np.outer(x, y)}, _check_value("C", c=M.FORWARD_C["products"]),
               main="C"),
        OpSpec("cross", "cross", "products", _at_least_3_cols, _cross_args, q(("C",)),
               lambda x, y: {"C": np.cross(x, y)},
               lambda ctx: forward(ctx, "C", lambda d: d["C"], c=M.FORWARD_C["products"],
                                   scale=lambda d: fro(ctx.args[0]) * fro(ctx.args[1])),
               main="C"),
        OpSpec("matrix_transpose", "matrix_transpose", "exact", any_value, _a, q(("T",)),
               lambda a: {"T": np.swapaxes(a, -1, -2)}, _check_exact("T"), main="T"),
        OpSpec("diagonal", "diagonal", "exact", any_value, _a, q(("D",)),
               lambda a: {"D": np.diagonal(a, axis1=-2, axis2=-1)}, _check_exact("D"),
               main="D"),
        OpSpec("trace", "trace", "products", any_value, _a, q(("t",)),
               lambda a: {"t": np.trace(a, axis1=-2, axis2=-1)},
               lambda ctx: forward(ctx, "t", lambda d: d["t"], c=M.FORWARD_C["products"],
                                   scale=lambda d: fro(ctx.case.a) * math.sqrt(ctx.n)),
               main="t"),
        OpSpec("solve_triangular", "solve_triangular", "solve", triangular, _ab(),
               lambda fn, args, stream: None, None, _check_solve(),
               policies=("nonfinite", "singular"), nan_on_failure=("X",), main="X"),
        OpSpec("solve_triangular[T]", "solve_triangular", "solve", triangular, _ab(),
               lambda fn, args, stream: None, None, _check_solve(_solve_t_ratio),
               main="X"),
    ]
    specs += [
        OpSpec("lstsq", "lstsq", "lstsq", any_value, _ab(), _call_lstsq, None, _check_lstsq,
               main="X"),
        OpSpec("pinv", "pinv", "svd", any_value, _a, q(("X",)), None, _check_pinv, main="X"),
        OpSpec("matrix_rank", "matrix_rank", "svd", any_value, _a, q(("rank",)), None,
               _check_rank, out_dtype="int", main="rank"),
        OpSpec("orth", "orth", "svd", lambda c: _same_rank_batch(c) and c.a.ndim == 2, _a,
               _call_basis, None, _check_projector, policies=(), main="B"),
        OpSpec("null_space", "null_space", "svd", lambda c: _same_rank_batch(c)
               and c.a.ndim == 2, _a, _call_basis, None, _check_projector, policies=(),
               main="B"),
    ]
    for p, label in ((None, "2"), ("fro", "fro"), (1, "1"), (INF, "inf")):
        applies = _nonempty_square if p is not None else not_empty
        specs.append(OpSpec(f"cond[{label}]", "cond", "svd", applies, _a,
                            _call_with(("c",), p=p), _ref_cond(p), _check_value("c", kappa=True),
                            out_dtype="real", main="c"))
    for ord_, label in (("fro", "fro"), ("nuc", "nuc"), (1, "1"), (-1, "-1"), (2, "2"),
                        (-2, "-2"), (INF, "inf"), (-INF, "-inf")):
        needs = not_empty if ord_ not in ("fro",) else any_value
        # σ_min (ord -2) has relative condition number κ₂(A); the other norms are benign.
        specs.append(OpSpec(f"matrix_norm[{label}]", "matrix_norm", "norms", needs, _a,
                            _call_with(("v",), ord=ord_), _ref_matrix_norm(ord_),
                            _check_value("v", kappa=ord_ == -2), out_dtype="real", main="v"))
    for ord_, label in ((2, "2"), (1, "1"), (INF, "inf"), (-INF, "-inf"), (0, "0"), (3, "3"),
                        (-1, "-1")):
        needs = not_empty if ord_ in (-INF, INF) else any_value
        specs.append(OpSpec(f"vector_norm[{label}]", "vector_norm", "norms", needs, _a,
                            _call_with(("v",), ord=ord_, axis=-1), _ref_vector_norm(ord_),
                            _check_value("v", c=M.FORWARD_C["values"]), out_dtype="real",
                            main="v"))
    return specs


def _call_cho_factor(fn, args, stream) -> dict:
    """The factor's triangle as ``L`` (the other triangle is unspecified, as in SciPy) and
    the whole array as ``c`` (all NaN for a failing matrix)."""
    c, lower = fn(args[0], stream=stream)
    return {"L": mx.tril(c) if lower else mx.triu(c), "c": c}


def _vector_ctx(ctx: Ctx) -> Ctx:
    """The context of a vector right-hand side seen as a one-column matrix."""
    args = (ctx.args[0], ctx.args[1][..., None])
    return Ctx(ctx.case, args, ctx.out, ctx.ref, ctx.peer, ctx.peer_fwd, ctx.u, ctx.n)


def _solve_t_ratio(args, o, u):
    a, b = args
    return _solve_ratio((np.swapaxes(a, -1, -2), b), o, u)


def _square_b_or_rect(case: Case) -> tuple:
    n = case.a.shape[-1]
    return (case.a, _rhs_shape(case, case.a.shape[:-2] + (n, max(n, 1)), "product"))


def _same_shape_b(case: Case) -> tuple:
    return (case.a, _rhs_shape(case, case.a.shape, "same"))


def _cross_args(case: Case) -> tuple:
    return (case.a[..., :3], _rhs_shape(case, case.a.shape[:-1] + (3,), "cross"))


def _rhs_shape(case: Case, shape: tuple, salt: str) -> np.ndarray:
    from conformance.zoo import gaussian, is_complex, round_to

    return round_to(gaussian(case.rng(salt), shape, is_complex(case.dtype)), case.dtype)


def _ref_matrix_norm(ord_):
    def ref(a):
        if a.size == 0:
            return {"v": np.zeros(a.shape[:-2])}
        return {"v": _matrix_norm(a, ord_)}

    return ref


def _ref_vector_norm(ord_):
    def ref(a):
        with np.errstate(divide="ignore"):
            return {"v": np.linalg.norm(a, ord=ord_, axis=-1)}

    return ref


def _outer_args(case: Case) -> tuple:
    m, n = case.a.shape
    x = case.a[:, 0] if n else np.zeros(m, case.a.dtype)
    y = case.a[0, :] if m else np.zeros(n, case.a.dtype)
    return (x, y)


def reference_for_case(spec: OpSpec, case: Case) -> Callable:
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


def call_for_case(spec: OpSpec, case: Case) -> Callable:
    """The call adapter of a spec, bound to a case where it depends on one."""
    if spec.name.startswith("solve_triangular"):
        trans = 1 if spec.name.endswith("[T]") else 0
        lower = case.triangular == "lower"
        return lambda fn, args, stream: {"X": fn(args[0], args[1], trans=trans, lower=lower,
                                                 stream=stream)}
    return spec.call


SPECS: dict[str, OpSpec] = {s.name: s for s in _specs()}


def op_names() -> list[str]:
    return list(SPECS)


def function_names() -> list[str]:
    """The distinct mlx_linalg functions the specs exercise (for the coverage check)."""
    extra = {"cho_factor", "lu_factor"}
    return sorted({s.fn for s in SPECS.values()} | extra)
