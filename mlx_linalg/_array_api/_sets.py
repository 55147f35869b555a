"""Functions whose output shape depends on the data: ``unique_*``, ``nonzero``, ``repeat``
with array repeats; plus ``isin``.

MLX builds static-shape graphs, so these cannot be lazy. They evaluate their input and compute
on the host with NumPy (``numpy.unique(..., equal_nan=False)``: every NaN is its own value, as
the standard asks), then return MLX arrays with the default index dtype (int32).
"""

from typing import NamedTuple

import mlx.core as mx
import numpy as np

_INDEX = mx.int32


class UniqueAllResult(NamedTuple):
    """Sorted unique ``values``, first-occurrence ``indices``, ``inverse_indices`` (shape of
    the input) and ``counts``."""

    values: mx.array
    indices: mx.array
    inverse_indices: mx.array
    counts: mx.array


class UniqueCountsResult(NamedTuple):
    """Sorted unique ``values`` and their ``counts``."""

    values: mx.array
    counts: mx.array


class UniqueInverseResult(NamedTuple):
    """Sorted unique ``values`` and ``inverse_indices`` (the shape of the input)."""

    values: mx.array
    inverse_indices: mx.array


def _host(x: mx.array) -> np.ndarray:
    return np.asarray(x).reshape(-1)


def _values(values: np.ndarray, dtype: mx.Dtype) -> mx.array:
    return mx.array(values, dtype=dtype)


def unique_all(x: mx.array, /) -> UniqueAllResult:
    """Unique values of ``x`` with first indices, inverse indices and counts (eager)."""
    values, index, inverse, counts = np.unique(
        _host(x), return_index=True, return_inverse=True, return_counts=True, equal_nan=False
    )
    return UniqueAllResult(
        _values(values, x.dtype),
        mx.array(index, dtype=_INDEX),
        mx.array(inverse.reshape(x.shape), dtype=_INDEX),
        mx.array(counts, dtype=_INDEX),
    )


def unique_counts(x: mx.array, /) -> UniqueCountsResult:
    """Unique values of ``x`` and how often each occurs (eager)."""
    values, counts = np.unique(_host(x), return_counts=True, equal_nan=False)
    return UniqueCountsResult(_values(values, x.dtype), mx.array(counts, dtype=_INDEX))


def unique_inverse(x: mx.array, /) -> UniqueInverseResult:
    """Unique values of ``x`` and, for each element, the index of its value (eager)."""
    values, inverse = np.unique(_host(x), return_inverse=True, equal_nan=False)
    return UniqueInverseResult(
        _values(values, x.dtype), mx.array(inverse.reshape(x.shape), dtype=_INDEX)
    )


def unique_values(x: mx.array, /) -> mx.array:
    """The sorted unique values of ``x`` (eager)."""
    return _values(np.unique(_host(x), equal_nan=False), x.dtype)


def nonzero(x: mx.array, /) -> tuple[mx.array, ...]:
    """Per-axis indices of the nonzero elements of ``x`` (at least 1-D), in row-major order."""
    if x.ndim == 0:
        raise ValueError("[mlx_linalg.array_api.nonzero] expected an array of at least 1-D")
    return tuple(mx.array(i, dtype=_INDEX) for i in np.nonzero(np.asarray(x)))


def repeat(x: mx.array, repeats: int | mx.array, /, *, axis: int | None = None) -> mx.array:
    """Each element (along ``axis``, or of the flattened ``x``) repeated ``repeats`` times.

    An integer ``repeats`` stays lazy (``mx.repeat``); an array of per-element repeats makes
    the output shape data dependent, so that case evaluates on the host.
    """
    if isinstance(repeats, int):
        return mx.repeat(x, repeats, axis=axis)
    counts = np.asarray(repeats)
    source = np.asarray(x)
    return mx.array(np.repeat(source, counts, axis=axis), dtype=x.dtype)


def isin(
    x1: mx.array | int | float, x2: mx.array | int | float, /, *, invert: bool = False
) -> mx.array:
    """Whether each element of ``x1`` occurs in ``x2`` (lazy: a broadcast comparison)."""
    x1 = x1 if isinstance(x1, mx.array) else mx.array(x1)
    x2 = x2 if isinstance(x2, mx.array) else mx.array(x2)
    found = mx.any(mx.expand_dims(x1, -1) == mx.reshape(x2, (-1,)), axis=-1)
    return mx.logical_not(found) if invert else found
