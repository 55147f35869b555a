"""Vector-Jacobian products of the dispatched ops, and JVPs as their transposes.

Each rule takes ``(primals, cotangents, outputs, keywords, stream)`` (tuples in the order of
the dispatch contract, without the ``failed`` mask) and returns one cotangent per primal.
Conventions (those of MLX, PyTorch): for a real loss L and an input Z, the cotangent is
``Z̄ = ∂L/∂Re Z + i ∂L/∂Im Z``, so that ``dL = Re tr(Z̄ᴴ dZ)``; for real inputs it is the
ordinary gradient. Ops that read only one triangle of an input (cholesky, eigh, eigvalsh)
return the Hermitian gradient, i.e. they are differentiated as functions of a Hermitian
matrix, as JAX and PyTorch do. Ops that read a triangle of a factor (solve_triangular,
cho_solve, lu_solve) return cotangents supported on that triangle. Every matrix product goes through
``_precision.matmul`` (``_mm``), so a backward pass on a GPU that multiplies float32 in TF32
keeps float32 accuracy (the SVD-based polar gradient was off by 5e-3 relative on the H100
with plain ``@``).

Sources, cited per rule: Murray 2016 (Cholesky), Walter and Lehmann 2018 and Liao et al.
2019 (QR, square, tall and wide), Giles 2008 (solve, inv, det), Townsend 2016 and Wan and
Zhang 2019 (SVD, real and complex), Seeger et al. 2017 (eigh), Golub and Pereyra 1973
(derivative of the pseudo-inverse, for lstsq).

Repeated eigenvalues and singular values (as in PyTorch and JAX): the eigenvector and
singular-vector terms divide by gaps ``λj − λi`` (``σj² − σi²``) and by ``σi``. A term whose
numerator is exactly zero counts as zero (so an unused eigenvector output costs nothing at a
tie); otherwise an exact tie gives inf/NaN and a near tie a large, ill-conditioned gradient,
because the eigenvectors themselves are not differentiable there. ``eigvalsh`` and
``svdvals`` use value-only rules that stay finite and exact at ties.
"""

import mlx.core as mx

from mlx_linalg._autodiff_traced import permutation
from mlx_linalg._checks import fail
from mlx_linalg._devices import eye, on
from mlx_linalg._precision import matmul as _mm


def vjp(op: str, stream, keywords: dict, primals: tuple, cotangents, outputs) -> tuple:
    """Cotangents of ``op``'s inputs, one per primal (zeros for integer inputs)."""
    rule = VJP_RULES.get(op)
    if rule is None:
        fail(op, "gradients of this function are not implemented", NotImplementedError)
    with _backward_stream(stream, primals):
        grads = rule(primals, tuple(cotangents), tuple(outputs), keywords, stream)
    return tuple(
        mx.zeros_like(p) if g is None else g.astype(p.dtype)
        for p, g in zip(primals, grads, strict=True)
    )


def jvp(op: str, stream, keywords: dict, primals: tuple, tangents: tuple, outputs) -> tuple:
    """Tangents of ``op``'s outputs: the transpose of its (linear-in-cotangent) VJP.

    ``t ↦ J t`` is computed as the VJP of ``ȳ ↦ Jᴴ ȳ`` with cotangent ``t``, which holds for
    real-linear maps under the real inner product ``Re tr(Xᴴ Y)`` that MLX uses.
    """
    inputs = [
        i
        for i, (p, t) in enumerate(zip(primals, tangents, strict=True))
        if t is not None and _inexact(p)
    ]
    outs = [j for j, o in enumerate(outputs) if _inexact(o)]
    result = [mx.zeros_like(o) for o in outputs]
    if not inputs or not outs:
        return tuple(result)

    def pullback(*cots):
        full = list(result)
        for j, cot in zip(outs, cots, strict=True):
            full[j] = cot
        grads = vjp(op, stream, keywords, primals, full, outputs)
        return [grads[i] for i in inputs]

    _, out_tangents = mx.vjp(
        pullback,
        [mx.zeros_like(outputs[j]) for j in outs],
        [tangents[i].astype(primals[i].dtype) for i in inputs],
    )
    for j, t in zip(outs, out_tangents, strict=True):
        result[j] = t
    return tuple(result)


