"""Op specs: how to call each mlx_linalg function, its SciPy reference, and its metrics.

Each :class:`OpSpec` names the public function it exercises (``fn``); the runner resolves
it from ``mlx_linalg`` unless the caller overrides it (``run_suite(ops={"qr": my_qr})``),
which is how the tests plant wrong implementations. ``call`` adapts the function to the
op's inputs, ``reference`` computes the same quantities with NumPy/SciPy at the precision
of the arrays it gets (float64 for the reference, float32 for the LAPACK peer), and
``check`` turns a :class:`conformance.checks.Ctx` into metrics. The metrics live in
``conformance.checks`` and the references in ``conformance.references``.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import numpy as np
import scipy.linalg

from conformance import checks as C
from conformance import metrics as M
from conformance import references as R
from conformance.metrics import fro
from conformance.zoo import Case

INF = math.inf


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
    check: Callable[[C.Ctx], list]
    out_dtype: str = "same"
    policies: tuple[str, ...] = ("nonfinite",)
    nan_on_failure: tuple[str, ...] = ()
    main: str = ""


def _rhs(case: Case, k: int = 3, salt: str = "rhs") -> np.ndarray:
    """A seeded right-hand side (..., M, k) rounded to the case's dtype."""
    from conformance.zoo import gaussian, is_complex, round_to

    shape = case.a.shape[:-1] + (k,)
    return round_to(gaussian(case.rng(salt), shape, is_complex(case.dtype)), case.dtype)


def _a(case: Case) -> tuple:
    return (case.a,)


def _ab(k: int = 3) -> Callable[[Case], tuple]:
    return lambda case: (case.a, _rhs(case, k))


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


def full_rank(case: Case) -> bool:
    """Full rank at the case's precision, κ₂ · max(M, N) · eps < 1/2: the rank test of
    lstsq(driver="gels") (|r_ii| <= max(M, N)·eps·max|r_jj|) cannot flag it."""
    from conformance.zoo import UNIT_ROUNDOFF

    if not any_value(case) or case.empty:
        return any_value(case)
    eps = 2 * UNIT_ROUNDOFF[case.dtype]
    return case.cond is not None and case.cond * max(case.a.shape[-2:]) * eps < 0.5


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


def _call_lstsq_gels(fn, args, stream):
    x, res, rank, _ = fn(args[0], args[1], driver="gels", stream=stream)
    return {"X": x, "res": res, "rank": rank}  # driver="gels" returns no singular values


def _ref_lstsq_gels(a, b):
    """Reference of lstsq[gels] (full-rank cases only): QR with column pivoting, LAPACK
    gelsy. In float64 gelsd can be the less accurate: 95u off (1.1e-14) on a 4 x 4 solve
    of κ₂ = 10 (stack_1000_spd, OpenBLAS), where gelsy and an unpivoted QR are within 5u."""
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    if a.size == 0:
        x, rank = np.zeros(batch + (n, b.shape[-1]), a.dtype), np.full(batch, min(m, n))
    else:
        x, _, rank, _ = scipy.linalg.lstsq(a, b, lapack_driver="gelsy")
    res = np.sum(np.abs(b - a @ x) ** 2, axis=-2) if m > n else np.zeros(batch + (0,))
    return {"X": x, "rank": np.asarray(rank, np.int32), "res": res}


