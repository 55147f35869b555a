"""Symmetric / Hermitian eigendecomposition: eigh, eigvalsh."""

import mlx.core as mx

from mlx_linalg import _dispatch
from mlx_linalg._checks import prepare, real_dtype
from mlx_linalg._devices import float64_on_cpu
from mlx_linalg._results import EighResult
from mlx_linalg._types import StreamOrDevice


@float64_on_cpu
def eigh(x: mx.array, /, *, stream: StreamOrDevice = None) -> EighResult:
    """Eigenvalues and eigenvectors of a stack of Hermitian matrices.

    Args:
        x: (..., M, M) Hermitian; only the lower triangle is read.
        stream: MLX stream or device.

    Returns:
        ``EighResult(eigenvalues, eigenvectors)``: eigenvalues (..., M) real, ascending;
        eigenvectors (..., M, M) orthonormal columns, ``x = V diag(w) Vᴴ``.

    Notes:
        LAPACK syevd/heevd: Householder tridiagonalization and divide and conquer
        (about 9n³ flops with vectors).

    See Also:
        numpy.linalg.eigh, scipy.linalg.eigh
    """
    x, result = prepare("eigh", x, square=True)
    (w, v), _ = _dispatch.run("eigh", stream, x)
    return EighResult(w.astype(real_dtype(result)), v.astype(result))


@float64_on_cpu
def eigvalsh(x: mx.array, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Eigenvalues of a stack of Hermitian matrices, ascending.

    Args:
        x: (..., M, M) Hermitian; only the lower triangle is read.
        stream: MLX stream or device.

    Returns:
        (..., M) real eigenvalues in ascending order.

    See Also:
        numpy.linalg.eigvalsh, scipy.linalg.eigvalsh
    """
    x, result = prepare("eigvalsh", x, square=True)
    (w,), _ = _dispatch.run("eigvalsh", stream, x)
    return w.astype(real_dtype(result))