# ----------------------------------------------------------------------------- helpers


def _inexact(x: mx.array) -> bool:
    return mx.issubdtype(x.dtype, mx.inexact)


def _complex(x: mx.array) -> bool:
    return mx.issubdtype(x.dtype, mx.complexfloating)


def _backward_stream(stream, primals):
    """Run the backward pass where the forward ran; float64 always on the CPU."""
    if stream is None and any(p.dtype == mx.float64 for p in primals):
        return mx.stream(mx.cpu)
    return on(stream)


def _op(name: str, stream, *arrays: mx.array, **keywords) -> tuple:
    """A dispatched op's outputs (differentiable: this goes through ``_dispatch.run``)."""
    from mlx_linalg import _dispatch

    outputs, _ = _dispatch.run(name, stream, *arrays, **keywords)
    return outputs


def _h(x: mx.array) -> mx.array:
    """Conjugate transpose of the last two axes."""
    xt = mx.swapaxes(x, -1, -2)
    return mx.conj(xt) if _complex(x) else xt


def _tril(x: mx.array, k: int = 0) -> mx.array:
    return mx.where(mx.tri(x.shape[-2], x.shape[-1], k, dtype=mx.bool_), x, 0)


def _triu(x: mx.array, k: int = 0) -> mx.array:
    return mx.where(mx.tri(x.shape[-2], x.shape[-1], k - 1, dtype=mx.bool_), 0, x)


def _diagonal(x: mx.array) -> mx.array:
    return mx.diagonal(x, axis1=-2, axis2=-1)


def _diag_embed(v: mx.array, dtype) -> mx.array:
    return v.astype(dtype)[..., :, None] * eye(v.shape[-1], dtype=dtype)


def _hermitian_part(x: mx.array) -> mx.array:
    return (x + _h(x)) / 2


def _scale_columns(x: mx.array, v: mx.array) -> mx.array:
    """``x @ diag(v)``."""
    return x * v.astype(x.dtype)[..., None, :]


def _scale_rows(v: mx.array, x: mx.array) -> mx.array:
    """``diag(v) @ x``."""
    return v.astype(x.dtype)[..., :, None] * x


def _gap_quotient(x: mx.array, values: mx.array) -> mx.array:
    """``x[i, j] / (values[j] − values[i])`` off the diagonal, 0 on it and where x is 0."""
    gaps = values[..., None, :] - values[..., :, None]
    on_diagonal = mx.eye(values.shape[-1], dtype=mx.bool_)
    return mx.where(on_diagonal | (x == 0), 0, x / mx.where(on_diagonal, 1, gaps).astype(x.dtype))


def _quotient(x: mx.array, d: mx.array) -> mx.array:
    """``x / d`` elementwise, 0 where x is exactly 0 (even where d is 0)."""
    return mx.where(x == 0, 0, x / d.astype(x.dtype))


def _solve_tri(stream, a, b, *, lower, trans=0, unit_diagonal=False):
    return _op(
        "solve_triangular", stream, a, b, lower=lower, unit_diagonal=unit_diagonal, trans=trans
    )[0]


def _adjoint_solve(solve, rhs: mx.array, trans: int) -> mx.array:
    """``op(A)⁻ᴴ rhs`` given ``solve(rhs, t) = op_t(A)⁻¹ rhs`` (op_0 = A, op_1 = Aᵀ, op_2 = Aᴴ).

    ``(Aᵀ)ᴴ = conj(A)``, and ``conj(A)⁻¹ y = conj(A⁻¹ conj(y))``.
    """
    if trans == 0:
        return solve(rhs, 2)
    if trans == 2 or not _complex(rhs):
        return solve(rhs, 0)
    return mx.conj(solve(mx.conj(rhs), 0))


