"""LAPACK on one matrix through SciPy, without copying the matrix into Fortran order.

An MLX array seen from NumPy is C-ordered, and LAPACK wants Fortran order. NumPy's batched
``numpy.linalg`` gufuncs copy every operand into a Fortran-order buffer (a transposing gather,
slow for large matrices: 2 to 4x the LAPACK time at n = 1024, see docs/benchmarks.md). Here
each routine hands SciPy the zero-copy Fortran-order view ``a.T`` (the plain transpose of A)
and undoes the transpose algebraically:

- potrf on ``a.T`` with ``lower=False`` reads A's lower triangle and returns U with
  Aᵀ = UᴴU; then L = Uᵀ satisfies A = L Lᴴ (for Hermitian A, Aᵀ = conj(A)).
- syevd/heevd on ``a.T`` gives Aᵀ's eigenpairs: the same eigenvalues and, for Hermitian A,
  conjugated eigenvectors.
- gesdd on ``a.T``: Aᵀ = U S Vᴴ gives A = (Vᴴ)ᵀ S Uᵀ.
- getrf on ``a.T`` factors Aᵀ; getrs with ``trans=1`` then solves A x = b.

- getri after getrf on ``a.T`` gives (Aᵀ)⁻¹ = (A⁻¹)ᵀ.

QR has no such identity (the QR of Aᵀ is an LQ of A), so it calls SciPy on A itself. Every
function raises ``numpy.linalg.LinAlgError`` where LAPACK reports failure (info > 0), which
``mlx_linalg._cpu._batch.guarded`` turns into NaN for that matrix.
"""

import numpy as np
import scipy.linalg
from scipy.linalg import lapack


def cholesky(a: np.ndarray, *, upper: bool) -> np.ndarray:
    """Cholesky factor of one Hermitian positive definite (N, N) matrix from its lower triangle
    (potrf)."""
    u = scipy.linalg.cholesky(a.T, lower=False, check_finite=False)
    if not upper:
        return u.T
    return np.conj(u) if np.iscomplexobj(u) else u


def eigh(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (N,) and eigenvectors (N, N) of one Hermitian matrix from its lower triangle
    (syevd/heevd, divide and conquer)."""
    w, v = scipy.linalg.eigh(a.T, lower=False, driver="evd", check_finite=False)
    return w, np.conj(v) if np.iscomplexobj(v) else v


def eigvalsh(a: np.ndarray) -> np.ndarray:
    """Eigenvalues (N,) of one Hermitian matrix from its lower triangle (syevd/heevd)."""
    return scipy.linalg.eigh(a.T, lower=False, eigvals_only=True, driver="evd", check_finite=False)


def svd(a: np.ndarray, *, full_matrices: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U, S, Vh of one (M, N) matrix (gesdd)."""
    u, s, vh = scipy.linalg.svd(
        a.T, full_matrices=full_matrices, check_finite=False, lapack_driver="gesdd"
    )
    return vh.T, s, u.T


def svdvals(a: np.ndarray) -> np.ndarray:
    """Singular values (K,) of one (M, N) matrix (gesdd)."""
    return scipy.linalg.svd(a.T, compute_uv=False, check_finite=False, lapack_driver="gesdd")


def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """X (N, K) with A X = B for one (N, N) matrix A (getrf on Aᵀ, then getrs with trans=1)."""
    getrf, getrs = lapack.get_lapack_funcs(("getrf", "getrs"), (a, b))
    lu, piv, info = getrf(a.T)
    if info > 0:
        raise np.linalg.LinAlgError("Singular matrix")
    x, info = getrs(lu, piv, b, trans=1)
    return x


def lu_factor(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LU (M, N) and 0-based pivots (K,) int32 of one (M, N) matrix (getrf). A singular matrix
    is not an error here (its U has a zero on the diagonal; the solves report it)."""
    if a.size == 0:  # LAPACK rejects a leading dimension of 0
        return a.copy(), np.zeros(min(a.shape), np.int32)
    (getrf,) = lapack.get_lapack_funcs(("getrf",), (a,))
    lu, piv, _ = getrf(a)
    return lu, piv.astype(np.int32)


def inv(a: np.ndarray) -> np.ndarray:
    """Inverse of one (N, N) matrix: getrf + getri on Aᵀ, whose inverse is (A⁻¹)ᵀ."""
    getrf, getri, getri_lwork = lapack.get_lapack_funcs(("getrf", "getri", "getri_lwork"), (a,))
    lu, piv, info = getrf(a.T)
    if info > 0:
        raise np.linalg.LinAlgError("Singular matrix")
    work, _ = getri_lwork(a.shape[-1])
    inverse_t, info = getri(lu, piv, lwork=int(np.ceil(work.real)), overwrite_lu=1)
    return inverse_t.T


def qr(a: np.ndarray, *, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Q and R of one (M, N) matrix, ``mode`` "reduced" or "complete" (geqrf + orgqr/ungqr)."""
    return scipy.linalg.qr(a, mode="economic" if mode == "reduced" else "full", check_finite=False)
