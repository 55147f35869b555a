"""Devices in the Array API sense for MLX arrays.

MLX arrays live in unified memory and are not bound to a device; a device (through a stream)
chooses where an *operation* runs. So the namespace treats ``device=`` on a creation function
as "run this creation on that device" and reports ``x.device`` as the device MLX would run the
next operation on: the default device. A device is an ``mx.Device``; ``mx.cpu``/``mx.gpu`` and
the strings ``"cpu"``/``"gpu"`` are accepted wherever a device is.
"""

import mlx.core as mx

_DEVICE_TYPES = {"cpu": mx.cpu, "gpu": mx.gpu}


def normalize_device(fn: str, device: object) -> mx.Device | None:
    """``device`` as an ``mx.Device`` (``None`` stays ``None``: the default device).

    Raises:
        ValueError: an unknown device name, or a device this build of MLX cannot run on.
    """
    if device is None:
        return None
    if isinstance(device, str):
        kind = _DEVICE_TYPES.get(device.split(":")[0].lower())
        if kind is None:
            raise ValueError(
                f"[mlx_linalg.array_api.{fn}] expected a device ('cpu', 'gpu', mx.cpu, mx.gpu or "
                f"an mx.Device), got {device!r}"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        device = mx.Device(kind, index)
    elif isinstance(device, mx.DeviceType):
        device = mx.Device(device, 0)
    elif not isinstance(device, mx.Device):
        raise ValueError(
            f"[mlx_linalg.array_api.{fn}] expected a device ('cpu', 'gpu', mx.cpu, mx.gpu or an "
            f"mx.Device), got {type(device).__name__}"
        )
    if not mx.is_available(device):
        raise ValueError(f"[mlx_linalg.array_api.{fn}] device {device} is not available here")
    return device


def device(x: mx.array, /) -> mx.Device:
    """The device an operation on ``x`` runs on: MLX's default device.

    Args:
        x: any ``mx.array`` (its memory is unified; it has no device of its own).

    Returns:
        ``mx.default_device()``.
    """
    return mx.default_device()


def to_device(x: mx.array, device: object, /, *, stream: object = None) -> mx.array:
    """``x`` for use on ``device``: the same array, since MLX memory is unified.

    Args:
        x: any ``mx.array``.
        device: a device (see the module docstring); checked to exist.
        stream: not supported by MLX for transfers; must be ``None``.

    Returns:
        ``x`` itself.
    """
    if stream is not None:
        raise ValueError("[mlx_linalg.array_api.to_device] the stream argument is not supported")
    normalize_device("to_device", device)
    return x


def devices() -> list[mx.Device]:
    """Every device this build of MLX can run on, the CPU first."""
    found = [mx.Device(mx.cpu, 0)]
    if mx.is_available(mx.gpu):
        found.extend(mx.Device(mx.gpu, i) for i in range(mx.device_count(mx.gpu)))
    return found
