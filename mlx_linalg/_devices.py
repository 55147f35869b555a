"""What MLX's GPU backends cannot run, and where mlx_linalg runs it instead.

- float64: no MLX GPU backend has it (every float64 op on a GPU stream raises "float64 is not
  supported on the GPU"). :func:`float64_on_cpu` runs a public function on the CPU stream,
  pre- and post-processing included, whenever one of its array arguments is float64, whatever
  the default device or ``stream=`` says (DESIGN.md: float64 runs on the CPU through LAPACK).
- :func:`on`: the one context that runs MLX ops on a ``stream=`` argument.
- complex64 scatter: MLX's GPU scatter rejects complex64, and ``mx.eye`` is a scatter there;
  :func:`eye` builds complex identities from a real one.
"""

import contextlib
import functools
from collections.abc import Callable

import mlx.core as mx
import numpy as np


def float64_on_cpu(fn: Callable) -> Callable:
    """``fn`` run on the CPU stream when any array argument (or one inside a tuple or list
    argument) is float64.

    ``fn`` takes a keyword ``stream=`` (None, an ``mx.Stream``, ``mx.Device`` or
    ``mx.DeviceType``); for float64 input it is called with ``stream=mx.cpu`` inside
    ``mx.stream(mx.cpu)``, so that the ops it builds around the dispatched one run there too.
    Other input is left to ``fn``'s own ``stream=`` handling.
    """

    @functools.wraps(fn)
    def wrapper(*args, stream=None, **keywords):
        if any(_is_float64(a) for a in (*args, *keywords.values())):
            with mx.stream(mx.cpu):
                return fn(*args, stream=mx.cpu, **keywords)
        return fn(*args, stream=stream, **keywords)

    return wrapper


def on(stream: object) -> contextlib.AbstractContextManager:
    """A context in which MLX ops run on ``stream`` (a ``stream=`` argument; None: MLX's
    default device, left as it is). MLX's default stream is per thread, so this does not
    affect other threads."""
    if stream is None:
        return contextlib.nullcontext()
    return mx.stream(mx.Device(stream) if isinstance(stream, mx.DeviceType) else stream)


def _is_float64(value: object) -> bool:
    if isinstance(value, mx.array):
        return value.dtype == mx.float64
    if isinstance(value, np.ndarray | np.generic):
        return value.dtype == np.float64
    if isinstance(value, tuple | list):  # (c, lower) of cho_solve, (lu, piv) of lu_solve
        return any(_is_float64(v) for v in value)
    return False


def eye(n: int, m: int | None = None, *, dtype: mx.Dtype, stream=None) -> mx.array:
    """``mx.eye(n, m, dtype=dtype)``, also for complex64 on a GPU stream."""
    if mx.issubdtype(dtype, mx.complexfloating):
        return mx.eye(n, m, dtype=mx.float32, stream=stream).astype(dtype, stream=stream)
    return mx.eye(n, m, dtype=dtype, stream=stream)
