"""Argument, shape and dtype validation shared by every function, and the dtype rules.

Every error message starts with ``[mlx_linalg.<fn>]`` and says what was expected and what
came. Dtype rules: float32, float64 and complex64 compute in their own precision; float16
and bfloat16 compute in float32 and return their own dtype; integer and bool inputs are a
``TypeError`` (the Array API linalg functions are defined for floating-point inputs).
"""

from collections.abc import Iterable
from typing import NoReturn

import mlx.core as mx
import numpy as np

_COMPUTE_DTYPE = {
    mx.float16: mx.float32,
    mx.bfloat16: mx.float32,
    mx.float32: mx.float32,
    mx.float64: mx.float64,
    mx.complex64: mx.complex64,
}

_NUMPY_DTYPE = {
    mx.float32: np.float32,
    mx.float64: np.float64,
    mx.complex64: np.complex64,
}

_REAL_DTYPE = {mx.complex64: mx.float32}

_TRANS_CODES = {0: 0, 1: 1, 2: 2, "N": 0, "T": 1, "C": 2}


def fail(fn: str, message: str, exc: type[Exception] = ValueError) -> NoReturn:
    """Raise ``exc`` with the message prefixed by ``[mlx_linalg.<fn>]``."""
    raise exc(f"[mlx_linalg.{fn}] {message}")


def as_array(fn: str, x: object, name: str = "x") -> mx.array:
    """``x`` as an ``mx.array``; NumPy arrays and Python scalars are converted."""
    if isinstance(x, mx.array):
        return x
    try:
        if isinstance(x, np.ndarray) and x.dtype == np.float64:
            return mx.array(x, dtype=mx.float64)  # MLX would narrow it to float32
        return mx.array(x)
    except (TypeError, ValueError):
        fail(fn, f"expected an array for {name}, got {type(x).__name__}", TypeError)


def require_matrix(fn: str, x: mx.array, *, square: bool = False, name: str = "x") -> None:
    """Check that ``x`` is a stack of matrices (..., M, N), square when asked."""
    expected = "(..., M, M)" if square else "(..., M, N)"
    if x.ndim < 2:
        fail(fn, f"expected a {expected} array for {name}, got shape {tuple(x.shape)}")
    if square and x.shape[-1] != x.shape[-2]:
        fail(fn, f"expected a {expected} array for {name}, got shape {tuple(x.shape)}")


def compute_dtype(fn: str, *arrays: mx.array) -> tuple[mx.Dtype, mx.Dtype]:
    """The (compute, result) dtypes for floating-point linalg inputs.

    Raises:
        TypeError: an input is integer, bool, or another dtype linalg is not defined for.
    """
    for x in arrays:
        if x.dtype not in _COMPUTE_DTYPE:
            fail(
                fn,
                "expected a floating-point array (float16, bfloat16, float32, float64 or "
                f"complex64), got {_dtype_name(x.dtype)}",
                TypeError,
            )
    result = mx.result_type(*arrays)
    return _COMPUTE_DTYPE[result], result


def real_dtype(dtype: mx.Dtype) -> mx.Dtype:
    """The real dtype of the same precision: complex64 -> float32, float32 -> float32."""
    return _REAL_DTYPE.get(dtype, dtype)


def default_rtol(shape: tuple, dtype: mx.Dtype) -> float:
    """The default relative rank cutoff ``max(M, N) * eps`` of a (..., M, N) input.

    ``eps`` is the machine epsilon of the input's own (real) dtype ``dtype``: float16 and
    bfloat16 inputs use their eps although they are computed in float32, as the Array API
    specifies for ``matrix_rank`` and ``pinv`` (and NumPy/SciPy do for every dtype they take).
    """
    return max(shape[-2:]) * mx.finfo(real_dtype(dtype)).eps


def numpy_dtype(dtype: mx.Dtype) -> type[np.generic]:
    """The NumPy dtype for an MLX compute dtype."""
    return _NUMPY_DTYPE[dtype]


def require_choice(fn: str, name: str, value: object, choices: Iterable[object]) -> None:
    """Check that a keyword has one of the allowed values."""
    choices = tuple(choices)
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        shown = ", ".join(repr(c) for c in choices)
        fail(fn, f"expected {name} to be one of {shown}, got {value!r}")


def trans_code(fn: str, trans: object) -> int:
    """LAPACK's transpose option as 0 (none), 1 (transpose) or 2 (conjugate transpose)."""
    if isinstance(trans, bool) or trans not in _TRANS_CODES:
        fail(fn, f"expected trans to be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    return _TRANS_CODES[trans]


def broadcast_batch(fn: str, a: mx.array, b: mx.array, a_core: int, b_core: int) -> tuple:
    """The broadcast batch shape of two stacks whose last ``a_core``/``b_core`` axes are core."""
    a_batch = tuple(a.shape[: a.ndim - a_core])
    b_batch = tuple(b.shape[: b.ndim - b_core])
    try:
        return tuple(np.broadcast_shapes(a_batch, b_batch))
    except ValueError:
        fail(
            fn,
            f"expected broadcastable batch shapes, got {tuple(a.shape)} and {tuple(b.shape)}",
        )


def _dtype_name(dtype: mx.Dtype) -> str:
    return str(dtype).removeprefix("mlx.core.")


def prepare(fn: str, x: object, *, square: bool = False) -> tuple[mx.array, mx.Dtype]:
    """Validate a matrix stack: returns it cast to the compute dtype, and the result dtype."""
    x = as_array(fn, x)
    require_matrix(fn, x, square=square)
    compute, result = compute_dtype(fn, x)
    return x.astype(compute), result


def prepare_rhs(
    fn: str, a: mx.array, b: object, *, rows: int, a_core: int = 2
) -> tuple[mx.array, mx.array, bool]:
    """Validate and broadcast a right-hand side against the stack ``a``.

    Follows the Array API ``solve`` rule: an exactly 1-D ``b`` of shape (M,) is a vector;
    any other ``b`` is a stack of matrices (..., M, K). Batch axes broadcast.

    Args:
        fn: public function name, for messages.
        a: the operator stack, already validated; its last ``a_core`` axes are core axes.
        b: the right-hand side.
        rows: M, the number of rows ``b`` must have.

    Returns:
        ``(a, b, vector)``: both broadcast to the common batch shape, ``b`` as (..., M, K)
        (K = 1 for a vector), and whether ``b`` was a vector.
    """
    b = as_array(fn, b, name="b")
    vector = b.ndim == 1
    if vector:
        b = b[:, None]
    if b.ndim < 2:
        fail(fn, f"expected b of shape (M,) or (..., M, K), got {tuple(b.shape)}")
    if b.shape[-2] != rows:
        expected = f"({rows},)" if vector else f"(..., {rows}, K)"
        got = (b.shape[0],) if vector else tuple(b.shape)
        fail(fn, f"expected b of shape {expected} to match a {tuple(a.shape)}, got {got}")
    batch = broadcast_batch(fn, a, b, a_core, 2)
    a = mx.broadcast_to(a, batch + tuple(a.shape[a.ndim - a_core :]))
    b = mx.broadcast_to(b, batch + tuple(b.shape[-2:]))
    return a, b, vector
