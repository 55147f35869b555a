"""Recognise MLX's refusal to evaluate an array while ``mx.compile`` or ``mx.vmap`` traces.

A graph that reads a value on the host (``mx.eval``, ``.item()``, ``.tolist()``) cannot be
traced: MLX raises a ``ValueError`` whose message holds :data:`TRACING_ERROR`. Code with a
host read catches it and builds a lazy form instead. ``mx.async_eval`` is refused with
:data:`ASYNC_TRACING_ERROR`, also under ``mx.grad`` and ``mx.vjp``:
:func:`start_evaluation` starts nothing there.
"""

import mlx.core as mx

TRACING_ERROR = "Attempting to eval an array during function transformations"
ASYNC_TRACING_ERROR = "[async_eval] Not allowed inside a graph transformation"


def is_tracing_error(error: BaseException) -> bool:
    """Whether ``error`` is MLX's refusal of ``mx.eval`` or ``mx.async_eval`` inside a
    function transformation."""
    message = str(error)
    return isinstance(error, ValueError) and (
        TRACING_ERROR in message or ASYNC_TRACING_ERROR in message
    )


def start_evaluation(*arrays: mx.array) -> bool:
    """Start evaluating ``arrays`` (``mx.async_eval``) so that the device runs while the host
    builds the graph after them; False, starting nothing, inside a function transformation
    (``mx.compile``, ``mx.vmap``, ``mx.grad``), where the graph stays lazy."""
    try:
        mx.async_eval(*arrays)
    except ValueError as error:
        if not is_tracing_error(error):
            raise
        return False
    return True
