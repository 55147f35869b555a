"""LinAlgError and the numerical-failure policy (errstate).

By default a matrix of a batch that fails numerically (not positive definite, exactly
singular) comes back as NaN and the rest of the batch is unaffected. Inside
``errstate(linalg="raise")`` the same failure raises :class:`LinAlgError` naming the
batch index. The mode lives in a context variable, so threads and asyncio tasks each have
their own.
"""

import contextlib
import contextvars
from collections.abc import Iterator

import numpy as np

_MODES = ("nan", "raise")
_linalg_mode: contextvars.ContextVar[str] = contextvars.ContextVar("linalg_mode", default="nan")


class LinAlgError(np.linalg.LinAlgError):
    """A numerical failure (not positive definite, singular) with ``errstate(linalg="raise")``.

    Subclasses ``numpy.linalg.LinAlgError``, so code written against NumPy or SciPy catches it.

    Attributes:
        indices: batch indices (tuples into the batch shape) of the matrices that failed.
    """

    def __init__(self, message: str, indices: tuple[tuple[int, ...], ...] = ()):
        super().__init__(message)
        self.indices = indices


@contextlib.contextmanager
def errstate(*, linalg: str) -> Iterator[None]:
    """Choose what a numerical failure does inside a ``with`` block.

    Args:
        linalg: ``"nan"`` (default outside any block): failing matrices of a batch become
            NaN; ``"raise"``: raise :class:`LinAlgError` naming the batch indices.

    Example:
        >>> with mlx_linalg.errstate(linalg="raise"):
        ...     L = mlx_linalg.cholesky(a)   # raises if any matrix of a is not PD
    """
    if linalg not in _MODES:
        raise ValueError(f"[mlx_linalg.errstate] expected linalg='nan' or 'raise', got {linalg!r}")
    token = _linalg_mode.set(linalg)
    try:
        yield
    finally:
        _linalg_mode.reset(token)


def geterr() -> dict[str, str]:
    """The numerical-failure mode in force here, e.g. ``{"linalg": "nan"}``."""
    return {"linalg": _linalg_mode.get()}


def report_failures(fn: str, what: str, failed: np.ndarray) -> None:
    """Raise for the failed batch entries when the mode is "raise"; otherwise do nothing.

    Args:
        fn: public function name, for the message.
        what: the failure, e.g. "matrix is not positive definite".
        failed: bool array of the batch shape, True where a matrix failed.
    """
    if _linalg_mode.get() != "raise" or not failed.any():
        return
    indices = tuple(tuple(int(i) for i in idx) for idx in np.argwhere(failed))
    shown = ", ".join(str(i) for i in indices[:8]) + (" ..." if len(indices) > 8 else "")
    raise LinAlgError(f"[mlx_linalg.{fn}] {what} at batch index {shown}", indices)


def check_failures(fn: str, what: str, failed) -> None:
    """``report_failures`` for a lazy MLX bool mask; syncs with the host only in raise mode."""
    if failed is None or _linalg_mode.get() != "raise":
        return
    report_failures(fn, what, np.asarray(failed))
