"""General (non-symmetric) eigendecomposition: eig, eigvals. CPU (LAPACK geev) on every
device."""

import mlx.core as mx

from mlx_linalg import _dispatch
from mlx_linalg._checks import prepare
from mlx_linalg._devices import float64_on_cpu
from mlx_linalg._results import EigResult
from mlx_linalg._types import StreamOrDevice


@float64_on_cpu
def eig(x: mx.array, /, *, stream: StreamOrDevice = None) -> EigResult:
    """Eigenvalues and right eigenvectors of a stack of square matrices.

    Args:
        x: (..., M, M).
        stream: MLX stream or device.

    Returns:
        ``EigResult(eigenvalues, eigenvectors)``: (..., M) and (..., M, M), always complex64,
        in LAPACK's order; each eigenvector column has unit 2-norm; ``x V = V diag(w)``.

    Notes:
        LAPACK geev (Hessenberg reduction and shifted QR, about 25n³ flops).
        # Note: MLX has no complex128, so float64 input returns complex64 results.

    See Also:
        numpy.linalg.eig, scipy.linalg.eig
    """
    x, _ = prepare("eig", x, square=True)
    (w, v), _ = _dispatch.run("eig", stream, x)
    return EigResult(w.astype(mx.complex64), v.astype(mx.complex64))


@float64_on_cpu
def eigvals(x: mx.array, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Eigenvalues of a stack of square matrices, complex64 (see :func:`eig`).

    Args:
        x: (..., M, M).
        stream: MLX stream or device.

    Returns:
        (..., M) complex64 eigenvalues.

    See Also:
        numpy.linalg.eigvals, scipy.linalg.eigvals
    """
    x, _ = prepare("eigvals", x, square=True)
    (w,), _ = _dispatch.run("eigvals", stream, x)
    return w.astype(mx.complex64)
