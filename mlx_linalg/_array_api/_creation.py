"""Array creation functions with the standard's ``device=`` and ``copy=`` keywords.

``device=`` runs the creation on that device (MLX memory is unified, so the array is usable
everywhere afterwards). ``copy=`` follows the standard: ``True`` always copies, ``False`` never
copies and raises ``ValueError`` when a copy is needed (MLX always copies host NumPy memory,
so ``copy=False`` from a NumPy array raises), ``None`` copies only when needed.
"""

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from mlx_linalg._array_api._device import normalize_device


def _default_dtype(value: object) -> mx.Dtype:
    """The default dtype of a Python scalar: bool, int32, float32 or complex64."""
    if isinstance(value, bool):
        return mx.bool_
    if isinstance(value, int):
        return mx.int32
    if isinstance(value, complex):
        return mx.complex64
    return mx.float32


def asarray(
    obj: object,
    /,
    *,
    dtype: mx.Dtype | None = None,
    device: object = None,
    copy: bool | None = None,
) -> mx.array:
    """Convert ``obj`` (array, NumPy array, scalar, nested sequence, DLPack object) to an array.

    Args:
        obj: the data.
        dtype: output dtype; inferred from ``obj`` when ``None`` (a NumPy float64 array stays
            float64, Python floats become float32).
        device: where the conversion runs.
        copy: ``True`` always copy, ``False`` never copy (``ValueError`` if one is needed),
            ``None`` copy only if needed.

    Returns:
        An ``mx.array``; ``obj`` itself when it is an ``mx.array`` of that dtype and
        ``copy`` is not ``True``.

    Notes:
        # Note: ``mx.asarray(x, copy=False)`` raises for an ``mx.array`` input and narrows
        # NumPy float64 to float32; both differ from the standard and are fixed here.
    """
    stream = normalize_device("asarray", device)
    if isinstance(obj, mx.array):
        if dtype is None or obj.dtype == dtype:
            return mx.array(obj) if copy else obj
        if copy is False:
            raise ValueError(
                f"[mlx_linalg.array_api.asarray] copy=False but converting {obj.dtype} to "
                f"{dtype} needs a copy"
            )
        return obj.astype(dtype, stream=stream)
    if dtype is None and isinstance(obj, np.ndarray | np.generic):
        obj = np.asarray(obj)
        if obj.dtype == np.float64:
            dtype = mx.float64
    return mx.asarray(obj, dtype=dtype, copy=copy)


def arange(
    start: int | float,
    /,
    stop: int | float | None = None,
    step: int | float = 1,
    *,
    dtype: mx.Dtype | None = None,
    device: object = None,
) -> mx.array:
    """Evenly spaced values in the half-open interval ``[start, stop)``.

    Returns:
        A 1-D array of ``ceil((stop - start) / step)`` values; int32 for integer arguments,
        float32 for floating-point ones unless ``dtype`` says otherwise.
    """
    stream = normalize_device("arange", device)
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = mx.float32 if any(isinstance(v, float) for v in (start, stop, step)) else mx.int32
    return mx.arange(start, stop, step, dtype=dtype, stream=stream)


def empty(
    shape: int | Sequence[int], *, dtype: mx.Dtype | None = None, device: object = None
) -> mx.array:
    """An array of ``shape``; MLX has no uninitialized memory, so it holds zeros."""
    stream = normalize_device("empty", device)
    return mx.zeros(shape, dtype=dtype or mx.float32, stream=stream)


def empty_like(x: mx.array, /, *, dtype: mx.Dtype | None = None, device: object = None) -> mx.array:
    """An array with the shape (and, by default, the dtype) of ``x``; holds zeros."""
    stream = normalize_device("empty_like", device)
    return mx.zeros(x.shape, dtype=dtype or x.dtype, stream=stream)


def zeros(
    shape: int | Sequence[int], *, dtype: mx.Dtype | None = None, device: object = None
) -> mx.array:
    """An array of zeros (float32 by default)."""
    stream = normalize_device("zeros", device)
    return mx.zeros(shape, dtype=dtype or mx.float32, stream=stream)


