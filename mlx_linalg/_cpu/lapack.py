"""LAPACK implementations of every op, through NumPy and SciPy (both batched).

Each function takes MLX arrays already validated and cast to the compute dtype and returns
``(outputs, failed)`` as the dispatch contract in ``mlx_linalg._dispatch`` describes. Work
happens eagerly on the CPU; inputs are viewed zero-copy and outputs copied into MLX arrays.
Stacks of small matrices go through NumPy's batched gufuncs; matrices of order
``ONE_MATRIX_FROM`` and up go one by one through SciPy on Fortran-order views
(``mlx_linalg._cpu.one_matrix``), 1.5 to 3x faster there.
LAPACK routines: potrf (cholesky), geqrf/orgqr (qr), getrf/getrs (lu, solve, inv, det),
trtrs (solve_triangular), potrs (cho_solve), syevd/heevd (eigh), gesdd (svd), geev (eig),
gelsd (lstsq).
"""

import functools

import mlx.core as mx
import numpy as np
import scipy.linalg

from mlx_linalg._cpu import one_matrix
from mlx_linalg._cpu._batch import each_matrix, guarded, to_mlx, to_numpy

# Matrix order (largest of M, N) from which one SciPy call per matrix beats NumPy's batched
# gufuncs: measured crossover 32 to 64 for cholesky, eigh, svd, inv and qr (2-core x86-64,
# one thread, stacks of 4096 / n matrices).
ONE_MATRIX_FROM = 64


def _batched(small, large):
    """``small`` (a NumPy gufunc) for stacks of small or empty matrices, else ``large`` (a
    per-matrix SciPy routine) looped over the stack."""

    def compute(a: np.ndarray, *others: np.ndarray):
        if a.size and max(a.shape[-2:]) >= ONE_MATRIX_FROM:
            return each_matrix(large)(a, *others)
        return small(a, *others)

    return compute


def _on_numpy(fn):
    """Adapt a NumPy-level ``(outputs, failed)`` function to the MLX-level contract."""

    @functools.wraps(fn)
    def wrapper(*arrays: mx.array, **keywords):
        outputs, failed = fn(*(to_numpy(x) for x in arrays), **keywords)
        if not any(x.dtype == mx.float64 for x in arrays):
            # SciPy returns some float64 outputs for float32 input (e.g. lstsq's singular
            # values of an empty matrix); float64 MLX arrays cannot enter a GPU stream.
            outputs = tuple(o.astype(np.float32) if o.dtype == np.float64 else o for o in outputs)
        outputs = tuple(to_mlx(o) for o in outputs)
        return outputs, None if failed is None else mx.array(failed)

    return wrapper


@_on_numpy
def cholesky(a: np.ndarray, *, upper: bool):
    return guarded(
        _batched(
            functools.partial(np.linalg.cholesky, upper=upper),
            functools.partial(one_matrix.cholesky, upper=upper),
        ),
        a,
    )


@_on_numpy
def qr(a: np.ndarray, *, mode: str):
    return guarded(
        _batched(
            functools.partial(np.linalg.qr, mode=mode), functools.partial(one_matrix.qr, mode=mode)
        ),
        a,
    )


@_on_numpy
def eigh(a: np.ndarray):
    return guarded(_batched(np.linalg.eigh, one_matrix.eigh), a)


@_on_numpy
def eigvalsh(a: np.ndarray):
    return guarded(_batched(np.linalg.eigvalsh, one_matrix.eigvalsh), a)


@_on_numpy
def eig(a: np.ndarray):
    return guarded(np.linalg.eig, a)


@_on_numpy
def eigvals(a: np.ndarray):
    return guarded(np.linalg.eigvals, a)


@_on_numpy
def svd(a: np.ndarray, *, full_matrices: bool):
    return guarded(
        _batched(
            functools.partial(np.linalg.svd, full_matrices=full_matrices),
            functools.partial(one_matrix.svd, full_matrices=full_matrices),
        ),
        a,
    )


@_on_numpy
def svdvals(a: np.ndarray):
    return guarded(
        _batched(functools.partial(np.linalg.svd, compute_uv=False), one_matrix.svdvals), a
    )


@_on_numpy
def solve(a: np.ndarray, b: np.ndarray):
    return guarded(_batched(np.linalg.solve, one_matrix.solve), a, b, batch_ndim=a.ndim - 2)


@_on_numpy
def inv(a: np.ndarray):
    return guarded(_batched(np.linalg.inv, one_matrix.inv), a)


@_on_numpy
def slogdet(a: np.ndarray):
    return guarded(np.linalg.slogdet, a)


@_on_numpy
def det(a: np.ndarray):
    return guarded(np.linalg.det, a)


@_on_numpy
def lu(a: np.ndarray):
    return guarded(functools.partial(scipy.linalg.lu, check_finite=False), a)


@_on_numpy
def lu_factor(a: np.ndarray):
    return guarded(each_matrix(one_matrix.lu_factor), a)


@_on_numpy
def lu_solve(lu_: np.ndarray, piv: np.ndarray, b: np.ndarray, *, trans: int):
    def solve_one(m, p, rhs):
        return scipy.linalg.lu_solve((m, p), rhs, trans=trans, check_finite=False)

    (x,), _ = guarded(solve_one, lu_, piv, b, batch_ndim=lu_.ndim - 2)
    singular = (np.diagonal(lu_, axis1=-2, axis2=-1) == 0).any(axis=-1)
    return _mark_failed((x,), singular)


@_on_numpy
def solve_triangular(a: np.ndarray, b: np.ndarray, *, lower: bool, unit_diagonal: bool, trans):
    def solve_one(m, rhs):
        return scipy.linalg.solve_triangular(
            m, rhs, trans=trans, lower=lower, unit_diagonal=unit_diagonal, check_finite=False
        )

    return guarded(solve_one, a, b, batch_ndim=a.ndim - 2)


@_on_numpy
def cho_solve(c: np.ndarray, b: np.ndarray, *, lower: bool):
    def solve_one(m, rhs):
        return scipy.linalg.cho_solve((m, lower), rhs, check_finite=False)

    (x,), _ = guarded(solve_one, c, b, batch_ndim=c.ndim - 2)
    singular = (np.diagonal(c, axis1=-2, axis2=-1) == 0).any(axis=-1)
    return _mark_failed((x,), singular)


@_on_numpy
def lstsq(a: np.ndarray, b: np.ndarray, *, rcond: float):
    def solve_one(m, rhs):
        x, _, rank, s = scipy.linalg.lstsq(
            m, rhs, cond=rcond, check_finite=False, lapack_driver="gelsd"
        )
        return x, np.asarray(rank, dtype=np.int32), s

    return guarded(solve_one, a, b, batch_ndim=a.ndim - 2)


def _mark_failed(outputs: tuple, failed: np.ndarray):
    """Set the float outputs of failed batch entries to NaN; return ``(outputs, failed)``."""
    if failed.any():
        outputs = tuple(
            np.where(np.expand_dims(failed, tuple(range(failed.ndim, o.ndim))), np.nan, o).astype(
                o.dtype
            )
            for o in outputs
        )
    return outputs, failed