def _from_op_cotangent(g: mx.array, trans: int) -> mx.array:
    """The cotangent of A from that of op(A) (op = identity, transpose, or adjoint)."""
    if trans == 0:
        return g
    return mx.swapaxes(g, -1, -2) if trans == 1 else _h(g)


def _rows(x: mx.array, order: mx.array) -> mx.array:
    """``x[..., order, :]`` for a batched row order."""
    return mx.take_along_axis(x, order[..., :, None], axis=-2)


def _unit_lower(packed: mx.array) -> mx.array:
    n = packed.shape[-1]
    return _tril(packed, -1) + eye(packed.shape[-2], n, dtype=packed.dtype)


def _square_only(fn: str, a: mx.array) -> None:
    if a.shape[-1] != a.shape[-2]:
        fail(
            fn,
            f"gradients are implemented for square matrices only, got shape {tuple(a.shape)}",
            NotImplementedError,
        )


# ------------------------------------------------------------------------------- rules


def _cholesky(p, c, o, kw, s):
    """A = L Lᴴ: Ā = sym(L⁻ᴴ Φ(Lᴴ L̄) L⁻¹), Φ = lower triangle with the diagonal halved.

    Murray, "Differentiation of the Cholesky decomposition", 2016, eq. 10, symmetrized.
    """
    (lbar,), (low,) = c, o
    if kw["upper"]:
        low, lbar = _h(low), _h(lbar)
    phi = _tril(_mm(_h(low), lbar))
    phi = phi - _diag_embed(_diagonal(phi), phi.dtype) / 2
    x = _solve_tri(s, low, phi, lower=True, trans=2)
    y = _solve_tri(s, low, _h(x), lower=True, trans=2)
    return (_hermitian_part(_h(y)),)


def _qr_core(q, r, qbar, rbar, s):
    """M ≥ N: Ā = [Q̄ + Q copyltu(M)] R⁻ᴴ, M = R R̄ᴴ − Q̄ᴴ Q (Liao et al. 2019, eq. 7)."""
    m = _mm(r, _h(rbar)) - _mm(_h(qbar), q)
    low = _tril(m, -1)
    copied = low + _h(low) + _diag_embed(mx.real(_diagonal(m)), m.dtype)
    b = qbar + _mm(q, copied)
    return _h(_solve_tri(s, r, _h(b), lower=False))


def _qr(p, c, o, kw, s):
    """Square and tall: :func:`_qr_core`. Wide A = [X | Y], R = [U | V]: X = QU is square,
    Y = QV, so Ȳ = Q V̄ and X̄ = core(Q, U, Q̄ + Y V̄ᴴ, Ū) (Liao et al. 2019, sec. 3.2)."""
    (a,), (qbar, rbar), (q, r) = p, c, o
    m, n = a.shape[-2:]
    if m > n and kw["mode"] == "complete":
        fail(
            "qr",
            "the gradient of mode='complete' with M > N is not defined (the trailing "
            "columns of Q are not unique); use mode='reduced'",
            ValueError,
        )
    if m >= n:
        return (_qr_core(q, r, qbar, rbar, s),)
    y, vbar = a[..., :, m:], rbar[..., :, m:]
    xbar = _qr_core(q, r[..., :, :m], qbar + _mm(y, _h(vbar)), rbar[..., :, :m], s)
    return (mx.concatenate([xbar, _mm(q, vbar)], axis=-1),)


def _eigh(p, c, o, kw, s):
    """A = V Λ Vᴴ: Ā = sym(V (diag(Λ̄) + F ∘ Vᴴ V̄) Vᴴ), F_ij = 1/(λj − λi).

    Seeger et al., "Auto-differentiating linear algebra", 2017; Giles 2008, sec. 3.1.
    """
    (wbar, vbar), (w, v) = c, o
    inner = _gap_quotient(_mm(_h(v), vbar), w) + _diag_embed(wbar, v.dtype)
    return (_hermitian_part(_mm(_mm(v, inner), _h(v))),)