def zeros_like(x: mx.array, /, *, dtype: mx.Dtype | None = None, device: object = None) -> mx.array:
    """Zeros with the shape (and, by default, the dtype) of ``x``."""
    stream = normalize_device("zeros_like", device)
    return mx.zeros(x.shape, dtype=dtype or x.dtype, stream=stream)


def ones(
    shape: int | Sequence[int], *, dtype: mx.Dtype | None = None, device: object = None
) -> mx.array:
    """An array of ones (float32 by default)."""
    stream = normalize_device("ones", device)
    return mx.ones(shape, dtype=dtype or mx.float32, stream=stream)


def ones_like(x: mx.array, /, *, dtype: mx.Dtype | None = None, device: object = None) -> mx.array:
    """Ones with the shape (and, by default, the dtype) of ``x``."""
    stream = normalize_device("ones_like", device)
    return mx.ones(x.shape, dtype=dtype or x.dtype, stream=stream)


def full(
    shape: int | Sequence[int],
    fill_value: bool | int | float | complex,
    *,
    dtype: mx.Dtype | None = None,
    device: object = None,
) -> mx.array:
    """An array filled with ``fill_value``; the dtype defaults to the value's default dtype."""
    stream = normalize_device("full", device)
    dtype = dtype or _default_dtype(fill_value)
    return mx.full(shape, fill_value, dtype=dtype, stream=stream)


def full_like(
    x: mx.array,
    /,
    fill_value: bool | int | float | complex,
    *,
    dtype: mx.Dtype | None = None,
    device: object = None,
) -> mx.array:
    """``fill_value`` in the shape (and, by default, the dtype) of ``x``."""
    stream = normalize_device("full_like", device)
    return mx.full(x.shape, fill_value, dtype=dtype or x.dtype, stream=stream)


def eye(
    n_rows: int,
    n_cols: int | None = None,
    /,
    *,
    k: int = 0,
    dtype: mx.Dtype | None = None,
    device: object = None,
) -> mx.array:
    """A (n_rows, n_cols) array with ones on the ``k``-th diagonal."""
    stream = normalize_device("eye", device)
    return mx.eye(n_rows, n_cols, k, dtype=dtype or mx.float32, stream=stream)


def linspace(
    start: int | float | complex,
    stop: int | float | complex,
    /,
    num: int,
    *,
    dtype: mx.Dtype | None = None,
    device: object = None,
    endpoint: bool = True,
) -> mx.array:
    """``num`` evenly spaced values from ``start`` to ``stop`` (included when ``endpoint``)."""
    stream = normalize_device("linspace", device)
    if isinstance(start, complex) or isinstance(stop, complex):
        dtype = dtype or mx.complex64
        step_count = (num - 1) if endpoint else num
        t = mx.arange(num, dtype=mx.float32, stream=stream) / max(step_count, 1)
        return (start + (stop - start) * t.astype(mx.complex64)).astype(dtype)
    dtype = dtype or mx.float32
    if endpoint:
        return mx.linspace(start, stop, num, dtype=dtype, stream=stream)
    return mx.linspace(start, stop, num + 1, dtype=dtype, stream=stream)[:num]


def from_dlpack(x: object, /, *, device: object = None, copy: bool | None = None) -> mx.array:
    """An array from any object with ``__dlpack__`` (``copy`` as in :func:`asarray`)."""
    normalize_device("from_dlpack", device)
    return mx.from_dlpack(x, copy=copy)


def meshgrid(*arrays: mx.array, indexing: str = "xy") -> tuple[mx.array, ...]:
    """Coordinate grids from 1-D arrays (``indexing`` is ``"xy"`` or ``"ij"``)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(
            f"[mlx_linalg.array_api.meshgrid] expected indexing 'xy' or 'ij', got {indexing!r}"
        )
    return tuple(mx.meshgrid(*arrays, indexing=indexing))


def tril(x: mx.array, /, *, k: int = 0) -> mx.array:
    """The lower triangle of each matrix in ``x`` (..., M, N); the rest is zero."""
    return mx.tril(x, k)


def triu(x: mx.array, /, *, k: int = 0) -> mx.array:
    """The upper triangle of each matrix in ``x`` (..., M, N); the rest is zero."""
    return mx.triu(x, k)
