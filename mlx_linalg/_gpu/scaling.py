"""Exact power-of-two scaling of matrix stacks, shared by the GPU paths.

Scaling by a power of two is exact (barring underflow into the subnormals), so algorithms
that square entries (Gram matrices, Jacobi rotations, Householder norms) can work on a
stack whose largest entry is in [1, 2) and return results scaled back exactly.
"""

import mlx.core as mx


def times_power_of_two(x: mx.array, exponent: mx.array) -> mx.array:
    """``x · 2^exponent``, exactly, for integer-valued exponents beyond float32's range.

    Args:
        x: (B, ...) array.
        exponent: (B,) or x's shape (elementwise), integer-valued float.

    Returns:
        x's shape. Two half steps, so that neither factor overflows: 2^±149 reaches the
        subnormals of float32, whose largest power is 2^127 (2^e itself may not exist).
    """
    half = mx.floor(exponent / 2)
    two = mx.array(2.0, dtype=x.dtype)
    shape = exponent.shape + (1,) * (x.ndim - exponent.ndim)
    first = mx.power(two, half).reshape(shape)
    second = mx.power(two, exponent - half).reshape(shape)
    return x * first * second


def prescale(a: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """Each matrix of (B, M, N) scaled by a power of two to a largest entry in [1, 2), its
    non-finite matrices zeroed: ``(scaled, exponent, finite)`` with a = scaled·2^exponent.

    Returns:
        scaled (B, M, N); exponent (B,) integer-valued, of a's dtype (0 for a zero or
        non-finite matrix); finite (B,) bool. Exact, subnormal input included, and Gram
        matrices of the scaled stack neither overflow nor underflow.
    """
    finite = mx.all(mx.isfinite(a), axis=(-2, -1))
    clean = mx.where(finite[:, None, None], a, 0)
    largest = mx.max(mx.abs(clean), axis=(-2, -1))
    exponent = mx.floor(mx.log2(mx.where(largest > 0, largest, 1))).astype(a.dtype)
    return times_power_of_two(clean, -exponent), exponent, finite


def prescale_lower(a: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """:func:`prescale` of the lower triangles of (B, N, N), the strict upper triangles set
    to zero first, for the symmetric ops that read only the lower one (whatever the upper
    one holds, NaN included, changes neither the scale nor ``finite``)."""
    n = a.shape[-1]
    lower = mx.tril(mx.ones((n, n), dtype=mx.bool_))
    return prescale(mx.where(lower, a, 0))