def _eigvalsh(p, c, o, kw, s):
    """Ā = V diag(Λ̄) Vᴴ, finite at repeated eigenvalues (eigenvectors recomputed)."""
    (a,), (wbar,) = p, c
    _, v = _op("eigh", s, a)
    return (_mm(_scale_columns(v, wbar), _h(v)),)


def _svd_core(u, sv, vh, ubar, sbar, vhbar):
    """Thin SVD A = U Σ Vᴴ (Townsend 2016; complex: Wan and Zhang 2019):

    Ā = U[(F∘(UᴴŪ − ŪᴴU))Σ + Σ(F∘(VᴴV̄ − V̄ᴴV)) + diag(Σ̄) + i Im(diag(UᴴŪ))Σ⁻¹]Vᴴ
        + (I − UUᴴ)ŪΣ⁻¹Vᴴ + UΣ⁻¹V̄ᴴ(I − VVᴴ),   F_ij = 1/(σj² − σi²).
    """
    v, vbar = _h(vh), _h(vhbar)
    dtype = u.dtype
    uhu, vhv = _mm(_h(u), ubar), _mm(_h(v), vbar)
    squares = sv * sv
    inner = _scale_columns(_gap_quotient(uhu - _h(uhu), squares), sv) + _scale_rows(
        sv, _gap_quotient(vhv - _h(vhv), squares)
    )
    inner = inner + _diag_embed(sbar, dtype)
    if mx.issubdtype(dtype, mx.complexfloating):
        inner = inner + _diag_embed(_quotient(1j * mx.imag(_diagonal(uhu)), sv), dtype)
    grad = _mm(_mm(u, inner), vh)
    m, k, n = u.shape[-2], sv.shape[-1], vh.shape[-1]
    if m > k:
        grad = grad + _mm(_quotient(ubar - _mm(u, _mm(_h(u), ubar)), sv[..., None, :]), vh)
    if n > k:
        grad = grad + _mm(u, _quotient(_h(vbar) - _mm(_mm(_h(vbar), v), vh), sv[..., :, None]))
    return grad


def _svd(p, c, o, kw, s):
    """Thin-SVD rule; with full_matrices and M ≠ N the trailing columns of U (rows of Vh)
    are not unique and their cotangents are ignored, as in PyTorch."""
    (ubar, sbar, vhbar), (u, sv, vh) = c, o
    k = sv.shape[-1]
    if kw["full_matrices"]:
        u, ubar, vh, vhbar = u[..., :, :k], ubar[..., :, :k], vh[..., :k, :], vhbar[..., :k, :]
    return (_svd_core(u, sv, vh, ubar, sbar, vhbar),)


def _svdvals(p, c, o, kw, s):
    """Ā = U diag(Σ̄) Vᴴ, finite at repeated singular values (vectors recomputed)."""
    (a,), (sbar,) = p, c
    u, _, vh = _op("svd", s, a, full_matrices=False)
    return (_mm(_scale_columns(u, sbar), vh),)


def _solve(p, c, o, kw, s):
    """X = A⁻¹B: B̄ = A⁻ᴴ X̄, Ā = −B̄ Xᴴ (Giles 2008, sec. 2.3.1)."""
    (a, _), (xbar,), (x,) = p, c, o
    bbar = _op("solve", s, _h(a), xbar)[0]
    return (-_mm(bbar, _h(x)), bbar)


def _inv(p, c, o, kw, s):
    """Y = A⁻¹: Ā = −Yᴴ Ȳ Yᴴ (Giles 2008, sec. 2.2.3)."""
    (ybar,), (y,) = c, o
    yh = _h(y)
    return (-_mm(_mm(yh, ybar), yh),)


