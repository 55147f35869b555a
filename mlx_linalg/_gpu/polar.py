"""Polar decomposition A = U H of stacks of matrices: QDWH and Newton–Schulz, as lazy MLX
graphs (no host synchronization; a fixed number of iterations, convergence per matrix
handled by masks).

Both take (..., M, N) float32 or float64 stacks; a wide matrix (M < N) is handled through
its transpose (the polar factor of Aᵀ is Uᵀ). U (..., M, N) has orthonormal columns (rows
when M < N) and H = sym(UᵀA) (..., N, N) is symmetric positive semidefinite. Every matrix
product goes through :func:`mlx_linalg._precision.matmul`; the Cholesky, triangular solve
and Householder QR the QDWH iteration needs come from a pluggable
:class:`mlx_linalg._gpu.tall_skinny.Factor` (MLX's CPU LAPACK ops by default).

QDWH (Nakatsukasa, Bai & Gygi, SIAM J. Matrix Anal. Appl. 31, 2010; Nakatsukasa & Higham,
SIAM J. Sci. Comput. 35, 2013) is the general-purpose method: 5 iterations in float32 (7
in float64), planned for singular values down to ε/16 of the scaling α >= ‖A‖₂.
Newton–Schulz needs only matrix products (4MN² flops per iteration, no factorization) but
its iteration count grows like log₁.₅ κ(A): it is the right choice for matrices already
close to orthonormal.
"""

import math

import mlx.core as mx

from mlx_linalg import _precision
from mlx_linalg._gpu import reference
from mlx_linalg._gpu.scaling import prescale, times_power_of_two
from mlx_linalg._gpu.tall_skinny import LAPACK, Factor, gram, unit_roundoff

# QDWH iterations whose weight c_k exceeds this use the QR-based form (backward stable for
# any c_k); below it, the Cholesky-based form, whose Gram matrix I + c_k XᵀX then has
# condition number at most 1 + c_k (Nakatsukasa & Higham 2013, §4: c_k <= 100).
QR_WHEN_C_ABOVE = 100.0
# Default lower bound, relative to the scaling α >= ‖A‖₂, below which singular values are
# treated as numerically zero by the static QDWH schedule: the dtype's epsilon / 16
# (7.5e-9 in float32: κ(A) up to 1e7 with α up to 13x above ‖A‖₂).
L_FLOOR_FACTOR = 1.0 / 16.0
# Default σ_min(X₀) for which Newton–Schulz's iteration bound is computed.
NS_SIGMA_FLOOR = 1e-3


def _eps(dtype: mx.Dtype) -> float:
    return 2 * unit_roundoff(dtype)


def qdwh_weights(lo):
    """The dynamically weighted Halley parameters for a lower bound ``lo`` ∈ (0, 1] on the
    singular values of the current iterate (NBG 2010, eqs. (3.8)-(3.10)).

    Works on Python floats and on MLX arrays alike.

    Returns:
        ``(a, b, c, l_next)`` with l_next = l(a + b l²)/(1 + c l²) (l = ``lo``), the
        bound for the next iterate.
    """
    lib = mx if isinstance(lo, mx.array) else math
    l2 = lo * lo
    # d = (4(1 - l²)/l⁴)^(1/3), written with l^(4/3) so that l⁴ cannot underflow.
    d = (4 * (1 - l2)) ** (1 / 3) / lo ** (4 / 3)
    sqd = lib.sqrt(1 + d)
    a = sqd + 0.5 * lib.sqrt(8 - 4 * d + 8 * (2 - l2) / (l2 * sqd))
    b = (a - 1) ** 2 / 4
    c = a + b - 1
    l_next = lo * (a + b * l2) / (1 + c * l2)
    if lib is math:
        return a, b, c, min(l_next, 1.0)
    return a, b, c, mx.minimum(l_next, 1)


