"""Float32-accurate matrix products whatever ``MLX_ENABLE_TF32`` says.

MLX's CUDA backend multiplies float32 matrices in TF32 (10-bit mantissa inputs) unless
``MLX_ENABLE_TF32=0`` is set before the first operation; Apple's M5 GPU behaves alike. A
TF32 product has relative error about 3e-4, far above float32's 6e-8, which would make every
factorization built on it TF32-accurate. ``matmul`` detects reduced-precision products once
per process and device, and then forms the product from a hi/lo split of each operand:

    x = hi + lo,  hi = x with its low 13 mantissa bits cleared (exact in TF32),
    x·y ≈ hi_x·hi_y + hi_x·lo_y + lo_x·hi_y

Each of the three products is exact in its inputs, so the error is that of float32
accumulation plus the dropped lo·lo term (about 2⁻²² relative): measured on an H100 at
n = 4096, 1.1e-5 relative error against 3e-4 for plain TF32, in 0.6x the time of a true
float32 product (DESIGN.md, "Precision"). Other dtypes and full-precision devices use
``mx.matmul`` directly.
"""

import threading

import mlx.core as mx

from mlx_linalg._types import StreamOrDevice

_HI_MASK = 0xFFFFE000  # sign, exponent and the top 10 mantissa bits of a float32
_PROBE_SIZE = 128
_detected: dict[str, bool] = {}
_lock = threading.Lock()


def matmul(a: mx.array, b: mx.array, *, stream: StreamOrDevice = None) -> mx.array:
    """``a @ b`` accurate to float32 on devices that multiply float32 in reduced precision.

    Args:
        a: (..., M, K).
        b: (..., K, N).
        stream: MLX stream or device.

    Returns:
        (..., M, N), as ``mx.matmul``.
    """
    if a.dtype in (mx.float32, mx.complex64) and b.dtype in (mx.float32, mx.complex64):
        if reduced_precision(stream):
            return split_matmul(a, b, stream=stream)
    return mx.matmul(a, b, stream=stream)


def split_matmul(a: mx.array, b: mx.array, *, stream: StreamOrDevice = None) -> mx.array:
    """The three-product hi/lo split product (complex operands: four real products each)."""
    if mx.issubdtype(a.dtype, mx.complexfloating) or mx.issubdtype(b.dtype, mx.complexfloating):
        ar, ai, br, bi = mx.real(a), mx.imag(a), mx.real(b), mx.imag(b)
        real = split_matmul(ar, br, stream=stream) - split_matmul(ai, bi, stream=stream)
        imag = split_matmul(ar, bi, stream=stream) + split_matmul(ai, br, stream=stream)
        return real + 1j * imag
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    product = mx.matmul(a_hi, b_lo, stream=stream) + mx.matmul(a_lo, b_hi, stream=stream)
    return product + mx.matmul(a_hi, b_hi, stream=stream)


def reduced_precision(stream: StreamOrDevice = None) -> bool:
    """Whether float32 products on the stream's device lose precision (probed once).

    The probe multiplies a matrix of ``1 + 2⁻²⁰`` by the identity: exact in float32, rounded
    to 1 by TF32 inputs.
    """
    device = _device(stream)
    key = str(device)
    with _lock:
        if key not in _detected:
            ones = mx.full((_PROBE_SIZE, _PROBE_SIZE), 1 + 2**-20, dtype=mx.float32)
            eye = mx.eye(_PROBE_SIZE, dtype=mx.float32)
            product = mx.matmul(ones, eye, stream=device)
            _detected[key] = bool(mx.any(product != ones, stream=device).item())
        return _detected[key]


def _split(x: mx.array) -> tuple[mx.array, mx.array]:
    hi = mx.view(mx.view(x, mx.uint32) & _HI_MASK, mx.float32)
    return hi, x - hi


def _device(stream: StreamOrDevice) -> mx.Device:
    if stream is None:
        return mx.default_device()
    if isinstance(stream, mx.Stream):
        return stream.device
    if isinstance(stream, mx.DeviceType):
        return mx.Device(stream)
    return stream