def _det(p, c, o, kw, s):
    """Ā = d̄ · adj(A)ᴴ (= d̄ conj(det A) A⁻ᴴ when A is invertible; Giles 2008, sec. 2.2.4).

    The adjugate comes from the SVD, adj(A) = det(U Vᴴ) V diag(∏_{j≠i} σj) Uᴴ, so the
    gradient is right for singular matrices too (rank n − 1 has a non-zero adjugate).
    """
    (a,), (dbar,) = p, c
    u, sv, vh = _op("svd", s, a, full_matrices=False)
    phase = _op("det", s, _mm(u, vh))[0]
    others = mx.cumprod(sv, axis=-1, inclusive=False) * mx.cumprod(
        sv, axis=-1, reverse=True, inclusive=False
    )
    adjugate = phase[..., None, None] * _mm(_scale_columns(_h(vh), others), _h(u))
    return (dbar.astype(a.dtype)[..., None, None] * _h(adjugate),)


def _slogdet(p, c, o, kw, s):
    """Ā = (l̄ + i Im(conj(sign) · sign̄)) A⁻ᴴ; the sign of a real determinant is locally
    constant. Singular matrices (logabsdet = −inf) give non-finite gradients."""
    (a,), (sign_bar, logdet_bar), (sign, _) = p, c, o
    coef = logdet_bar.astype(a.dtype)
    if _complex(a):
        coef = coef + 1j * mx.imag(mx.conj(sign) * sign_bar)
    a_inv = _op("inv", s, a)[0]
    return (coef[..., None, None] * _h(a_inv),)


def _solve_triangular(p, c, o, kw, s):
    """X = op(A)⁻¹B: B̄ = op(A)⁻ᴴX̄, op(A)‾ = −B̄Xᴴ, restricted to the triangle that is read
    (without the diagonal when it is assumed unit)."""
    (a, _), (xbar,), (x,) = p, c, o
    lower, unit, trans = kw["lower"], kw["unit_diagonal"], kw["trans"]

    def solve(rhs, t):
        return _solve_tri(s, a, rhs, lower=lower, trans=t, unit_diagonal=unit)

    bbar = _adjoint_solve(solve, xbar, trans)
    abar = _from_op_cotangent(-_mm(bbar, _h(x)), trans)
    if lower:
        abar = _tril(abar, -1 if unit else 0)
    else:
        abar = _triu(abar, 1 if unit else 0)
    return (abar, bbar)


def _cho_solve(p, c, o, kw, s):
    """X = (LLᴴ)⁻¹B: B̄ = A⁻¹X̄, Ā = −B̄Xᴴ, L̄ = tril((Ā + Āᴴ) L) (upper: Ū = triu(U(Ā + Āᴴ)))."""
    (factor, _), (xbar,), (x,) = p, c, o
    lower = kw["lower"]
    bbar = _op("cho_solve", s, factor, xbar, lower=lower)[0]
    abar = -_mm(bbar, _h(x))
    sym = abar + _h(abar)
    if lower:
        return (_tril(_mm(sym, _tril(factor))), bbar)
    return (_triu(_mm(_triu(factor), sym)), bbar)


def _lu_solve(p, c, o, kw, s):
    """A = PLU, X = op(A)⁻¹B: B̄ = op(A)⁻ᴴX̄, Ā from op(A)‾ = −B̄Xᴴ, then
    L̄ = tril(PᵀĀUᴴ, −1) and Ū = triu(LᴴPᵀĀ) packed like the factor."""
    (packed, piv, _), (xbar,), (x,) = p, c, o
    trans = kw["trans"]

    def solve(rhs, t):
        return _op("lu_solve", s, packed, piv, rhs, trans=t)[0]

    bbar = _adjoint_solve(solve, xbar, trans)
    abar = _from_op_cotangent(-_mm(bbar, _h(x)), trans)
    pt_abar = _rows(abar, permutation(piv, packed.shape[-1]))
    lbar = _tril(_mm(pt_abar, _h(_triu(packed))), -1)
    ubar = _triu(_mm(_h(_unit_lower(packed)), pt_abar))
    return (lbar + ubar, None, bbar)