def qdwh_schedule(l_floor: float, u: float) -> list[bool]:
    """The static iteration schedule for singular values down to ``l_floor``.

    Runs the bound recursion from ``l_floor`` in float64 until 1 - l_k <= u, plus one
    iteration for rounding. Returns one entry per iteration: True where c_k > 100 (QR-based
    iteration), False for the Cholesky-based ones. Because c_k decreases as l grows, a
    matrix with a larger bound never needs the QR form where this schedule has Cholesky.
    """
    schedule = []
    lo = l_floor
    while 1 - lo > u and len(schedule) < 20:
        _, _, c, lo = qdwh_weights(lo)
        schedule.append(c > QR_WHEN_C_ABOVE)
    return schedule + [False]


def _batched_tall(x: mx.array) -> tuple[mx.array, bool]:
    """(..., M, N) as a tall (B, max, min) stack and whether it was transposed."""
    a = x.reshape(math.prod(x.shape[:-2]), *x.shape[-2:])
    wide = a.shape[-2] < a.shape[-1]
    return (mx.swapaxes(a, -1, -2) if wide else a), wide


def norm_bounds(g: mx.array, m: int) -> tuple[mx.array, mx.array]:
    """Cheap bounds on the extreme singular values of X from its Gram matrix G = XᵀX.

    Returns:
        ``(alpha, lower)`` (B,): α = √min(‖G‖_∞, trace G) >= ‖X‖₂ (Gershgorin's bound on
        λ_max(G), or ‖X‖_F), and ``lower``, Gershgorin's lower bound on λ_min(G),
        min_i (G_ii(1 - 4√M·u) - Σ_{j≠i} |G_ij|), clipped at 0, over α²: a guaranteed lower
        bound on (σ_min(X)/α)² (the factor on G_ii allows for G's rounding). It is
        positive only when XᵀX is diagonally dominant (X close to orthogonal columns, up
        to column scaling); otherwise 0.
    """
    u = unit_roundoff(g.dtype)
    absg = mx.abs(g)
    diag = mx.diagonal(g, axis1=-2, axis2=-1)
    off = mx.sum(absg, axis=-1) - mx.abs(diag)
    alpha2 = mx.minimum(mx.max(mx.sum(absg, axis=-1), axis=-1), mx.sum(diag, axis=-1))
    alpha2 = mx.where(alpha2 > 0, alpha2, 1)
    lower = mx.min(diag * (1 - 4 * math.sqrt(m) * u) - off, axis=-1)
    return mx.sqrt(alpha2), mx.maximum(lower, 0) / alpha2


def _frobenius(x: mx.array) -> mx.array:
    return mx.sqrt(mx.sum(mx.square(x), axis=(-2, -1)))


def _qr_step(factor: Factor, x, a, b, c):
    """X (a I + b XᵀX)(I + c XᵀX)⁻¹ by the QR-based form (NBG 2010, eq. (3.14)):
    [√c X; I] = [Q₁; Q₂] R, X' = (b/c) X + (1/√c)(a - b/c) Q₁Q₂ᵀ."""
    m, n = x.shape[-2:]
    sc = mx.sqrt(c)
    eye = mx.broadcast_to(mx.eye(n, dtype=x.dtype), (x.shape[0], n, n))
    q, _ = factor.householder(mx.concatenate([sc * x, eye], axis=1))
    q1, q2 = q[:, :m], q[:, m:]
    return (b / c) * x + ((a - b / c) / sc) * _precision.matmul(q1, mx.swapaxes(q2, -1, -2))


def _cholesky_step(factor: Factor, x, a, b, c):
    """The same iterate by the Cholesky-based form (Nakatsukasa & Higham 2013, eq. (4.3)):
    Z = I + c XᵀX = L Lᵀ, X' = (b/c) X + (a - b/c) X Z⁻¹, with X Z⁻¹ from two triangular
    solves. Returns ``(X', failed)``."""
    n = x.shape[-1]
    z = c * gram(x) + mx.eye(n, dtype=x.dtype)
    lower, failed = factor.cholesky(z)
    y = factor.trsm(lower, mx.swapaxes(x, -1, -2))
    w = mx.swapaxes(factor.trsm(lower, y, trans=True), -1, -2)
    return (b / c) * x + (a - b / c) * w, failed


def _sym(h: mx.array) -> mx.array:
    return (h + mx.swapaxes(h, -1, -2)) * 0.5


