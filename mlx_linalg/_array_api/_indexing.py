"""Boolean-mask indexing for ``mx.array`` (installed by :func:`mlx_linalg.install`).

MLX rejects boolean index arrays because the result shape depends on the data. The standard
(and clients such as scikit-learn) use them: ``x[mask]`` selects the elements where a
mask of the leading dimensions is true. While installed, ``mx.array.__getitem__`` and
``__setitem__`` turn each boolean array in the key into its ``nonzero`` integer index arrays
(an eager host step, as ``numpy.nonzero``) and hand the key to MLX. ``x[mask] = value`` with a
mask of ``x``'s full shape stays lazy: it becomes ``where(mask, value, x)``. Slices bounded by
0-d integer arrays (``x[:rank]`` with ``rank`` an array, which the standard's ``__index__``
allows and MLX rejects) get Python int bounds. Other keys go straight to MLX.
"""

import mlx.core as mx
import numpy as np


def _is_mask(item: object) -> bool:
    return (isinstance(item, mx.array) and item.dtype == mx.bool_) or (
        isinstance(item, np.ndarray) and item.dtype == np.bool_
    )


def _is_array_slice(item: object) -> bool:
    return isinstance(item, slice) and any(
        isinstance(v, mx.array) for v in (item.start, item.stop, item.step)
    )


def _needs_rewrite(item: object) -> bool:
    return _is_mask(item) or _is_array_slice(item)


def _has_mask(key: object) -> bool:
    """Whether ``key`` holds a boolean mask or a slice bounded by 0-d arrays."""
    if isinstance(key, tuple):
        return any(_needs_rewrite(k) for k in key)
    return _needs_rewrite(key)


def _int_slice(item: slice) -> slice:
    """A slice whose 0-d integer array bounds became Python ints (``__index__``)."""
    return slice(
        *(v.item() if isinstance(v, mx.array) else v for v in (item.start, item.stop, item.step))
    )


def _integer_key(key: object) -> tuple:
    """``key`` with each boolean array replaced by its nonzero index arrays (int32) and each
    slice bound that is a 0-d array replaced by its Python int."""
    parts = key if isinstance(key, tuple) else (key,)
    out: list = []
    for part in parts:
        if _is_mask(part):
            if part.ndim == 0:
                raise IndexError("[mlx_linalg.array_api] 0-d boolean indices are not supported")
            out.extend(mx.array(i, dtype=mx.int32) for i in np.nonzero(np.asarray(part)))
        elif _is_array_slice(part):
            out.append(_int_slice(part))
        else:
            out.append(part)
    return tuple(out)


def make_getitem(original):
    """A ``__getitem__`` that accepts boolean masks and otherwise is ``original``."""

    def __getitem__(self, key):
        if _has_mask(key):
            key = _integer_key(key)
        return original(self, key)

    __getitem__.__doc__ = original.__doc__
    return __getitem__


def make_setitem(original):
    """A ``__setitem__`` that accepts boolean masks and otherwise is ``original``."""

    def __setitem__(self, key, value):
        if not _has_mask(key):
            return original(self, key, value)
        if isinstance(key, mx.array) and tuple(key.shape) == tuple(self.shape):
            value = value if isinstance(value, mx.array) else mx.array(value, dtype=self.dtype)
            if value.size == 1:
                updated = mx.where(key, value.reshape(()).astype(self.dtype), self)
                return original(self, ..., updated)
        return original(self, _integer_key(key), value)

    __setitem__.__doc__ = original.__doc__
    return __setitem__
