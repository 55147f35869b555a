"""``__array_namespace_info__``: what the namespace supports, on which devices."""

import mlx.core as mx

from mlx_linalg._array_api._device import devices, normalize_device

_ALL_DTYPES = {
    "bool": mx.bool_,
    "int8": mx.int8,
    "int16": mx.int16,
    "int32": mx.int32,
    "int64": mx.int64,
    "uint8": mx.uint8,
    "uint16": mx.uint16,
    "uint32": mx.uint32,
    "uint64": mx.uint64,
    "float32": mx.float32,
    "float64": mx.float64,
    "complex64": mx.complex64,
}

_KINDS = {
    "bool": ("bool",),
    "signed integer": ("int8", "int16", "int32", "int64"),
    "unsigned integer": ("uint8", "uint16", "uint32", "uint64"),
    "integral": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
    "real floating": ("float32", "float64"),
    "complex floating": ("complex64",),
}


class ArrayNamespaceInfo:
    """Inspection of ``mlx_linalg.array_api`` (the standard's ``__array_namespace_info__``).

    float64 exists only on the CPU in MLX, so a GPU device does not list it; complex128 does
    not exist in MLX at all.
    """

    __module__ = "mlx_linalg.array_api"

    def capabilities(self) -> dict[str, bool | int]:
        """``boolean indexing`` True while :func:`mlx_linalg.install` is in effect (MLX itself
        rejects masks); ``data-dependent shapes`` True (``unique_*``, ``nonzero`` and array
        ``repeat`` evaluate eagerly); ``max dimensions`` None (MLX sets no limit)."""
        from mlx_linalg._install import is_installed

        return {
            "boolean indexing": is_installed(),
            "data-dependent shapes": True,
            "max dimensions": None,
        }

    def default_device(self) -> mx.Device:
        """MLX's default device (the GPU when there is one)."""
        return mx.default_device()

    def devices(self) -> list[mx.Device]:
        """The CPU and, when MLX has a GPU backend, the GPUs."""
        return devices()

    def default_dtypes(self, *, device: object = None) -> dict[str, mx.Dtype]:
        """float32, complex64, int32 and int32 for indexing, on every device."""
        normalize_device("__array_namespace_info__.default_dtypes", device)
        return {
            "real floating": mx.float32,
            "complex floating": mx.complex64,
            "integral": mx.int32,
            "indexing": mx.int32,
        }

    def dtypes(
        self, *, device: object = None, kind: str | tuple[str, ...] | None = None
    ) -> dict[str, mx.Dtype]:
        """The dtypes of ``kind`` (a kind name, a tuple of them, or None for all) on
        ``device``; float64 only where it can run, the CPU."""
        dev = normalize_device("__array_namespace_info__.dtypes", device) or mx.default_device()
        names = _names_of(kind)
        if dev.type == mx.gpu:
            names = [n for n in names if n != "float64"]
        return {n: _ALL_DTYPES[n] for n in names}


def _names_of(kind: str | tuple[str, ...] | None) -> list[str]:
    if kind is None:
        return list(_ALL_DTYPES)
    if isinstance(kind, tuple):
        return [n for n in _ALL_DTYPES if any(n in _names_of(k) for k in kind)]
    if kind == "numeric":
        return [n for n in _ALL_DTYPES if n != "bool"]
    if kind not in _KINDS:
        raise ValueError(
            f"[mlx_linalg.array_api.__array_namespace_info__] unknown dtype kind {kind!r}"
        )
    return list(_KINDS[kind])


def __array_namespace_info__() -> ArrayNamespaceInfo:
    """The inspection object of ``mlx_linalg.array_api``."""
    return ArrayNamespaceInfo()
