"""Running a LAPACK call over a stack of matrices so that each matrix fails on its own.

NumPy and SciPy raise ``LinAlgError`` for a whole stack when one matrix fails and may not
converge on NaN/Inf input. ``guarded`` substitutes the identity for non-finite matrices,
runs the whole stack in one call, and only when that raises reruns it matrix by matrix; the
outputs of failed and non-finite matrices become NaN.
"""

import math
from collections.abc import Callable, Sequence

import mlx.core as mx
import numpy as np


def to_numpy(x: mx.array) -> np.ndarray:
    """A NumPy view of an MLX array (evaluates it; zero-copy, strides kept)."""
    return np.asarray(x)


_MLX_DTYPE = {
    np.dtype(np.float32): mx.float32,
    np.dtype(np.float64): mx.float64,
    np.dtype(np.complex64): mx.complex64,
    np.dtype(np.complex128): mx.complex64,
    np.dtype(np.int32): mx.int32,
    np.dtype(np.int64): mx.int32,
    np.dtype(np.bool_): mx.bool_,
}


def to_mlx(a: np.ndarray) -> mx.array:
    """An MLX array holding a copy of ``a``, keeping its precision (MLX would make float64
    float32 by default); complex128 and int64 narrow to complex64 and int32."""
    a = np.asarray(a)
    return mx.array(a, dtype=_MLX_DTYPE[a.dtype])


def guarded(
    compute: Callable[..., np.ndarray | tuple],
    a: np.ndarray,
    *others: np.ndarray,
    batch_ndim: int | None = None,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """``compute(a, *others)`` over a stack, with per-matrix failures.

    Args:
        compute: a batched NumPy/SciPy routine returning an array or a tuple of arrays whose
            leading axes are the batch axes.
        a: the (..., M, N) matrix stack that may fail or hold NaN/Inf.
        others: further operands whose leading ``batch_ndim`` axes equal ``a``'s batch axes.
        batch_ndim: number of batch axes (default ``a.ndim - 2``).

    Returns:
        ``(outputs, failed)``: the outputs as a tuple (float outputs of failed or non-finite
        matrices set to NaN) and a bool array of the batch shape, True where ``compute``
        raised ``LinAlgError`` for that matrix.
    """
    batch_ndim = a.ndim - 2 if batch_ndim is None else batch_ndim
    batch = a.shape[:batch_ndim]
    core_axes = tuple(range(batch_ndim, a.ndim))
    nonfinite = ~np.isfinite(a).all(axis=core_axes)
    if nonfinite.any():
        a = np.where(np.expand_dims(nonfinite, core_axes), _identity_like(a), a)
    try:
        outputs = _as_tuple(compute(a, *others))
        failed = np.zeros(batch, dtype=bool)
    except np.linalg.LinAlgError:
        outputs, failed = _one_by_one(compute, a, others, batch)
    spoiled = nonfinite | failed
    if spoiled.any():
        outputs = tuple(_spoil(out, spoiled) for out in outputs)
    return outputs, failed


def each_matrix(compute: Callable[..., np.ndarray | tuple]) -> Callable[..., tuple]:
    """Batch a per-matrix routine by a Python loop over the leading axes of its operands.

    ``compute(a, *others)`` takes one matrix ``a`` (M, N) and the matching entries of the other
    operands, whose leading axes are ``a``'s batch axes. Used where SciPy's LAPACK wrappers on
    one matrix beat NumPy's batched gufuncs (large matrices: the gufuncs copy every operand).
    """

    def batched(a: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
        batch = a.shape[:-2]
        if not math.prod(batch):  # an empty stack: learn the output shapes from an identity
            core = (_identity_like(a), *(np.zeros(o.shape[len(batch) :], o.dtype) for o in others))
            return tuple(np.empty(batch + r.shape, r.dtype) for r in _as_tuple(compute(*core)))
        return _loop(batch, lambda index: compute(a[index], *(o[index] for o in others)))

    return batched


def _one_by_one(compute, a, others, batch):
    failed = np.zeros(batch, dtype=bool)

    def result_at(index):
        operands = (a[index], *(o[index] for o in others))
        try:
            return compute(*operands)
        except np.linalg.LinAlgError:
            failed[index] = True
            return compute(_identity_like(a[index]), *operands[1:])

    return _loop(batch, result_at), failed


def _loop(batch: tuple, result_at: Callable) -> tuple[np.ndarray, ...]:
    """Stack ``result_at(index)`` (an array or tuple of arrays) over a non-empty ``batch``."""
    outputs: list[np.ndarray] = []
    for index in np.ndindex(*batch):
        result = _as_tuple(result_at(index))
        if not outputs:
            outputs = [np.empty(batch + r.shape, dtype=r.dtype) for r in result]
        for out, r in zip(outputs, result, strict=True):
            out[index] = r
    return tuple(outputs)


def _identity_like(a: np.ndarray) -> np.ndarray:
    return np.eye(a.shape[-2], a.shape[-1], dtype=a.dtype)


def _spoil(out: np.ndarray, spoiled: np.ndarray) -> np.ndarray:
    if not np.issubdtype(out.dtype, np.inexact) or out.ndim < spoiled.ndim:
        return out
    out = np.array(out, copy=True)
    out[spoiled] = np.nan
    return out


def _as_tuple(result) -> tuple:
    return tuple(result) if isinstance(result, Sequence) else (result,)
