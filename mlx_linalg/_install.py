"""Route ``mx.linalg`` and ``mx.array.__array_namespace__`` to mlx_linalg, and back.

While installed:

- ``mx.linalg.<fn>`` is mlx_linalg's function for every function both have (in MLX's calling
  convention where the two differ; see ``_array_api/_mx_linalg.py``), and mlx_linalg's extra
  functions (``svdvals``, ``matrix_norm``, ``lstsq``, ...) appear there too. Functions only
  MLX has (``norm``, ``tri_inv``, ``cholesky_inv``) stay.
- ``x.__array_namespace__()`` returns :mod:`mlx_linalg.array_api` for every ``mx.array``, so
  ``array_api_compat.array_namespace(x)`` (scikit-learn, SciPy, array-api-extra) finds it.
- ``x.device`` and ``x.to_device(device)`` exist on ``mx.array`` (the standard's array
  attributes, which MLX lacks), and ``x[mask]`` / ``x[mask] = v`` accept boolean masks
  (``_array_api/_indexing.py``).

State model: ``install()``/``uninstall()`` are an idempotent on/off switch; ``installed()`` is
a context manager counted across threads. The routing is in place while the switch is on or
any ``with installed():`` block is open; when neither holds, every attribute is restored
exactly (the very objects MLX had; names MLX did not have are deleted). All changes happen
under one lock.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import mlx.core as mx

_LOCK = threading.RLock()
_MISSING = object()
_state = {"switch": False, "blocks": 0, "saved": None}


def _array_namespace(self, /, *, api_version: str | None = None):
    """The Array API namespace of ``mx.array``: :mod:`mlx_linalg.array_api`."""
    import mlx_linalg.array_api as xp

    if api_version is not None and api_version not in _API_VERSIONS:
        raise ValueError(
            f"[mlx_linalg.array_api] unsupported api_version {api_version!r}; supported: "
            f"{', '.join(_API_VERSIONS)}"
        )
    return xp


_API_VERSIONS = ("2021.12", "2022.12", "2023.12", "2024.12")
_NOT_LINALG = ("errstate", "geterr", "install", "installed", "uninstall")


def _array_device(self) -> mx.Device:
    """The device operations on this array run on (MLX memory is unified): the default."""
    return mx.default_device()


def _array_to_device(self, device, /, *, stream=None):
    """This array for use on ``device``: itself, since MLX memory is unified."""
    from mlx_linalg._array_api._device import to_device

    return to_device(self, device, stream=stream)


def _patches() -> list[tuple[object, str, object]]:
    """Every (owner, attribute, new value) that install() sets."""
    import mlx_linalg as la
    from mlx_linalg._array_api._indexing import make_getitem, make_setitem
    from mlx_linalg._array_api._mx_linalg import ADAPTERS

    changes = [
        (mx.array, "__array_namespace__", _array_namespace),
        (mx.array, "__getitem__", make_getitem(mx.array.__dict__["__getitem__"])),
        (mx.array, "__setitem__", make_setitem(mx.array.__dict__["__setitem__"])),
        (mx.array, "device", property(_array_device)),
        (mx.array, "to_device", _array_to_device),
    ]
    for name in la.__all__:
        fn = getattr(la, name)
        if callable(fn) and not isinstance(fn, type) and name not in _NOT_LINALG:
            changes.append((mx.linalg, name, ADAPTERS.get(name, fn)))
    return changes


def _apply() -> None:
    saved = []
    for owner, name, value in _patches():
        saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)
    _state["saved"] = saved


def _restore() -> None:
    for owner, name, original in reversed(_state["saved"]):
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _state["saved"] = None


def _sync() -> None:
    """Apply or restore so that the routing matches the switch and the open blocks."""
    wanted = _state["switch"] or _state["blocks"] > 0
    if wanted and _state["saved"] is None:
        _apply()
    elif not wanted and _state["saved"] is not None:
        _restore()


def install() -> None:
    """Route ``mx.linalg`` and ``mx.array.__array_namespace__`` to mlx_linalg.

    Idempotent: a second call does nothing. Thread-safe.

    Example:
        >>> import array_api_compat
        >>> import mlx.core as mx
        >>> import mlx_linalg
        >>> mlx_linalg.install()
        >>> array_api_compat.array_namespace(mx.ones(3)).__name__
        'mlx_linalg.array_api'
        >>> mlx_linalg.uninstall()
    """
    with _LOCK:
        _state["switch"] = True
        _sync()


def uninstall() -> None:
    """Undo :func:`install`, restoring MLX's attributes exactly.

    Idempotent. An open ``with installed():`` block keeps the routing until it exits.
    """
    with _LOCK:
        _state["switch"] = False
        _sync()


def is_installed() -> bool:
    """Whether the routing is in place now."""
    with _LOCK:
        return _state["saved"] is not None


@contextmanager
def installed() -> Iterator[None]:
    """``with mlx_linalg.installed(): ...`` routes to mlx_linalg inside the block only.

    Blocks nest and may be open in several threads at once; the routing ends when the last
    one exits (unless :func:`install` switched it on).
    """
    with _LOCK:
        _state["blocks"] += 1
        _sync()
    try:
        yield
    finally:
        with _LOCK:
            _state["blocks"] -= 1
            _sync()
