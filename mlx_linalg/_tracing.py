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

# A lazy Python loop of many launches (a step: stage 1's block column, a back-transformation's
# block of reflectors) starts evaluating every this many steps (:func:`start_every`), so the
# GPU runs the steps built so far while Python builds the rest. On one H100 (2026-11-28,
# dispatched float32 eigh, two interleaved rounds against the revision before): n = 2048
# 135/132 -> 116/113 ms, 4096 366/359 -> 308/313 (eigvalsh 258/241 -> 212/207); 1024 and
# 8192 within the run-to-run spread. 2 was slower than 8, 32 about as fast.
STEPS_PER_START = 8


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


def start_every(step: int, *arrays: mx.array, every: int = STEPS_PER_START) -> None:
    """:func:`start_evaluation` of ``arrays`` at every ``every``-th ``step`` (counted from 1)
    of a loop (default :data:`STEPS_PER_START`); nothing at the others."""
    if step % every == 0:
        start_evaluation(*arrays)