def _call_basis(fn, args, stream):
    return {"B": fn(args[0], stream=stream)}


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
               R.scipy_ref(lambda a: scipy.linalg.qr(a, mode="economic"), np.linalg.qr, ("Q", "R")),
               C.check_qr,
               main="Q"),
        OpSpec("qr[complete]", "qr", "qr", _tall, _a, _call_with(("Q", "R"), mode="complete"),
               R.scipy_ref(lambda a: scipy.linalg.qr(a), lambda a: np.linalg.qr(a, mode="complete"),
                   ("Q", "R")),
               lambda ctx: C.ratio_metrics(ctx, C.qr_ratio, M.RATIO_THRESHOLD["qr"]) + [
                   C.structure("R_triangular", M.triangular_violation(ctx.out["R"], False))],
               main="Q"),
        OpSpec("cholesky", "cholesky", "cholesky", spd, _a, q(("L",)),
               R.scipy_ref(lambda a: scipy.linalg.cholesky(a, lower=True), np.linalg.cholesky, "L"),
               C.check_cholesky(False),
               policies=("nonfinite", "not_pd"), nan_on_failure=("L",), main="L"),
        OpSpec("cholesky[upper]", "cholesky", "cholesky", spd, _a, _call_with(("L",), upper=True),
               R.scipy_ref(lambda a: scipy.linalg.cholesky(a), np.linalg.cholesky, "L"),
               C.check_cholesky(True),
               policies=("nonfinite", "not_pd"), nan_on_failure=("L",), main="L"),
        OpSpec("cho_factor", "cho_factor", "cholesky", spd, _a,
               _call_cho_factor, R.ref_cho_factor, C.check_cho_factor,
               policies=("nonfinite", "not_pd"), nan_on_failure=("c",), main="L"),
        OpSpec("cho_solve", "cho_solve", "solve", spd, _ab(), _call_cho_solve, None,
               C.check_solve(), policies=("nonfinite", "not_pd"), nan_on_failure=("X",),
               main="X"),
        OpSpec("lu", "lu", "lu", any_value, _a, q(("P", "L", "U")), R.ref_lu, C.check_lu,
               main="L"),
        OpSpec("lu_factor", "lu_factor", "lu", any_value, _a, q(("lu", "piv")), R.ref_lu_factor,
               C.check_lu_factor, main="lu"),
        OpSpec("lu_solve", "lu_solve", "solve", nonsingular, _ab(), _call_lu_solve,
               None, C.check_solve(), policies=("nonfinite", "singular"),
               nan_on_failure=("X",), main="X"),
        OpSpec("solve", "solve", "solve", nonsingular, _ab(), q(("X",)),
               R.scipy_ref(scipy.linalg.solve, lambda a, b: b.copy(), "X"),
               C.check_solve(), policies=("nonfinite", "singular"), nan_on_failure=("X",),
               main="X"),
        OpSpec("solve[vector]", "solve", "solve",
               lambda c: nonsingular(c) and _unbatched(c),
               lambda c: (c.a, _rhs(c, 1)[..., 0]),
               lambda fn, args, stream: {"X": fn(*args, stream=stream)[..., None]},
               lambda a, b: {"X": (scipy.linalg.solve(a, b) if a.size else b)[..., None]},
               lambda ctx: C.check_solve()(C.vector_ctx(ctx)), main="X"),
        # refine=True: solve's cases, metric and failure policy. Ill-conditioned cases
        # (κ·u_low ≳ 1; float64 factors in float32) must fall back to the ordinary solve.
        OpSpec("solve[refine]", "solve", "solve", nonsingular, _ab(),
               _call_with(("X",), refine=True),
               R.scipy_ref(scipy.linalg.solve, lambda a, b: b.copy(), "X"),
               C.check_solve(), policies=("nonfinite", "singular"), nan_on_failure=("X",),
               main="X"),
        OpSpec("inv", "inv", "inv", nonsingular, _a, q(("X",)),
               R.scipy_ref(scipy.linalg.inv, np.copy, "X"), C.check_inv,
               policies=("nonfinite", "singular"), nan_on_failure=("X",), main="X"),
        OpSpec("eigh", "eigh", "eigh", hermitian, _a, q(("w", "V")),
               R.scipy_ref(scipy.linalg.eigh, np.linalg.eigh, ("w", "V")), C.check_eigh,
               main="V"),
        OpSpec("eigvalsh", "eigvalsh", "eigh", hermitian, _a, q(("w",)),
               R.scipy_ref(scipy.linalg.eigvalsh, np.linalg.eigvalsh, "w"), C.check_eigvalsh,
               out_dtype="real",
               main="w"),
        OpSpec("eig", "eig", "eig", square, _a, q(("w", "V")), R.ref_eig, C.check_eig,
               out_dtype="complex", main="V"),
        OpSpec("eigvals", "eigvals", "eig", square, _a, q(("w",)),
               lambda a: {"w": R.ref_eig(a)["w"]}, C.eig_values_forward, out_dtype="complex",
               main="w"),
        OpSpec("svd", "svd", "svd", any_value, _a, q(("U", "S", "Vh")), R.ref_svd(True),
               C.check_svd, main="U"),
        OpSpec("svd[reduced]", "svd", "svd", any_value, _a,
               _call_with(("U", "S", "Vh"), full_matrices=False), R.ref_svd(False), C.check_svd,
               main="U"),
        OpSpec("svdvals", "svdvals", "svd", any_value, _a, q(("S",)),
               lambda a: {"S": R.ref_svd(False)(a)["S"]}, C.check_svdvals, out_dtype="real",
               main="S"),
        OpSpec("polar", "polar", "polar", any_value, _a, q(("u", "p")), R.ref_polar,
               C.check_polar, main="u"),
        OpSpec("det", "det", "lu", _nonempty_square, _a, q(("d",)),
               R.ref_det, C.check_det, main="d"),
        OpSpec("slogdet", "slogdet", "lu", _nonempty_square, _a, q(("sign", "logabsdet")),
               R.ref_slogdet,
               C.check_slogdet, main="sign"),
        OpSpec("matrix_power[3]", "matrix_power", "products", square, _a,
               lambda fn, args, stream: {"X": fn(args[0], 3, stream=stream)},
               lambda a: {"X": a @ a @ a},
               C.check_value("X"), main="X"),
        OpSpec("matrix_power[-2]", "matrix_power", "inv", nonsingular, _a,
               lambda fn, args, stream: {"X": fn(args[0], -2, stream=stream)},
               R.scipy_ref(lambda a: scipy.linalg.inv(a) @ scipy.linalg.inv(a), np.copy, "X"),
               C.check_value("X", kappa=True), policies=("nonfinite", "singular"),
               nan_on_failure=("X",),
               main="X"),
        OpSpec("matmul", "matmul", "products", any_value, _square_b_or_rect, q(("C",)),
               lambda a, b: {"C": a @ b}, C.check_matmul, main="C"),
        OpSpec("tensordot[1]", "tensordot", "products", _unbatched, _square_b_or_rect,
               _call_with(("C",), axes=1), lambda a, b: {"C": np.tensordot(a, b, axes=1)},
               C.check_matmul, main="C"),
        OpSpec("tensordot[2]", "tensordot", "products", _unbatched, _same_shape_b,
               _call_with(("C",), axes=2),
               lambda a, b: {"C": np.asarray(np.tensordot(a, b, axes=2))},
               lambda ctx: C.forward(ctx, "C", lambda d: np.reshape(d["C"], (1,)),
                                   c=M.FORWARD_C["products"],
                                   scale=lambda d: fro(ctx.args[0]) * fro(ctx.args[1])),
               main="C"),
        OpSpec("vecdot", "vecdot", "products", any_value, _same_shape_b, q(("C",)),
               lambda a, b: {"C": np.sum(np.conj(a) * b, axis=-1)},
               lambda ctx: C.forward(ctx, "C", lambda d: d["C"], c=M.FORWARD_C["products"],
                                   scale=lambda d: fro(ctx.args[0]) * fro(ctx.args[1])),
               main="C"),
        OpSpec("outer", "outer", "products", _unbatched, _outer_args, q(("C",)),
               lambda x, y: {"C": np.outer(x, y)}, C.check_value("C", c=M.FORWARD_C["products"]),
               main="C"),
        OpSpec("cross", "cross", "products", _at_least_3_cols, _cross_args, q(("C",)),
               lambda x, y: {"C": np.cross(x, y)},
               lambda ctx: C.forward(ctx, "C", lambda d: d["C"], c=M.FORWARD_C["products"],
                                   scale=lambda d: fro(ctx.args[0]) * fro(ctx.args[1])),
               main="C"),
        OpSpec("matrix_transpose", "matrix_transpose", "exact", any_value, _a, q(("T",)),
               lambda a: {"T": np.swapaxes(a, -1, -2)}, C.check_exact("T"), main="T"),
        OpSpec("diagonal", "diagonal", "exact", any_value, _a, q(("D",)),
               lambda a: {"D": np.diagonal(a, axis1=-2, axis2=-1)}, C.check_exact("D"),
               main="D"),
        OpSpec("trace", "trace", "products", any_value, _a, q(("t",)),
               lambda a: {"t": np.trace(a, axis1=-2, axis2=-1)},
               lambda ctx: C.forward(ctx, "t", lambda d: d["t"], c=M.FORWARD_C["products"],
                                   scale=lambda d: fro(ctx.case.a) * math.sqrt(ctx.n)),
               main="t"),
        OpSpec("solve_triangular", "solve_triangular", "solve", triangular, _ab(),
               lambda fn, args, stream: None, None, C.check_solve(),
               policies=("nonfinite", "singular"), nan_on_failure=("X",), main="X"),
        OpSpec("solve_triangular[T]", "solve_triangular", "solve", triangular, _ab(),
               lambda fn, args, stream: None, None, C.check_solve(C.solve_t_ratio),
               main="X"),
    ]
    specs += [
        OpSpec("lstsq", "lstsq", "lstsq", any_value, _ab(), _call_lstsq, None, C.check_lstsq,
               main="X"),
        OpSpec("lstsq[gels]", "lstsq", "lstsq", full_rank, _ab(), _call_lstsq_gels,
               _ref_lstsq_gels, functools.partial(C.check_lstsq, singular_values=False),
               policies=("nonfinite", "singular"),
               nan_on_failure=("X",), main="X"),
        OpSpec("pinv", "pinv", "svd", any_value, _a, q(("X",)), None, C.check_pinv, main="X"),
        OpSpec("matrix_rank", "matrix_rank", "svd", any_value, _a, q(("rank",)), None,
               C.check_rank, out_dtype="int", main="rank"),
        OpSpec("orth", "orth", "svd", lambda c: _same_rank_batch(c) and c.a.ndim == 2, _a,
               _call_basis, None, C.check_projector, policies=(), main="B"),
        OpSpec("null_space", "null_space", "svd", lambda c: _same_rank_batch(c)
               and c.a.ndim == 2, _a, _call_basis, None, C.check_projector, policies=(),
               main="B"),
    ]
    for p, label in ((None, "2"), ("fro", "fro"), (1, "1"), (INF, "inf")):
        applies = _nonempty_square if p is not None else not_empty
        specs.append(OpSpec(f"cond[{label}]", "cond", "svd", applies, _a,
                            _call_with(("c",), p=p), R.ref_cond(p), C.check_value("c", kappa=True),
                            out_dtype="real", main="c"))
    for ord_, label in (("fro", "fro"), ("nuc", "nuc"), (1, "1"), (-1, "-1"), (2, "2"),
                        (-2, "-2"), (INF, "inf"), (-INF, "-inf")):
        needs = not_empty if ord_ not in ("fro",) else any_value
        # σ_min (ord -2) has relative condition number κ₂(A); the other norms are benign.
        specs.append(OpSpec(f"matrix_norm[{label}]", "matrix_norm", "norms", needs, _a,
                            _call_with(("v",), ord=ord_), R.ref_matrix_norm(ord_),
                            C.check_value("v", kappa=ord_ == -2), out_dtype="real", main="v"))
    for ord_, label in ((2, "2"), (1, "1"), (INF, "inf"), (-INF, "-inf"), (0, "0"), (3, "3"),
                        (-1, "-1")):
        needs = not_empty if ord_ in (-INF, INF) else any_value
        specs.append(OpSpec(f"vector_norm[{label}]", "vector_norm", "norms", needs, _a,
                            _call_with(("v",), ord=ord_, axis=-1), R.ref_vector_norm(ord_),
                            C.check_value("v", c=M.FORWARD_C["values"]), out_dtype="real",
                            main="v"))
    return specs


def _call_cho_factor(fn, args, stream) -> dict:
    """The factor's triangle as ``L`` (the other triangle is unspecified, as in SciPy) and
    the whole array as ``c`` (all NaN for a failing matrix)."""
    c, lower = fn(args[0], stream=stream)
    return {"L": mx.tril(c) if lower else mx.triu(c), "c": c}


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


def _outer_args(case: Case) -> tuple:
    m, n = case.a.shape
    x = case.a[:, 0] if n else np.zeros(m, case.a.dtype)
    y = case.a[0, :] if m else np.zeros(n, case.a.dtype)
    return (x, y)


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
