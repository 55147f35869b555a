"""Products and views of the Array API linalg extension: matmul, outer, tensordot, vecdot,
cross, matrix_transpose, diagonal, trace. Thin, validated wrappers over MLX operations."""

import operator

import mlx.core as mx
import numpy as np

from mlx_linalg import _precision
from mlx_linalg._checks import as_array, fail
from mlx_linalg._devices import float64_on_cpu
from mlx_linalg._types import StreamOrDevice


def _numeric(fn: str, *arrays: mx.array) -> None:
    for x in arrays:
        if x.dtype == mx.bool_:
            fail(fn, "expected a numeric array, got bool", TypeError)


@float64_on_cpu
def matmul(x1: mx.array, x2: mx.array, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Matrix product with NumPy/Array API broadcasting (1-D operands are promoted).

    Args:
        x1: (..., M, K) or (K,).
        x2: (..., K, N) or (K,).
        stream: MLX stream or device.

    Returns:
        (..., M, N) with 1-D operands' axes removed.

    Notes:
        float32 and complex64 products stay float32-accurate on devices that multiply in
        TF32 (see ``mlx_linalg._precision``).
        # Note: MLX multiplies only floating-point matrices; integer operands are
        # multiplied exactly by a broadcast multiply and sum. The sum accumulates small
        # integers in 32 bits; the result has ``result_type(x1, x2)`` (int8 @ int8 is
        # int8, wrapping around on overflow as in NumPy), as the Array API requires.

    See Also:
        numpy.matmul
    """
    x1, x2 = as_array("matmul", x1, "x1"), as_array("matmul", x2, "x2")
    _numeric("matmul", x1, x2)
    if x1.ndim == 0 or x2.ndim == 0:
        fail(
            "matmul",
            f"expected arrays of at least 1 dimension, got shapes {tuple(x1.shape)} "
            f"and {tuple(x2.shape)}",
        )
    k1 = x1.shape[-1]
    k2 = x2.shape[0] if x2.ndim == 1 else x2.shape[-2]
    if k1 != k2:
        fail(
            "matmul",
            f"expected x1 (..., M, K) and x2 (..., K, N) to share K, got shapes "
            f"{tuple(x1.shape)} and {tuple(x2.shape)}",
        )
    if x1.ndim > 2 or x2.ndim > 2:
        _batch_shape("matmul", x1.shape[:-2], x2.shape[:-2], x1, x2)
    result = mx.result_type(x1, x2)
    if mx.issubdtype(result, mx.inexact):
        return _precision.matmul(x1, x2, stream=stream)
    a = x1[None, :] if x1.ndim == 1 else x1
    b = x2[:, None] if x2.ndim == 1 else x2
    product = (a[..., :, :, None] * b[..., None, :, :]).sum(axis=-2, stream=stream)
    if x1.ndim == 1:
        product = product[..., 0, :]
    if x2.ndim == 1:
        product = product[..., 0]
    return product.astype(result, stream=stream)


@float64_on_cpu
def outer(x1: mx.array, x2: mx.array, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Outer product of two vectors: (N,) and (M,) give (N, M).

    See Also:
        numpy.outer
    """
    x1, x2 = as_array("outer", x1, "x1"), as_array("outer", x2, "x2")
    _numeric("outer", x1, x2)
    if x1.ndim != 1 or x2.ndim != 1:
        fail(
            "outer", f"expected two 1-D arrays, got shapes {tuple(x1.shape)} and {tuple(x2.shape)}"
        )
    return mx.multiply(x1[:, None], x2[None, :], stream=stream)


@float64_on_cpu
def tensordot(
    x1: mx.array, x2: mx.array, /, *, axes: int | tuple = 2, stream: StreamOrDevice = None
) -> mx.array:
    """Tensor contraction over ``axes``.

    Args:
        x1: first array.
        x2: second array.
        axes: an int N (the last N axes of x1 with the first N of x2) or a pair of
            sequences of axes to contract.
        stream: MLX stream or device.

    See Also:
        numpy.tensordot
    """
    x1, x2 = as_array("tensordot", x1, "x1"), as_array("tensordot", x2, "x2")
    _numeric("tensordot", x1, x2)
    if isinstance(axes, int) and not isinstance(axes, bool):
        if not 0 <= axes <= min(x1.ndim, x2.ndim):
            fail("tensordot", f"expected 0 <= axes <= {min(x1.ndim, x2.ndim)}, got {axes}")
        a_axes, b_axes = list(range(x1.ndim - axes, x1.ndim)), list(range(axes))
    else:
        try:
            a_axes, b_axes = ([operator.index(i) for i in ax] for ax in axes)
        except (TypeError, ValueError):
            fail(
                "tensordot",
                f"expected axes to be an int or a pair of axis sequences, got {axes!r}",
                TypeError,
            )
    if len(a_axes) != len(b_axes) or any(
        x1.shape[i] != x2.shape[j] for i, j in zip(a_axes, b_axes, strict=False)
    ):
        fail(
            "tensordot",
            f"expected contracted axes of equal sizes, got shapes "
            f"{tuple(x1.shape)} and {tuple(x2.shape)} with axes {axes!r}",
        )
    a_free = [i for i in range(x1.ndim) if i not in {i % x1.ndim for i in a_axes}]
    b_free = [i for i in range(x2.ndim) if i not in {j % x2.ndim for j in b_axes}]
    # Explicit sizes: MLX cannot infer a -1 axis of a size-0 array.
    a = mx.transpose(x1, a_free + a_axes).reshape(_size(x1, a_free), _size(x1, a_axes))
    b = mx.transpose(x2, b_axes + b_free).reshape(_size(x2, b_axes), _size(x2, b_free))
    out_shape = [x1.shape[i] for i in a_free] + [x2.shape[i] for i in b_free]
    return matmul(a, b, stream=stream).reshape(out_shape)


@float64_on_cpu
def vecdot(
    x1: mx.array, x2: mx.array, /, *, axis: int = -1, stream: StreamOrDevice = None
) -> mx.array:
    """Vector dot product ``Σ conj(x1)·x2`` along ``axis``, with broadcasting.

    See Also:
        numpy.vecdot
    """
    x1, x2 = as_array("vecdot", x1, "x1"), as_array("vecdot", x2, "x2")
    _numeric("vecdot", x1, x2)
    shape = _batch_shape("vecdot", x1.shape, x2.shape, x1, x2)
    if not -len(shape) <= axis < len(shape) or len(shape) == 0:
        fail("vecdot", f"expected axis within the broadcast shape {shape}, got {axis}")
    if (
        x1.shape[axis - x1.ndim + len(shape) if axis >= 0 else axis]
        != x2.shape[axis - x2.ndim + len(shape) if axis >= 0 else axis]
    ):
        fail(
            "vecdot",
            f"expected equal sizes along axis {axis}, got shapes {tuple(x1.shape)} "
            f"and {tuple(x2.shape)}",
        )
    result = mx.result_type(x1, x2)
    if mx.issubdtype(x1.dtype, mx.complexfloating):
        x1 = mx.conj(x1)
    # MLX sums small integers into int32/uint32; the Array API asks for result_type(x1, x2).
    return mx.sum(mx.multiply(x1, x2), axis=axis, stream=stream).astype(result, stream=stream)


@float64_on_cpu
def cross(
    x1: mx.array, x2: mx.array, /, *, axis: int = -1, stream: StreamOrDevice = None
) -> mx.array:
    """Cross product of 3-element vectors along ``axis``, with broadcasting.

    Args:
        x1: (..., 3, ...) with size 3 along ``axis``.
        x2: the same size 3 along ``axis``; the other axes broadcast against x1's.
        axis: the axis of the vectors, counted from the end of each input when negative
            (positive values index the broadcast shape).
        stream: MLX stream or device.

    Returns:
        The broadcast shape, dtype ``result_type(x1, x2)``.

    Raises:
        ValueError: x1 or x2 is not of size 3 along ``axis`` (a size-1 axis is not
            broadcast, as the Array API specifies; NumPy also accepts size 2).

    See Also:
        numpy.cross
    """
    x1, x2 = as_array("cross", x1, "x1"), as_array("cross", x2, "x2")
    _numeric("cross", x1, x2)
    shape = _batch_shape("cross", x1.shape, x2.shape, x1, x2)
    if not -len(shape) <= axis < len(shape):
        fail("cross", f"expected axis within the broadcast shape {shape}, got {axis}")
    # The Array API asks for size 3 in both inputs: a size-1 axis does not broadcast.
    from_end = axis - len(shape) if axis >= 0 else axis
    sizes = [x.shape[from_end] if from_end >= -x.ndim else None for x in (x1, x2)]
    if sizes != [3, 3]:
        fail(
            "cross",
            f"expected size 3 along axis {axis} in both x1 and x2, got shapes "
            f"{tuple(x1.shape)} and {tuple(x2.shape)}",
        )
    a = mx.moveaxis(mx.broadcast_to(x1, shape), axis, -1)
    b = mx.moveaxis(mx.broadcast_to(x2, shape), axis, -1)
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    c = mx.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return mx.moveaxis(c, -1, axis, stream=stream)


@float64_on_cpu
def matrix_transpose(x: mx.array, /, *, stream: StreamOrDevice = None) -> mx.array:
    """Swap the last two axes: (..., M, N) -> (..., N, M)."""
    x = as_array("matrix_transpose", x)
    if x.ndim < 2:
        fail("matrix_transpose", f"expected a (..., M, N) array, got shape {tuple(x.shape)}")
    return mx.swapaxes(x, -1, -2, stream=stream)


@float64_on_cpu
def diagonal(x: mx.array, /, *, offset: int = 0, stream: StreamOrDevice = None) -> mx.array:
    """The ``offset`` diagonal of each matrix: (..., M, N) -> (..., L).

    Args:
        x: (..., M, N).
        offset: 0 the main diagonal, positive above it, negative below.
        stream: MLX stream or device.
    """
    x = as_array("diagonal", x)
    if x.ndim < 2:
        fail("diagonal", f"expected a (..., M, N) array, got shape {tuple(x.shape)}")
    offset = operator.index(offset)
    m, n = x.shape[-2:]
    length = min(m, n - offset) if offset >= 0 else min(m + offset, n)
    if length <= 0:
        # An empty diagonal as a fresh array: reducing MLX's empty diagonal view (offset
        # past the matrix) intermittently never returns (mlx 0.32, CPU).
        return mx.zeros(tuple(x.shape[:-2]) + (0,), dtype=x.dtype, stream=stream)
    return mx.diagonal(x, offset=offset, axis1=-2, axis2=-1, stream=stream)


@float64_on_cpu
def trace(
    x: mx.array, /, *, offset: int = 0, dtype: mx.Dtype | None = None, stream: StreamOrDevice = None
) -> mx.array:
    """Sum of the ``offset`` diagonal of each matrix: (..., M, N) -> (...,).

    Args:
        x: (..., M, N).
        offset: which diagonal, as in :func:`diagonal`.
        dtype: dtype of the sums; default x's dtype.
        stream: MLX stream or device.
    """
    d = diagonal(as_array("trace", x), offset=offset, stream=stream)
    if _is_bool(d):
        fail("trace", "expected a numeric array, got bool", TypeError)
    return mx.sum(d.astype(dtype or d.dtype), axis=-1, stream=stream)


def _is_bool(x: mx.array) -> bool:
    return x.dtype == mx.bool_


def _size(x: mx.array, axes) -> int:
    return int(np.prod([x.shape[i] for i in axes], dtype=np.int64))


def _batch_shape(fn: str, shape1, shape2, x1, x2) -> tuple:
    try:
        return tuple(np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    except ValueError:
        fail(fn, f"expected broadcastable shapes, got {tuple(x1.shape)} and {tuple(x2.shape)}")
