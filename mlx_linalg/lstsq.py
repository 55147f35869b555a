"""Linear least squares: SVD-based (gelsd, any rank) and QR-based (gels, full rank)."""

import mlx.core as mx

from mlx_linalg import _dispatch, _precision
from mlx_linalg._checks import (
    as_array,
    compute_dtype,
    default_rtol,
    prepare_rhs,
    real_dtype,
    require_choice,
    require_matrix,
)
from mlx_linalg._devices import float64_on_cpu, on
from mlx_linalg._errors import check_failures
from mlx_linalg._gpu.reference import nan_where
from mlx_linalg._results import LstsqResult
from mlx_linalg._types import StreamOrDevice, Tolerance

DRIVERS = ("gelsd", "gels")
RANK_DEFICIENT = (
    "matrix is numerically rank deficient (driver='gels' needs full rank; "
    "use driver='gelsd' for rank-deficient input)"
)


@float64_on_cpu
def lstsq(
    a: mx.array,
    b: mx.array,
    rcond: Tolerance = None,
    *,
    driver: str = "gelsd",
    stream: StreamOrDevice = None,
) -> LstsqResult:
    """Least-squares solution of ``a x ≈ b`` (minimum-norm where it is not unique).

    Args:
        a: (..., M, N).
        b: (M,) or (..., M, K); an exactly 1-D ``b`` is a vector.
        rcond: relative cutoff; default ``max(M, N) * eps`` with eps of the result dtype
            (float16/bfloat16 too, although they are computed in float32), as NumPy's
            default. ``"gelsd"``: singular values at most ``rcond * max(S)`` count as zero.
            ``"gels"``: a matrix whose R has a diagonal entry with
            ``|r_ii| <= rcond * max_j |r_jj|`` is numerically rank deficient (a failure).
        driver: ``"gelsd"`` (default): SVD-based, any rank, returns the singular values;
            runs LAPACK on the CPU. ``"gels"``: QR-based, for full-rank ``a`` only; runs on
            the GPU where ``qr`` and ``solve_triangular`` do (lazily, no host
            synchronization unless ``errstate(linalg="raise")``), so choose it there. Named
            as in ``torch.linalg.lstsq``.
        stream: MLX stream or device.

    Returns:
        ``LstsqResult(solution, residuals, rank, s)``: solution (..., N) or (..., N, K);
        residuals (..., K) (K = 1 for a vector b): squared 2-norms of the columns of
        ``b − a x`` when M > N, else shape (..., 0); rank (...,) int32.
        ``"gelsd"``: rank is the numerical rank and s (..., min(M, N)) the singular
        values of ``a``. ``"gels"``: rank is min(M, N) (every matrix is full rank or
        failed) and s is empty, shape (..., 0): QR gives no singular values (as
        ``torch.linalg.lstsq`` with ``driver="gels"``). A numerically rank-deficient
        matrix gives an all-NaN solution (and residuals), or raises :class:`LinAlgError`
        naming its batch index under ``errstate(linalg="raise")``: use ``"gelsd"`` there.

    Notes:
        ``"gelsd"``: LAPACK gelsd (SVD by divide and conquer), about 4MN² + 8N³ flops
        for M ≥ N.
        ``"gels"``: Householder QR as LAPACK xGELS (Golub and Van Loan, Matrix
        Computations, 4th ed., §5.3.3 and §5.6.2): for M ≥ N, a = QR (reduced) and
        x = R⁻¹(Qᴴb); for M < N, the minimum-norm solution from aᴴ = QR,
        x = Q(R⁻ᴴb) (for M < N read M and N swapped below). Unlike xGELS, Q is formed
        (``qr`` is the differentiable building block): 4N²(M − N/3) flops for Q and R,
        2MNK for Qᴴb, N²K for the solve. On the CPU that makes it slower than gelsd for
        large single matrices (2000×500 float32, K = 4: 160 against 67 ms on 2 cores)
        and faster for stacks of small ones (1000×32×16: 17 against 52 ms). Products are
        float32-accurate on any GPU (``mlx_linalg.matmul``). The rank test reads the
        diagonal of R, which bounds the condition number from below
        (max|r_jj| / min|r_ii| ≤ κ₂(a)): a matrix with κ₂(a) < 1/rcond is never
        flagged, but QR without pivoting is not rank revealing, so an unflagged matrix
        may still be ill-conditioned; its solution then carries the error κ₂(a)·u of
        any backward-stable solver (and κ₂(a)²·u from the residual when M > N).
        Differentiable by composition (qr, solve_triangular, products) wherever the
        rank does not change; gelsd's gradient is the pseudo-inverse rule.
        # Note: unlike NumPy, residuals are also returned for rank-deficient ``a`` (when
        # M > N) with driver="gelsd", so a batch has one shape.

    See Also:
        scipy.linalg.lstsq, numpy.linalg.lstsq, torch.linalg.lstsq
    """
    require_choice("lstsq", "driver", driver, DRIVERS)
    a = as_array("lstsq", a, name="a")
    require_matrix("lstsq", a, name="a")
    b = as_array("lstsq", b, name="b")
    computed, result = compute_dtype("lstsq", a, b)
    m, n = a.shape[-2:]
    a, b, vector = prepare_rhs("lstsq", a.astype(computed), b.astype(computed), rows=m)
    if rcond is None:
        rcond = default_rtol(a.shape, result)
    x, rank, s = _SOLVERS[driver](a, b, float(rcond), stream)
    if m > n:
        r = b - _precision.matmul(a, x, stream=stream)
        residuals = (mx.abs(r) ** 2).sum(axis=-2)
    else:
        residuals = mx.zeros(b.shape[:-2] + (0,), dtype=real_dtype(computed))
    solution = x[..., 0] if vector else x
    return LstsqResult(
        solution.astype(result),
        residuals.astype(real_dtype(result)),
        rank,
        s.astype(real_dtype(result)),
    )


