"""Data type functions of the standard: ``astype`` with ``copy``/``device``, ``finfo``/``iinfo``
that accept arrays, ``result_type`` that accepts Python scalars."""

import mlx.core as mx

from mlx_linalg._array_api._device import normalize_device

_KIND_OF_SCALAR = {bool: "bool", int: "integral", float: "real floating", complex: "complex"}


def astype(
    x: mx.array, dtype: mx.Dtype, /, *, copy: bool = True, device: object = None
) -> mx.array:
    """``x`` cast to ``dtype``; with ``copy=False`` and the same dtype, ``x`` itself."""
    stream = normalize_device("astype", device)
    if x.dtype == dtype:
        return mx.array(x) if copy else x
    return x.astype(dtype, stream=stream)


def can_cast(from_: mx.Dtype | mx.array, to: mx.Dtype, /) -> bool:
    """Whether the standard's promotion rules allow casting ``from_`` to ``to``."""
    return mx.can_cast(from_.dtype if isinstance(from_, mx.array) else from_, to)


def finfo(type: mx.Dtype | mx.array, /) -> mx.finfo:  # noqa: A002 (the standard's name)
    """Machine limits (bits, eps, max, min, smallest_normal, dtype) of a floating dtype."""
    return mx.finfo(type.dtype if isinstance(type, mx.array) else type)


def iinfo(type: mx.Dtype | mx.array, /) -> mx.iinfo:  # noqa: A002 (the standard's name)
    """Machine limits (bits, max, min, dtype) of an integer dtype."""
    return mx.iinfo(type.dtype if isinstance(type, mx.array) else type)


def isdtype(dtype: mx.Dtype, kind: mx.Dtype | str | tuple) -> bool:
    """Whether ``dtype`` is of ``kind`` ("bool", "signed integer", "unsigned integer",
    "integral", "real floating", "complex floating", "numeric", a dtype, or a tuple)."""
    if not isinstance(dtype, mx.Dtype):
        raise TypeError(
            f"[mlx_linalg.array_api.isdtype] expected a dtype, got {type(dtype).__name__}"
        )
    return mx.isdtype(dtype, kind)


def result_type(*arrays_and_dtypes: object) -> mx.Dtype:
    """The dtype the standard's promotion rules give for arrays, dtypes and Python scalars.

    A Python scalar takes the dtype of the other operands when it fits their kind (as in the
    standard's mixed array/scalar rules), otherwise the default dtype of its kind.
    """
    typed = [a for a in arrays_and_dtypes if isinstance(a, mx.array | mx.Dtype)]
    scalars = [a for a in arrays_and_dtypes if not isinstance(a, mx.array | mx.Dtype)]
    if not typed and not scalars:
        raise ValueError("[mlx_linalg.array_api.result_type] expected at least one argument")
    if not typed:
        return mx.result_type(*(mx.array(s) for s in scalars))
    dtype = mx.result_type(*typed)
    for s in scalars:
        if type(s) not in _KIND_OF_SCALAR:
            raise TypeError(
                f"[mlx_linalg.array_api.result_type] expected arrays, dtypes or Python scalars, "
                f"got {type(s).__name__}"
            )
        if not mx.isdtype(dtype, _scalar_kinds(s)):
            dtype = mx.result_type(dtype, mx.array(s))
    return dtype


def _scalar_kinds(scalar: object) -> tuple[str, ...]:
    """The dtype kinds a Python scalar joins without changing the array's dtype."""
    if isinstance(scalar, bool):
        return ("bool", "numeric")
    if isinstance(scalar, int):
        return ("numeric",)
    if isinstance(scalar, float):
        return ("real floating", "complex floating")
    return ("complex floating",)
