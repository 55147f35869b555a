"""Functions and keyword forms of the standard that ``mlx.core`` lacks or spells differently.

Every function here is lazy (an MLX graph) and runs on the default device, like MLX's own.
"""

from collections.abc import Sequence

import mlx.core as mx

_BITS_DTYPE = {mx.float16: mx.int16, mx.bfloat16: mx.int16, mx.float32: mx.int32}


def clip(
    x: mx.array,
    /,
    min: int | float | mx.array | None = None,  # noqa: A002 (the standard's name)
    max: int | float | mx.array | None = None,  # noqa: A002 (the standard's name)
) -> mx.array:
    """``x`` with values below ``min`` raised to it and above ``max`` lowered to it."""
    if min is None and max is None:
        return x
    return mx.clip(x, min, max).astype(x.dtype)


def copysign(x1: mx.array | float, x2: mx.array | float, /) -> mx.array:
    """The magnitude of ``x1`` with the sign bit of ``x2`` (signed zeros and NaNs included)."""
    x1, x2 = mx.array(x1) if not isinstance(x1, mx.array) else x1, x2
    return mx.where(signbit(x2), -mx.abs(x1), mx.abs(x1))


def hypot(x1: mx.array | float, x2: mx.array | float, /) -> mx.array:
    """``sqrt(x1**2 + x2**2)`` without undue overflow or underflow (scaled by the larger)."""
    a, b = mx.abs(mx.array(x1) if not isinstance(x1, mx.array) else x1), mx.abs(x2)
    big, small = mx.maximum(a, b), mx.minimum(a, b)
    safe = mx.where(big == 0, mx.ones_like(big), big)
    ratio = small / safe
    out = big * mx.sqrt(1 + ratio * ratio)
    return mx.where(mx.isinf(a) | mx.isinf(b), mx.full(out.shape, float("inf"), out.dtype), out)


def signbit(x: mx.array, /) -> mx.array:
    """Whether the sign bit of each element is set (true for -0.0 and negative NaNs)."""
    if x.dtype == mx.float64:
        return mx.view(x, mx.int64) < 0
    bits = _BITS_DTYPE.get(x.dtype)
    if bits is None:
        raise TypeError(
            f"[mlx_linalg.array_api.signbit] expected a real floating-point array, got {x.dtype}"
        )
    return mx.view(x, bits) < 0


def nextafter(x1: mx.array, x2: mx.array | float, /) -> mx.array:
    """The next representable value after ``x1`` in the direction of ``x2``.

    Steps the integer view of the float bits by one (IEEE 754 ordering of magnitudes).
    """
    x1, x2 = mx.broadcast_arrays(x1, mx.array(x2, dtype=x1.dtype))
    bits_dtype = mx.int64 if x1.dtype == mx.float64 else _BITS_DTYPE.get(x1.dtype)
    if bits_dtype is None:
        raise TypeError(
            f"[mlx_linalg.array_api.nextafter] expected real floating-point arrays, got {x1.dtype}"
        )
    bits = mx.view(x1, bits_dtype)
    away_from_zero = (x2 > x1) == (x1 > 0)
    step = mx.where(away_from_zero, 1, -1).astype(bits_dtype)
    moved = mx.view(bits + step, x1.dtype)
    tiny = mx.view(mx.ones(x1.shape, bits_dtype), x1.dtype)
    from_zero = mx.where(x2 > x1, tiny, -tiny)
    out = mx.where(x1 == 0, from_zero, moved)
    out = mx.where(x1 == x2, x2, out)
    return mx.where(mx.isnan(x1) | mx.isnan(x2), mx.array(float("nan"), x1.dtype), out)


def sum(  # noqa: A001 (the standard's name)
    x: mx.array,
    /,
    *,
    axis: int | Sequence[int] | None = None,
    dtype: mx.Dtype | None = None,
    keepdims: bool = False,
) -> mx.array:
    """The sum over ``axis``, accumulated in ``dtype`` when given and returned in it
    (MLX widens small integers to 32 bits; casting back wraps as integer arithmetic does)."""
    x = x if dtype is None else x.astype(dtype)
    out = mx.sum(x, axis=_axes(axis), keepdims=keepdims)
    return out if dtype is None else out.astype(dtype)


def prod(
    x: mx.array,
    /,
    *,
    axis: int | Sequence[int] | None = None,
    dtype: mx.Dtype | None = None,
    keepdims: bool = False,
) -> mx.array:
    """The product over ``axis``, accumulated in ``dtype`` when given and returned in it
    (MLX widens small integers to 32 bits; casting back wraps as integer arithmetic does)."""
    x = x if dtype is None else x.astype(dtype)
    out = mx.prod(x, axis=_axes(axis), keepdims=keepdims)
    return out if dtype is None else out.astype(dtype)


def std(
    x: mx.array,
    /,
    *,
    axis: int | Sequence[int] | None = None,
    correction: int | float = 0.0,
    keepdims: bool = False,
) -> mx.array:
    """The standard deviation over ``axis`` with ``N - correction`` degrees of freedom."""
    return mx.sqrt(var(x, axis=axis, correction=correction, keepdims=keepdims))


def var(
    x: mx.array,
    /,
    *,
    axis: int | Sequence[int] | None = None,
    correction: int | float = 0.0,
    keepdims: bool = False,
) -> mx.array:
    """The variance over ``axis`` with ``N - correction`` degrees of freedom.

    Notes:
        # Note: MLX's ``ddof`` is an integer; the standard allows a float correction, so the
        # variance is computed here as ``sum(|x - mean|**2) / (N - correction)``.
    """
    axes = _axes(axis)
    mean = mx.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    squares = mx.real(centered * mx.conj(centered)) if x.dtype == mx.complex64 else centered**2
    n = x.size if axes is None else _count(x.shape, axes)
    return mx.sum(squares, axis=axes, keepdims=keepdims) / max(n - correction, 0)