def _solve_svd(a: mx.array, b: mx.array, rcond: float, stream: StreamOrDevice) -> tuple:
    """``(x, rank, s)`` of LAPACK gelsd, which takes neither empty matrices nor K = 0."""
    batch, (m, n), k = tuple(a.shape[:-2]), tuple(a.shape[-2:]), b.shape[-1]
    if a.size == 0:  # an empty batch, M = 0 or N = 0: x = 0 is the minimum-norm solution
        return (
            mx.zeros(batch + (n, k), dtype=a.dtype),
            mx.zeros(batch, dtype=mx.int32),
            mx.zeros(batch + (min(m, n),), dtype=real_dtype(a.dtype)),
        )
    if k == 0:  # rank and s still come from a: solve for one zero column, keep none
        (x, rank, s), _ = _dispatch.run(
            "lstsq", stream, a, mx.zeros(batch + (m, 1), dtype=a.dtype), rcond=rcond
        )
        return x[..., :0], rank, s
    (x, rank, s), _ = _dispatch.run("lstsq", stream, a, b, rcond=rcond)
    return x, rank, s


def _solve_qr(a: mx.array, b: mx.array, rcond: float, stream: StreamOrDevice) -> tuple:
    """``(x, rank, s)`` as LAPACK xGELS: QR of a (M ≥ N) or of aᴴ (M < N), then one
    triangular solve; numerically rank-deficient matrices are failures (NaN or raise)."""
    batch, (m, n), k = tuple(a.shape[:-2]), tuple(a.shape[-2:]), b.shape[-1]
    with on(stream):
        rank = mx.full(batch, min(m, n), dtype=mx.int32)
        s = mx.zeros(batch + (0,), dtype=real_dtype(a.dtype))
        if a.size == 0:  # an empty batch, M = 0 or N = 0: x = 0 is the minimum-norm solution
            return mx.zeros(batch + (n, k), dtype=a.dtype), rank, s
        tall = m >= n
        (q, r), _ = _dispatch.run("qr", stream, a if tall else _ct(a), mode="reduced")
        failed = _rank_deficient(r, rcond)
        check_failures("lstsq", RANK_DEFICIENT, failed)
        if k == 0:
            return mx.zeros(batch + (n, 0), dtype=a.dtype), rank, s
        if tall:  # a = QR: x = R⁻¹ (Qᴴ b)
            qhb = _precision.matmul(_ct(q), b, stream=stream)
            x = _triangular(r, qhb, trans=0, stream=stream)
        else:  # aᴴ = QR, a = Rᴴ Qᴴ: y = R⁻ᴴ b, x = Q y
            y = _triangular(r, b, trans=2, stream=stream)
            x = _precision.matmul(q, y, stream=stream)
        return nan_where(failed, x), rank, s


def _rank_deficient(r: mx.array, rcond: float) -> mx.array:
    """(...) bool: some ``|r_ii| <= rcond * max_j |r_jj|`` of the (..., K, K') factor R."""
    d = mx.abs(mx.diagonal(r, axis1=-2, axis2=-1))
    return (d <= rcond * d.max(axis=-1, keepdims=True)).any(axis=-1)


def _triangular(r: mx.array, b: mx.array, *, trans: int, stream: StreamOrDevice) -> mx.array:
    """op(R) X = B for upper triangular R (its zero pivots are already flagged failures)."""
    (x,), _ = _dispatch.run(
        "solve_triangular", stream, r, b, lower=False, unit_diagonal=False, trans=trans
    )
    return x


def _ct(x: mx.array) -> mx.array:
    """Conjugate transpose of the last two axes."""
    return mx.conj(mx.swapaxes(x, -1, -2))


_SOLVERS = {"gelsd": _solve_svd, "gels": _solve_qr}
