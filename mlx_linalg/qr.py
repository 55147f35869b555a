"""QR factorization."""

import mlx.core as mx

from mlx_linalg import _dispatch
from mlx_linalg._checks import prepare, require_choice
from mlx_linalg._devices import float64_on_cpu
from mlx_linalg._results import QRResult
from mlx_linalg._types import StreamOrDevice


@float64_on_cpu
def qr(x: mx.array, /, *, mode: str = "reduced", stream: StreamOrDevice = None) -> QRResult:
    """QR factorization ``x = Q R`` of a stack of matrices.

    Args:
        x: (..., M, N).
        mode: ``"reduced"``: Q (..., M, K), R (..., K, N) with K = min(M, N);
            ``"complete"``: Q (..., M, M), R (..., M, N).
        stream: MLX stream or device; the default device when None.

    Returns:
        ``QRResult(Q, R)``: Q with orthonormal columns, R upper triangular (exact zeros
        below the diagonal).

    Notes:
        Householder QR, LAPACK geqrf + orgqr on the CPU (2n²(m − n/3) flops for R).

    See Also:
        scipy.linalg.qr, numpy.linalg.qr
    """
    require_choice("qr", "mode", mode, ("reduced", "complete"))
    x, result = prepare("qr", x)
    (q, r), _ = _dispatch.run("qr", stream, x, mode=mode)
    return QRResult(q.astype(result), r.astype(result))
