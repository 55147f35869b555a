"""Orthogonalization from the SVD: polar, orth, null_space; polar also by QDWH or
Newton–Schulz iterations (``mlx_linalg._gpu.polar``)."""

import mlx.core as mx
import numpy as np

from mlx_linalg import _dispatch, _precision
from mlx_linalg._checks import default_rtol, fail, prepare, require_choice
from mlx_linalg._devices import float64_on_cpu, on
from mlx_linalg._errors import check_failures
from mlx_linalg._gpu import polar as polar_iterations
from mlx_linalg._gpu import tall_skinny
from mlx_linalg._gpu.reference import nan_where
from mlx_linalg._results import PolarResult
from mlx_linalg._types import StreamOrDevice, Tolerance


@float64_on_cpu
def polar(
    a: mx.array, side: str = "right", *, method: str = "svd", stream: StreamOrDevice = None
) -> PolarResult:
    """Polar decomposition ``a = u p`` (side="right") or ``a = p u`` (side="left").

    Args:
        a: (..., M, N).
        side: "right" gives p (..., N, N); "left" gives p (..., M, M).
        method: ``"svd"`` (default; any input), ``"qdwh"`` (real input of full rank,
            κ(a) up to about 10⁷ in float32) or ``"newton_schulz"`` (real input close to
            orthonormal, κ(a) up to about 10³): see Notes.
        stream: MLX stream or device.

    Returns:
        ``PolarResult(u, p)``: u (..., M, N) with orthonormal columns (M ≥ N) or rows
        (M < N), p Hermitian positive semi-definite. With ``"qdwh"`` or
        ``"newton_schulz"``, a matrix whose iteration did not reach an orthonormal u (rank
        deficient, too ill-conditioned, NaN/Inf) comes back all NaN, or raises
        :class:`LinAlgError` under ``errstate(linalg="raise")``.

    Notes:
        ``"svd"``: from the thin SVD a = U Σ Vᴴ, u = U Vᴴ, p = V Σ Vᴴ (right) or U Σ Uᴴ
        (left) (Higham, Functions of Matrices, 2008, ch. 8).
        ``"qdwh"``: the QR-based dynamically weighted Halley iteration (Nakatsukasa, Bai &
        Gygi 2010), five iterations in float32, built from QR, Cholesky and matrix
        products (on the GPU: the blocked kernels' graphs, no host synchronization).
        ``"newton_schulz"``: X ← X(3I − XᵀX)/2, matrix products only, about
        log₁.₅ κ(a) + 5 iterations (Higham 2008, §8.3): the fastest choice for matrices
        already nearly orthonormal. docs/kernels-spectral-blocks.md compares the three.
        Gradients: ``"svd"`` and ``"newton_schulz"`` are differentiable; ``"qdwh"`` is not.

    See Also:
        scipy.linalg.polar
    """
    require_choice("polar", "side", side, ("right", "left"))
    require_choice("polar", "method", method, ("svd", "qdwh", "newton_schulz"))
    a, result = prepare("polar", a)
    if method != "svd":
        return _polar_by_iteration(a, side, method, result, stream)
    (u, s, vh), _ = _dispatch.run("svd", stream, a, full_matrices=False)
    unitary = _precision.matmul(u, vh, stream=stream)
    basis = mx.conj(mx.swapaxes(vh, -1, -2)) if side == "right" else u
    scaled = basis * s[..., None, :].astype(basis.dtype)
    p = _precision.matmul(scaled, mx.conj(mx.swapaxes(basis, -1, -2)), stream=stream)
    return PolarResult(unitary.astype(result), p.astype(result))


def _polar_by_iteration(
    a: mx.array, side: str, method: str, result: mx.Dtype, stream: StreamOrDevice
) -> PolarResult:
    """``polar`` by QDWH or Newton–Schulz (mlx_linalg._gpu.polar); failures are NaN."""
    if mx.issubdtype(a.dtype, mx.complexfloating):
        fail("polar", f"expected real input for method={method!r}, got {a.dtype}", TypeError)
    on_gpu = _dispatch.backend(stream) == "gpu"
    with on(stream):
        if method == "qdwh":
            factor = tall_skinny.KERNELS if on_gpu and a.dtype == mx.float32 else tall_skinny.LAPACK
            u, p, info = polar_iterations.qdwh(a, factor, side=side)
        else:
            u, p, info = polar_iterations.newton_schulz(a, side=side)
        failed = info < 0
        check_failures("polar", f"{method} did not reach an orthonormal factor", failed)
        u, p = nan_where(failed, u), nan_where(failed, p)
    return PolarResult(u.astype(result), p.astype(result))


@float64_on_cpu
def orth(a: mx.array, rcond: Tolerance = None, *, stream: StreamOrDevice = None) -> mx.array:
    """Orthonormal basis for the range of ``a``.

    Args:
        a: (..., M, N).
        rcond: singular values at most ``rcond * max(S)`` count as zero; default
            ``max(M, N) * eps`` with eps of a's dtype (float16/bfloat16 too, although
            they are computed in float32), as SciPy with the eps of a's dtype.
        stream: MLX stream or device.

    Returns:
        (..., M, R) with R the numerical rank.

    Notes:
        The leading R left singular vectors.
        # Note: the number of columns depends on the data, so this synchronizes with the
        # host, and every matrix of a batch must have the same rank (ValueError otherwise).

    See Also:
        scipy.linalg.orth
    """
    a, result = prepare("orth", a)
    (u, s, _), _ = _dispatch.run("svd", stream, a, full_matrices=False)
    rank = _common_rank("orth", a, result, s, rcond)
    return u[..., :rank].astype(result)


@float64_on_cpu
def null_space(a: mx.array, rcond: Tolerance = None, *, stream: StreamOrDevice = None) -> mx.array:
    """Orthonormal basis for the null space of ``a``.

    Args:
        a: (..., M, N).
        rcond: as in :func:`orth`.
        stream: MLX stream or device.

    Returns:
        (..., N, N − R) with R the numerical rank.

    Notes:
        The trailing right singular vectors of the SVD (the full one for wide input).
        # Note: as in :func:`orth`, the shape depends on the data and the batch must share
        # one rank.

    See Also:
        scipy.linalg.null_space
    """
    a, result = prepare("null_space", a)
    # Vh is N x N in the reduced SVD when M >= N: the full one only adds U's M - N columns.
    wide = a.shape[-2] < a.shape[-1]
    (_, s, vh), _ = _dispatch.run("svd", stream, a, full_matrices=wide)
    rank = _common_rank("null_space", a, result, s, rcond)
    return mx.conj(mx.swapaxes(vh[..., rank:, :], -1, -2)).astype(result)


def _common_rank(fn: str, a: mx.array, result: mx.Dtype, s: mx.array, rcond) -> int:
    """The numerical rank shared by every matrix of the batch (host sync); ``result`` is the
    input dtype, whose eps sets the default ``rcond``."""
    if rcond is None:
        rcond = default_rtol(a.shape, result)
    s_np = np.asarray(s)
    if s_np.shape[-1] == 0:
        return 0
    ranks = (s_np > rcond * s_np[..., :1]).sum(axis=-1)
    distinct = np.unique(ranks)
    if distinct.size > 1:
        fail(
            fn,
            f"expected every matrix of the batch to have the same numerical rank, got "
            f"ranks {distinct.tolist()}; call it on each matrix separately",
        )
    return int(distinct[0]) if distinct.size else 0