def cumulative_sum(
    x: mx.array,
    /,
    *,
    axis: int | None = None,
    dtype: mx.Dtype | None = None,
    include_initial: bool = False,
) -> mx.array:
    """The running sum along ``axis``, optionally starting with a zero."""
    return _cumulative("cumulative_sum", mx.cumsum, 0, x, axis, dtype, include_initial)


def cumulative_prod(
    x: mx.array,
    /,
    *,
    axis: int | None = None,
    dtype: mx.Dtype | None = None,
    include_initial: bool = False,
) -> mx.array:
    """The running product along ``axis``, optionally starting with a one."""
    return _cumulative("cumulative_prod", mx.cumprod, 1, x, axis, dtype, include_initial)


def diff(
    x: mx.array,
    /,
    *,
    axis: int = -1,
    n: int = 1,
    prepend: mx.array | None = None,
    append: mx.array | None = None,
) -> mx.array:
    """The ``n``-th forward difference along ``axis`` after attaching ``prepend``/``append``."""
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = mx.concatenate(parts, axis=axis)
    return mx.diff(x, n=n, axis=axis)


def sort(
    x: mx.array, /, *, axis: int = -1, descending: bool = False, stable: bool = True
) -> mx.array:
    """``x`` sorted along ``axis`` (MLX's sort is stable, so ``stable`` always holds)."""
    ascending = mx.sort(x, axis=axis)
    return mx.flip(ascending, axis=axis) if descending else ascending


def argsort(
    x: mx.array, /, *, axis: int = -1, descending: bool = False, stable: bool = True
) -> mx.array:
    """Indices (int32) that sort ``x`` along ``axis``; equal elements keep their order either
    way.

    Notes:
        # Note: ``mx.argsort`` returns uint32; the standard asks for the default index dtype.
    """
    if not descending:
        return mx.argsort(x, axis=axis).astype(mx.int32)
    n = x.shape[axis]
    reversed_order = mx.argsort(mx.flip(x, axis=axis), axis=axis).astype(mx.int32)
    return (n - 1) - mx.flip(reversed_order, axis=axis)


def searchsorted(
    x1: mx.array,
    x2: mx.array,
    /,
    *,
    side: str = "left",
    sorter: mx.array | None = None,
) -> mx.array:
    """Insertion indices of ``x2`` into 1-D ``x1`` (sorted, or sorted by ``sorter``)."""
    if side not in ("left", "right"):
        raise ValueError(
            f"[mlx_linalg.array_api.searchsorted] expected side 'left' or 'right', got {side!r}"
        )
    if sorter is not None:
        x1 = mx.take(x1, sorter)
    return mx.searchsorted(x1, x2, side=side)


def reshape(x: mx.array, /, shape: tuple[int, ...], *, copy: bool | None = None) -> mx.array:
    """``x`` with a new shape; ``copy=True`` returns a distinct array."""
    out = mx.reshape(x, shape)
    return mx.array(out) if copy else out


def take_along_axis(x: mx.array, indices: mx.array, /, *, axis: int = -1) -> mx.array:
    """Elements of ``x`` at ``indices`` along ``axis`` (shapes broadcast elsewhere)."""
    return mx.take_along_axis(x, indices, axis=axis)


def _axes(axis: int | Sequence[int] | None) -> int | list[int] | None:
    return list(axis) if isinstance(axis, tuple | list) else axis


def _count(shape: Sequence[int], axes: int | list[int]) -> int:
    count = 1
    for a in [axes] if isinstance(axes, int) else axes:
        count *= shape[a]
    return count


def _cumulative(fn, op, identity, x, axis, dtype, include_initial):
    if axis is None:
        if x.ndim > 1:
            raise ValueError(
                f"[mlx_linalg.array_api.{fn}] axis is required for arrays of more than one "
                f"dimension, got shape {tuple(x.shape)}"
            )
        axis = 0
    if dtype is not None:
        x = x.astype(dtype)
    out = op(x, axis=axis)
    if include_initial:
        pad_shape = list(out.shape)
        pad_shape[axis] = 1
        out = mx.concatenate([mx.full(pad_shape, identity, out.dtype), out], axis=axis)
    return out


def roll(
    x: mx.array,
    /,
    shift: int | tuple[int, ...],
    *,
    axis: int | tuple[int, ...] | None = None,
) -> mx.array:
    """``x`` with elements shifted by ``shift`` along ``axis`` (the flattened array if None)."""
    return mx.roll(x, shift, axis)


def moveaxis(
    x: mx.array, source: int | tuple[int, ...], destination: int | tuple[int, ...], /
) -> mx.array:
    """``x`` with the axes ``source`` moved to positions ``destination`` (ints or tuples).

    Notes:
        # Note: ``mx.moveaxis`` takes single axes only; tuples go through ``permute_dims``.
    """
    if isinstance(source, int) and isinstance(destination, int):
        return mx.moveaxis(x, source, destination)
    source = (source,) if isinstance(source, int) else tuple(source)
    destination = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(source) != len(destination):
        raise ValueError(
            "[mlx_linalg.array_api.moveaxis] expected source and destination of the same "
            f"length, got {source} and {destination}"
        )
    source = tuple(a % x.ndim for a in source)
    destination = tuple(a % x.ndim for a in destination)
    order = [a for a in range(x.ndim) if a not in source]
    for dest, src in sorted(zip(destination, source, strict=True)):
        order.insert(dest, src)
    return mx.transpose(x, order)
