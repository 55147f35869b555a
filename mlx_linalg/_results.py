"""NamedTuple results of the decompositions, named as in the Array API standard and SciPy."""

from typing import NamedTuple

import mlx.core as mx


class QRResult(NamedTuple):
    """``Q`` (..., M, K) with orthonormal columns and upper-triangular ``R`` (..., K, N)."""

    Q: mx.array
    R: mx.array


class SVDResult(NamedTuple):
    """``U`` (..., M, K), singular values ``S`` (..., K) descending, ``Vh`` (..., K, N)."""

    U: mx.array
    S: mx.array
    Vh: mx.array


class EighResult(NamedTuple):
    """Ascending ``eigenvalues`` (..., M) and orthonormal column ``eigenvectors`` (..., M, M)."""

    eigenvalues: mx.array
    eigenvectors: mx.array


class EigResult(NamedTuple):
    """Complex ``eigenvalues`` (..., M) and unit-norm ``eigenvectors`` (..., M, M) as columns."""

    eigenvalues: mx.array
    eigenvectors: mx.array


class SlogdetResult(NamedTuple):
    """``sign`` (...,) and ``logabsdet`` (...,) with ``det = sign * exp(logabsdet)``."""

    sign: mx.array
    logabsdet: mx.array


class LUResult(NamedTuple):
    """A = P L U: ``P`` (..., M, M), unit lower ``L`` (..., M, K), upper ``U`` (..., K, N)."""

    P: mx.array
    L: mx.array
    U: mx.array


class LUFactorResult(NamedTuple):
    """Packed ``lu`` (..., M, N) (L below the diagonal, U on and above) and 0-based LAPACK
    row interchanges ``piv`` (..., K), int32: row i was swapped with row piv[i]."""

    lu: mx.array
    piv: mx.array


class ChoFactorResult(NamedTuple):
    """``c`` (..., M, M) holding the Cholesky factor in one triangle and ``lower`` telling which."""

    c: mx.array
    lower: bool


class LstsqResult(NamedTuple):
    """``solution`` (..., N, K), ``residuals`` (..., K), ``rank`` (...,), singular values ``s``."""

    solution: mx.array
    residuals: mx.array
    rank: mx.array
    s: mx.array


class PolarResult(NamedTuple):
    """Unitary factor ``u`` and Hermitian positive semi-definite factor ``p``."""

    u: mx.array
    p: mx.array
