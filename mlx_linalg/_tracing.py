"""Recognise MLX's refusal to evaluate an array while ``mx.compile`` or ``mx.vmap`` traces.

A graph that reads a value on the host (``mx.eval``, ``.item()``, ``.tolist()``) cannot be
traced: MLX raises a ``ValueError`` whose message starts with :data:`TRACING_ERROR`. Code
with a host read catches it and builds a lazy form instead.
"""

TRACING_ERROR = "Attempting to eval an array during function transformations"


def is_tracing_error(error: BaseException) -> bool:
    """Whether ``error`` is MLX's "eval during function transformations" error."""
    return isinstance(error, ValueError) and TRACING_ERROR in str(error)