def _finish(a_tall, exponent, u_tall, finite, wide, shape, side, info):
    """H = sym(UᵀA) (or P = sym(AUᵀ) for side="left"), the NaN mask, and the caller's
    shapes. ``a_tall``/``u_tall`` are (B, T, S) with T >= S: A or, when ``wide``, Aᵀ,
    scaled by 2^-exponent (H is formed from it and scaled back, so it overflows only if
    its entries do)."""
    batch = shape[:-2]
    m, n = shape[-2:]
    # For the tall orientation, sym(u_tallᵀ a_tall) (S x S) is H of A = UH when A is tall
    # and P of A = PU when A is wide (P = sym(AUᵀ) = sym(u_tallᵀ a_tall)); the other
    # factor is sym(a_tall u_tallᵀ) (T x T).
    small_side = (side == "right") != wide
    if small_side:
        h = _precision.matmul(mx.swapaxes(u_tall, -1, -2), a_tall)
    else:
        h = _precision.matmul(a_tall, mx.swapaxes(u_tall, -1, -2))
    h = reference.nan_where(~finite, times_power_of_two(_sym(h), exponent))
    u_tall = reference.nan_where(~finite, u_tall)
    u = mx.swapaxes(u_tall, -1, -2) if wide else u_tall
    size = n if side == "right" else m
    return u.reshape(*batch, m, n), h.reshape(*batch, size, size), info.reshape(batch)


def _empty(x: mx.array, side: str) -> tuple[mx.array, mx.array, mx.array]:
    """The results for a stack with no entries: U zeros (..., M, N), H zeros, info 0."""
    batch = x.shape[:-2]
    size = x.shape[-1] if side == "right" else x.shape[-2]
    return (
        mx.zeros(x.shape, dtype=x.dtype),
        mx.zeros((*batch, size, size), dtype=x.dtype),
        mx.zeros(batch, dtype=mx.int32),
    )


def _check(fn: str, x: mx.array, side: str) -> None:
    if x.ndim < 2:
        raise ValueError(f"[mlx_linalg.{fn}] expected a (..., M, N) array, got {x.shape}")
    if x.dtype not in (mx.float32, mx.float64):
        raise TypeError(f"[mlx_linalg.{fn}] expected float32 or float64, got {x.dtype}")
    if side not in ("right", "left"):
        raise ValueError(f"[mlx_linalg.{fn}] side must be 'right' or 'left', got {side!r}")