def _lu_core(low, up, lbar, ubar, s):
    """Square A = PLU: Ā = P L⁻ᴴ [tril(LᴴL̄, −1) + triu(ŪUᴴ)] U⁻ᴴ, returned without P.

    From dL = L tril(L⁻¹PᵀdA U⁻¹, −1), dU = triu(L⁻¹PᵀdA U⁻¹) U (e.g. JAX's lu JVP).
    """
    g = _tril(_mm(_h(low), lbar), -1) + _triu(_mm(ubar, _h(up)))
    y = _solve_tri(s, low, g, lower=True, trans=2, unit_diagonal=True)
    return _h(_solve_tri(s, up, _h(y), lower=False))


def _lu_factor(p, c, o, kw, s):
    """Packed LU of a square matrix: :func:`_lu_core` with rows put back by P."""
    (a,), (packed_bar, _), (packed, piv) = p, c, o
    _square_only("lu_factor", a)
    core = _lu_core(_unit_lower(packed), _triu(packed), _tril(packed_bar, -1), _triu(packed_bar), s)
    order = permutation(piv, a.shape[-1])
    return (_rows(core, mx.argsort(order, axis=-1)),)


def _lu(p, c, o, kw, s):
    """A = PLU of a square matrix: P :func:`_lu_core`; P is piecewise constant."""
    (a,), (_, lbar, ubar), (perm, low, up) = p, c, o
    _square_only("lu", a)
    return (_mm(perm, _lu_core(low, up, lbar, ubar, s)),)


def _lstsq(p, c, o, kw, s):
    """Minimum-norm X = A⁺B with A⁺ truncated at ``rcond``. With R = B − AX (Golub and
    Pereyra 1973, dA⁺ = −A⁺dA A⁺ + A⁺A⁺ᴴdAᴴ(I − AA⁺) + (I − A⁺A)dAᴴA⁺ᴴA⁺):

    B̄ = A⁺ᴴX̄,  Ā = −B̄Xᴴ + R(A⁺B̄)ᴴ + A⁺ᴴX((I − A⁺A)X̄)ᴴ + U diag(s̄) Vᴴ,

    the last term for the singular values output. Valid where the rank is locally constant.
    """
    (a, b), (xbar, _, sbar), (x, _, _) = p, c, o
    u, sv, vh = _op("svd", s, a, full_matrices=False)
    largest = sv[..., :1] if sv.shape[-1] else mx.zeros((*sv.shape[:-1], 1), dtype=sv.dtype)
    keep = sv > kw["rcond"] * largest
    inv_s = mx.where(keep, 1 / mx.where(keep, sv, 1), 0)
    v = _h(vh)
    bbar = _mm(u, _scale_rows(inv_s, _mm(vh, xbar)))
    pinv_bbar = _mm(v, _scale_rows(inv_s, _mm(_h(u), bbar)))
    pinv_h_x = _mm(u, _scale_rows(inv_s, _mm(vh, x)))
    residual = b - _mm(a, x)
    off_range = xbar - _mm(v, _scale_rows(keep, _mm(vh, xbar)))
    abar = (
        -_mm(bbar, _h(x))
        + _mm(residual, _h(pinv_bbar))
        + _mm(pinv_h_x, _h(off_range))
        + _mm(_scale_columns(u, sbar), vh)
    )
    return (abar, bbar)


VJP_RULES = {
    "cholesky": _cholesky,
    "qr": _qr,
    "eigh": _eigh,
    "eigvalsh": _eigvalsh,
    "svd": _svd,
    "svdvals": _svdvals,
    "solve": _solve,
    "inv": _inv,
    "det": _det,
    "slogdet": _slogdet,
    "solve_triangular": _solve_triangular,
    "cho_solve": _cho_solve,
    "lu_solve": _lu_solve,
    "lu_factor": _lu_factor,
    "lu": _lu,
    "lstsq": _lstsq,
}