def qdwh(
    x: mx.array,
    factor: Factor = LAPACK,
    *,
    side: str = "right",
    l_floor: float | None = None,
) -> tuple[mx.array, mx.array, mx.array]:
    """Polar decomposition by the QR-based dynamically weighted Halley iteration (QDWH).

    Args:
        x: (..., M, N) float32 or float64.
        factor: Cholesky, triangular solve and Householder QR (tall_skinny.LAPACK on the
            CPU, tall_skinny.KERNELS on the GPU).
        side: ``"right"``: A = U H, H (..., N, N); ``"left"``: A = H U, H (..., M, M).
        l_floor: the smallest σ_min(A)/α (α >= ‖A‖₂ the scaling below) the iteration count
            is planned for; default ε/16 of the dtype. A larger value (a known bound on
            κ(A)) gives fewer iterations.

    Returns:
        ``(U, H, info)``: U (..., M, N) with orthonormal columns (rows if M < N), H
        symmetric positive semidefinite, and ``info`` (...) int32: the iteration after
        which the matrix met the stopping test, or -K (K the number of iterations) if it
        never did. Matrices holding NaN or Inf give NaN U and H (and info = -K); other
        matrices of the stack are unaffected. Empty input (M or N or the batch 0) gives
        zero-size or zero U and H and info 0.

    Notes:
        X₀ = A/α with α = √min(‖AᵀA‖_∞, ‖A‖_F²) >= ‖A‖₂ (after an exact power-of-two
        prescaling). Each iteration is X ← X(a I + b XᵀX)(I + c XᵀX)⁻¹, the best rational
        approximation of type (3, 2) to the sign function on [l, 1] (NBG 2010, §3), with
        a, b, c per matrix from its current lower bound l on σ_min(X) (``qdwh_weights``).

        The bound: l₀ = max(l_floor, Gershgorin's lower bound on λ_min(X₀ᵀX₀)^(1/2)), which
        costs nothing beyond the Gram matrix already formed for α (``norm_bounds``). It is
        a guaranteed bound, useful when the columns of A are nearly orthogonal; for a
        general matrix it is 0 and l₀ = l_floor, which is also a valid bound unless A is
        numerically rank deficient at that level. (NBG estimate σ_min with a condition
        estimator on a QR of A; a lazy graph cannot branch on it, so the iteration count
        would not change, only the weights.)

        The graph is static: the number of iterations K and which of them use the
        QR-based form (c_k > 100: [√c X; I] = QR, about 2(M+N)N² flops for the QR plus a
        product) or the Cholesky-based form (I + c XᵀX = LLᵀ; a Gram product, N³/3 and two
        triangular solves) are fixed by the bound recursion from ``l_floor``
        (``qdwh_schedule``): in float32 with the default, 2 QR-based and 3 Cholesky-based
        iterations; in float64, 3 and 4. A matrix stops (its iterate is frozen by
        ``mx.where``) once ‖X_{k+1} - X_k‖_F <= (5u)^(1/3) and 1 - l_{k+1} <= 10u (NBG
        2010, §4.1): by cubic convergence its error is then O(u).

        Rank-deficient A (singular values below l_floor·α): those directions are not
        planned for; they start at rounding level and grow by about the factor a_k per
        iteration, so U's singular values there end anywhere in [0, 1] (0 for the zero
        matrix; often 1, when the rounding noise is amplified all the way). Unless they
        all reached 1 (U orthonormal, info > 0), U is an isometry on the numerical range
        of A only and info = -K. Either way A = U H holds to working precision with H the
        unique symmetric positive semidefinite factor √(AᵀA). Use an SVD-based polar (or
        :func:`mlx_linalg._gpu.spectral_dc.svd`) when an orthonormal U is required for
        rank-deficient input.

    See Also:
        scipy.linalg.polar
    """
    _check("polar", x, side)
    if x.size == 0:
        return _empty(x, side)
    a, wide = _batched_tall(x)
    m, n = a.shape[-2:]
    u = unit_roundoff(a.dtype)
    l_floor = _eps(a.dtype) * L_FLOOR_FACTOR if l_floor is None else float(l_floor)
    schedule = qdwh_schedule(l_floor, u)
    scaled, exponent, finite = prescale(a)
    g = gram(scaled)
    alpha, lower = norm_bounds(g, m)
    xk = scaled / alpha[:, None, None]
    bound = mx.clip(mx.sqrt(lower), l_floor, 1).astype(a.dtype)
    done = ~finite
    broken = ~finite
    info = mx.zeros(done.shape, dtype=mx.int32)
    tol_change = (5 * u) ** (1 / 3)
    for k, use_qr in enumerate(schedule, start=1):
        wa, wb, wc, l_next = qdwh_weights(bound)
        wa, wb, wc = (w[:, None, None] for w in (wa, wb, wc))
        if use_qr:
            new = _qr_step(factor, xk, wa, wb, wc)
        else:
            new, failed = _cholesky_step(factor, xk, wa, wb, wc)
            # I + cXᵀX has eigenvalues >= 1, so this cannot fail for finite data; should it
            # ever, the matrix keeps its previous iterate and is flagged (info = -K).
            new = mx.where(failed[:, None, None], xk, new)
            broken = broken | (failed & ~done)
        change = _frobenius(new - xk)
        xk = mx.where(done[:, None, None], xk, new)
        bound = mx.where(done, bound, l_next)
        now = ~done & (change <= tol_change) & (1 - bound <= 10 * u)
        info = mx.where(now, k, info)
        done = done | now
    info = mx.where(done & ~broken, info, -len(schedule))
    return _finish(scaled, exponent, xk, finite, wide, x.shape, side, info)


def newton_schulz_steps(sigma: float, u: float) -> int:
    """Iterations of X ← X(3I - XᵀX)/2 after which a singular value ``sigma`` ∈ (0, 1] of
    X₀ is within u of 1 (the scalar recursion s ← s(3 - s²)/2, exact for the slowest,
    smallest singular value)."""
    steps, s = 0, sigma
    while 1 - s > u and steps < 1000:
        s = s * (3 - s * s) / 2
        steps += 1
    return steps


def newton_schulz(
    x: mx.array,
    *,
    side: str = "right",
    max_iterations: int | None = None,
    sigma_floor: float = NS_SIGMA_FLOOR,
) -> tuple[mx.array, mx.array, mx.array]:
    """Polar decomposition by the Newton–Schulz iteration X ← X(3I - XᵀX)/2.

    Args:
        x: (..., M, N) float32 or float64.
        side: ``"right"`` (A = U H) or ``"left"`` (A = H U).
        max_iterations: the iteration bound K; default: enough for σ_min(X₀) >=
            ``sigma_floor`` (``newton_schulz_steps``) plus one.
        sigma_floor: see ``max_iterations``.

    Returns:
        ``(U, H, info)`` as :func:`qdwh`: ``info`` is the iteration after which the matrix
        met the stopping test, or -K if the bound ran out first (then U is not
        orthonormal: A was too ill-conditioned for K iterations, or rank deficient).

    Notes:
        X₀ = A/α with α = min(‖A‖_F, √(‖A‖₁‖A‖_∞)) >= ‖A‖₂, so every singular value of X₀
        lies in (0, 1] ⊂ (0, √3): the iteration acts on each singular value as
        s ← g(s) = s(3 - s²)/2, which maps (0, √3) into (0, 1] and increases every s in
        (0, 1) monotonically to 1 (g(s) > s there, g(1) = 1): it converges to the polar
        factor for every A of full rank
        (Higham, Functions of Matrices, 2008, §8.3; Kovarik 1970, Björck & Bowie 1971).
        Speed: while s is small, s grows by a factor of about 1.5 per iteration
        (≈ log₁.₅(1/σ_min(X₀)) iterations to reach 1/2); after that quadratically,
        1 - s' <= (3/2)(1 - s)². From σ_min(X₀) = 1e-3: 21 iterations in float32. Each
        iteration is two matrix products (4MN² flops), no factorization: the method of
        choice for nearly orthonormal A (κ(A) small), e.g. re-orthonormalizing the output
        of another iteration.

        A matrix stops (frozen by ``mx.where``) once ‖I - XᵀX‖_F <= τ = max(2√u, (√N·u)^½):
        every singular value of its next iterate is then within (3/8)τ² of 1 (1.5u for
        N <= 16; beyond, τ stays above the rounding floor of ‖I - XᵀX‖_F, measured about
        0.3·N·u in float32, and the next iterate's ‖I - XᵀX‖_F is O(N·u)). Zero singular
        values stay zero (U is then an isometry on the range of A only, and info = -K).

    See Also:
        scipy.linalg.polar
    """
    _check("polar", x, side)
    if x.size == 0:
        return _empty(x, side)
    a, wide = _batched_tall(x)
    m, n = a.shape[-2:]
    u = unit_roundoff(a.dtype)
    if max_iterations is None:
        max_iterations = newton_schulz_steps(sigma_floor, u) + 1
    scaled, exponent, finite = prescale(a)
    frob = _frobenius(scaled)
    one_inf = mx.sqrt(
        mx.max(mx.sum(mx.abs(scaled), axis=-2), axis=-1)
        * mx.max(mx.sum(mx.abs(scaled), axis=-1), axis=-1)
    )
    alpha = mx.minimum(frob, one_inf)
    alpha = mx.where(alpha > 0, alpha, 1)
    xk = scaled / alpha[:, None, None]
    eye = mx.eye(n, dtype=a.dtype)
    done = ~finite
    info = mx.zeros(done.shape, dtype=mx.int32)
    tol = max(2 * math.sqrt(u), math.sqrt(math.sqrt(n) * u))
    for k in range(1, max_iterations + 1):
        residual = eye - gram(xk)
        new = xk + 0.5 * _precision.matmul(xk, residual)
        now = ~done & (_frobenius(residual) <= tol)
        xk = mx.where(done[:, None, None], xk, new)
        info = mx.where(now, k, info)
        done = done | now
    info = mx.where(done & finite, info, -max_iterations)
    return _finish(scaled, exponent, xk, finite, wide, x.shape, side, info)
