"""Float32-accurate matrix products whatever ``MLX_ENABLE_TF32`` says.

MLX's CUDA backend multiplies float32 matrices in TF32 (10-bit mantissa inputs) unless
``MLX_ENABLE_TF32=0`` is set before the first operation; Apple's M5 GPU behaves alike. A
TF32 product has relative error about 3e-4, far above float32's 6e-8, which would make every
factorization built on it TF32-accurate. ``matmul`` detects reduced-precision products once
per process and device, and then forms the product from a hi/lo split of each operand:

    x ≈ hi + lo,  hi = x rounded to nearest in TF32,  lo = (x − hi) rounded to nearest in TF32,
    x·y ≈ hi_x·hi_y + hi_x·lo_y + lo_x·hi_y

(the 3xTF32 split of CUTLASS). The leading term is one product and the two corrections
another of inner size 2K, ``[a_hi, a_lo] @ [b_lo; b_hi]`` (:func:`split_operands`), added in
its epilogue (``mx.addmm``), so the result is written twice, not five times. Both halves are
exact in TF32, so the product unit reads them unchanged whether it rounds or truncates
float32 to TF32; the error is that of float32 accumulation plus the dropped parts: x − hi −
lo (at most 2⁻²²|x|, of either sign) and lo·lo (at most 2⁻²² relative; positive on the
diagonal of a Gram product). Measured on an H100 at n = 4096: 1.1e-5 relative error against
3e-4 for plain TF32 (DESIGN.md, "Precision"). Clearing hi's low bits instead (truncation)
left lo with up to 13 significant bits of x's sign, a dropped lo·lo up to 2⁻²⁰, and errors
of one sign where a product unit truncates lo: the blocked QR's orthogonality ratio on an
H100 at n = 2048 went from 1.31 to 0.93 with the rounded split. Other dtypes and
full-precision devices use ``mx.matmul`` directly; so does code inside a
:func:`reduced_products` context, which opts in to the device's precision.

The split product carries its own VJP (the split uses a bit view, which MLX cannot
differentiate), itself split products, so gradients through it are float32-accurate too.
Forward mode (``mx.jvp``) directly through a split product still fails in MLX 0.32, which
pushes tangents through the view even when a custom JVP is given; mlx_linalg's own ops give
JVPs through their VJPs (``mlx_linalg._autodiff``) and are not affected.
Tiny products (M·K·N up to 4096 per matrix, e.g. 16 x 16 @ 16 x 16, and 2²² in all) are
instead formed as float32 products summed over K (:func:`elementwise_matmul`): the split's
dropped parts leave a few units of roundoff relative to each operand, which LAPACK's own
float32 results for 1 x 1 to 4 x 4 matrices (often exact) show up, while the elementwise
form is as accurate as a float32 product and one fused launch instead of the split's four.
Products with an empty operand are built as zeros without calling ``mx.matmul``: MLX 0.32's
CUDA build crashed (segmentation fault) on a float64 (0, 3) product on the CPU stream.

A stack of a few matrices whose product has a long inner dimension is multiplied one matrix
at a time on a GPU (:func:`product`, :func:`accumulate`): MLX's CUDA backend multiplies a
stack by one batched cuBLASLt call, which on an H100 accumulated less accurately than the
single-matrix call (2 x 2048 x 2048 @ 2048 x 3 in plain float32: relative error 2.3e-6
against 2.7e-7), enough to make the blocked QR of a stack of two 2048 x 2048 matrices 3.9
times less orthogonal than either matrix alone (ratio 3.58 against 0.93; 0.96 with the
products per matrix, at 24% more time: H100, 2026-11-26). Since the float32 products of
:func:`matmul` on a GPU with such a K are summed from short chunks (below), this applies
to the others: ``blocked_common.subtract_product``'s, ``blocked_qr``'s, complex64 ones that
are not split and those of a :func:`reduced_products` context.

A device product accumulates its whole inner dimension K in float32, and on an H100 its
error grew with K. So on a GPU a float32 product with K > :data:`CHUNK` is summed from
products of at most :data:`CHUNK` inner terms (:func:`chunked_product`; split ones where
products are split): on an H200 (TF32, split) this took the polar factor of a Gaussian
4096 x 4096 matrix from 6.4 to 0.4 n·u from orthogonal and the two-stage eigh's
eigenvectors at 8192 from 9.7 to 1.4 (docs/kernels-spectral-blocks.md). Products in
float32 proper (``MLX_ENABLE_TF32=0``, Metal) accumulate in float32 the same way and are
chunked alike (on the H200, 4x more accurate than one product); those of a
:func:`reduced_products` context are not. The cost, n x n @ n x n on the H200: 1.3-2.5x
the time of one product over the whole K at n = 4096-8192, and on MLX's CUDA backend up to
one output per chunk product held at once (``mx.addmm`` writes a new array; the buffers
of kernels in flight stay alive): 15 GiB at n = 8192.
:func:`chunked_matmul` (the refinement's residual, on any device) and ``blocked_qr``'s Vᵀ C
chunk their own (docs/kernels-blocked.md, "Long inner dimensions").
"""

import contextlib
import threading

import mlx.core as mx
import numpy as np

from mlx_linalg._devices import on
from mlx_linalg._types import StreamOrDevice

_HI_MASK = 0xFFFFE000  # sign, exponent and the top 10 mantissa bits of a float32
_ROUND_HALF = 0x1000  # half a unit in TF32's last place, in float32 mantissa bits
_EXPONENT = 0x7F800000
_PROBE_SIZE = 128
_detected: dict[str, bool] = {}
_lock = threading.Lock()
_reduced_allowed = threading.local()
# Products of stacks of at most this many matrices with an inner dimension above
# PER_MATRIX_MIN_INNER run one matrix at a time on a GPU (module docstring); larger stacks
# and short inner dimensions (the factorizations' trailing updates, K = the block size)
# keep one batched product.
PER_MATRIX_MAX_BATCH = 16
PER_MATRIX_MIN_INNER = 257
# Products of at most this many M·K·N terms per matrix (and TINY_PRODUCT_TOTAL in all) are
# summed elementwise in float32 instead of split (module docstring).
TINY_PRODUCT = 4096
TINY_PRODUCT_TOTAL = 2**22
# The longest inner dimension one device product accumulates in :func:`chunked_matmul`
# and in a float32 product on a GPU (:func:`chunked_product`).
CHUNK = 256
# The most elements of the chunk products that a product of a long inner dimension holds
# at once (64 MiB of float32; :func:`chunked_product`).
CHUNK_OUTPUTS = 2**24


def matmul(a: mx.array, b: mx.array, *, stream: StreamOrDevice = None) -> mx.array:
    """``a @ b`` accurate to float32 on devices that multiply float32 in reduced precision.

    Args:
        a: (..., M, K).
        b: (..., K, N).
        stream: MLX stream or device.

    Returns:
        (..., M, N), as ``mx.matmul``.
    """
    if a.size == 0 or b.size == 0:
        shape = _product_shape(tuple(a.shape), tuple(b.shape))
        return mx.zeros(shape, dtype=mx.result_type(a, b), stream=stream)
    if a.dtype in (mx.float32, mx.complex64) and b.dtype in (mx.float32, mx.complex64):
        if needs_split(stream):
            if is_tiny_product(a, b):
                with on(stream):
                    return elementwise_matmul(a, b)
            return split_matmul(a, b, stream=stream)
        if is_long_product(a, b) and _full_float32_gpu(a, b, stream):
            with on(stream):
                return chunked_product(a, b, split=False)
    with on(stream):
        return product(a, b)


def is_tiny_product(a: mx.array, b: mx.array) -> bool:
    """Whether ``a @ b`` is small enough for :func:`elementwise_matmul`: matrices (not
    vectors) with M·K·N at most :data:`TINY_PRODUCT` per matrix and
    :data:`TINY_PRODUCT_TOTAL` in all."""
    if a.ndim < 2 or b.ndim < 2:
        return False
    (m, k), n = a.shape[-2:], b.shape[-1]
    return m * k * n <= TINY_PRODUCT and _batch_count(a, b) * m * k * n <= TINY_PRODUCT_TOTAL


def elementwise_matmul(a: mx.array, b: mx.array) -> mx.array:
    """(..., M, K) @ (..., K, N) as float32 products summed over K, on the default stream:
    exact products and float32 sums, like a full-precision matrix product, whatever the
    device's matrix unit does. Builds an (..., M, K, N) temporary."""
    return mx.sum(mx.expand_dims(a, -1) * mx.expand_dims(b, -3), axis=-2)


def product(a: mx.array, b: mx.array, *, looped: bool | None = None) -> mx.array:
    """``mx.matmul(a, b)`` on the default stream, one matrix at a time where ``looped`` (by
    default :func:`per_matrix` of ``a`` and ``b``) says so."""
    if per_matrix(a, b) if looped is None else looped:
        a, b = _flat_pair(a, b)
        batch = a.shape[:-2]
        return _stacked([mx.matmul(x, y) for x, y in zip(_each(a), _each(b), strict=True)], batch)
    return mx.matmul(a, b)


def accumulate(
    c: mx.array, a: mx.array, b: mx.array, *, alpha: float = 1.0, looped: bool | None = None
) -> mx.array:
    """``mx.addmm(c, a, b, alpha=alpha)`` (c + alpha·a @ b) on the default stream, one
    matrix at a time where ``looped`` (by default :func:`per_matrix` of ``a`` and ``b``)
    says so. A split product's correction term (inner size 2K) passes the decision of its
    leading term (inner size K)."""
    if per_matrix(a, b) if looped is None else looped:
        a, b = _flat_pair(a, b)
        batch = a.shape[:-2]
        c = mx.broadcast_to(c, (*batch, a.shape[-2], b.shape[-1]))
        terms = zip(_each(c), _each(a), _each(b), strict=True)
        return _stacked([mx.addmm(z, x, y, alpha=alpha) for z, x, y in terms], batch)
    return mx.addmm(c, a, b, alpha=alpha)


def per_matrix(a: mx.array, b: mx.array) -> bool:
    """Whether ``a @ b`` is formed one matrix at a time: stacks of 2 to
    ``PER_MATRIX_MAX_BATCH`` matrices, inner dimension at least ``PER_MATRIX_MIN_INNER``, on
    the default device when it is a GPU (module docstring)."""
    if a.ndim < 3 or b.ndim < 3 or a.shape[-1] < PER_MATRIX_MIN_INNER:
        return False
    return 2 <= _batch_count(a, b) <= PER_MATRIX_MAX_BATCH and _gpu_default()


def _batch_count(a: mx.array, b: mx.array) -> int:
    """The number of matrix products in ``a @ b`` (its broadcast batch shape's size)."""
    return int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])))


def _gpu_default() -> bool:
    return mx.default_device() == mx.gpu


def _full_float32_gpu(a: mx.array, b: mx.array, stream: StreamOrDevice) -> bool:
    """Whether ``a @ b`` is a real float32 product on a GPU whose float32 products are
    float32 proper (not TF32: ``MLX_ENABLE_TF32=0``, or Metal before the M5)."""
    on_gpu = _gpu_default() if stream is None else _device(stream) == mx.gpu
    return on_gpu and a.dtype == b.dtype == mx.float32 and not reduced_precision(stream)


def _flat_pair(a: mx.array, b: mx.array) -> tuple[mx.array, mx.array]:
    """``a`` and ``b`` broadcast to their common batch shape (views)."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return mx.broadcast_to(a, (*batch, *a.shape[-2:])), mx.broadcast_to(b, (*batch, *b.shape[-2:]))


def _each(x: mx.array) -> list[mx.array]:
    """The matrices of a stack (..., R, C), in row-major order of the batch axes."""
    flat = x.reshape(-1, *x.shape[-2:])
    return [flat[i] for i in range(flat.shape[0])]


def _stacked(matrices: list[mx.array], batch: tuple) -> mx.array:
    return mx.stack(matrices).reshape(*batch, *matrices[0].shape)


def chunk_width(k: int, width: int | None = None) -> int | None:
    """The chunk of an inner dimension K for products accumulating at most ``width``
    (default :data:`CHUNK`) terms: the widest divisor of K between ``width``/2 and
    ``width``; None where K <= ``width`` (no chunking needed) or there is none."""
    width = CHUNK if width is None else width
    if k <= width:
        return None
    return next((w for w in range(width, width // 2 - 1, -1) if k % w == 0), None)


def column_chunks(a: mx.array, width: int | None = None) -> mx.array:
    """``a`` (..., M, K) as (..., S, M, W): its columns in S chunks of W <= ``width``
    (default :data:`CHUNK`), zero-padded to S·W >= K; the left operand of
    :func:`chunked_matmul` (one copy of ``a``, so form it once for an operand of several
    products).

    W is :func:`chunk_width` where K has such a divisor (no padding), else ``width``;
    K <= ``width`` gives S = 1.
    """
    width = CHUNK if width is None else width
    *batch, m, k = a.shape
    if k <= width:
        return mx.expand_dims(a, -3)
    chunk = chunk_width(k, width) or width
    count = -(-k // chunk)
    if count * chunk > k:
        a = mx.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, count * chunk - k)])
    return mx.contiguous(mx.swapaxes(a.reshape(*batch, m, count, chunk), -3, -2))


def chunked_matmul(
    a_chunks: mx.array, b: mx.array, *, stream: StreamOrDevice = None
) -> mx.array:
    """``a @ b`` from ``column_chunks(a)`` (..., S, M, W) and b (..., K, N): the S products of
    inner size W by :func:`matmul` (float32-accurate), summed by MLX's reduction.

    A device product accumulates its inner dimension in float32, and on an H100 its error
    grew with K: the split product's residual b − A x of a 8192 x 8192 system was off by
    6.7 ‖A‖∞‖x‖∞u, against 0.45 with 256-column chunks, and refinement with it stopped at
    backward error 1.34 against LAPACK's 0.039 (0.058 chunked; docs/refinement.md).
    """
    *_, count, _, chunk = a_chunks.shape
    with on(stream):
        b_chunks = row_chunks(b, count, chunk)
    return mx.sum(matmul(a_chunks, b_chunks, stream=stream), axis=-3, stream=stream)


def row_chunks(b: mx.array, count: int, chunk: int) -> mx.array:
    """``b`` (..., K, N) as (..., count, chunk, N), zero-padded to count·chunk >= K rows:
    the right operand matching :func:`column_chunks` of the left one."""
    k = b.shape[-2]
    if count * chunk > k:
        b = mx.pad(b, [(0, 0)] * (b.ndim - 2) + [(0, count * chunk - k), (0, 0)])
    return b.reshape(*b.shape[:-2], count, chunk, b.shape[-1])


def _product_shape(a: tuple, b: tuple) -> tuple:
    """The shape of ``a @ b`` (NumPy's matmul rules, 1-D operands included)."""
    rows = a[-2:-1] if len(a) > 1 else ()
    columns = b[-1:] if len(b) > 1 else ()
    batch = np.broadcast_shapes(a[:-2], b[:-2])
    return (*batch, *rows, *columns)


def split_matmul(a: mx.array, b: mx.array, *, stream: StreamOrDevice = None) -> mx.array:
    """The three-product hi/lo split product (complex operands: four real products each)."""
    if mx.issubdtype(a.dtype, mx.complexfloating) or mx.issubdtype(b.dtype, mx.complexfloating):
        ar, ai, br, bi = mx.real(a), mx.imag(a), mx.real(b), mx.imag(b)
        real = split_matmul(ar, br, stream=stream) - split_matmul(ai, bi, stream=stream)
        imag = split_matmul(ar, bi, stream=stream) + split_matmul(ai, br, stream=stream)
        return real + 1j * imag
    with on(stream):
        return _split_product(a, b)


@mx.custom_function
def _split_product(a: mx.array, b: mx.array) -> mx.array:
    """Real (..., M, K) @ (..., K, N) from the hi/lo split, on the default stream; a long
    inner dimension in chunks (:func:`is_long_product`, :func:`chunked_product`)."""
    if is_long_product(a, b):
        return chunked_product(a, b, split=True)
    # K <= CHUNK: short enough for one batched product (per_matrix), also the correction's 2K.
    return _summed(None, split_operands(a, b))


def is_long_product(a: mx.array, b: mx.array) -> bool:
    """Whether ``a @ b`` multiplies matrices over more than :data:`CHUNK` inner terms."""
    return a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] > CHUNK


def chunked_product(a: mx.array, b: mx.array, *, split: bool) -> mx.array:
    """(..., M, K) @ (..., K, N) summed from products of at most :data:`CHUNK` inner terms
    (module docstring), each a split product where ``split``, on the default stream.

    The chunks' products are formed ``group`` at a time, as one batched product summed
    over the group (``group`` outputs (..., M, N) live at once, at most
    :data:`CHUNK_OUTPUTS` elements in all), and each group's sum added to the total. Where
    one output alone reaches that size (M = N = 4096), each chunk's products are added
    into the total by ``mx.addmm`` instead (a product accumulated on its own, then added).
    """
    k = a.shape[-1]
    width = chunk_width(k) or CHUNK
    count = -(-k // width)
    outputs = _batch_count(a, b) * a.shape[-2] * b.shape[-1]
    group = max(1, min(count, CHUNK_OUTPUTS // outputs))
    total = None
    for first in range(0, count, group):
        columns = slice(first * width, (first + group) * width)
        x, y = a[..., columns], b[..., columns, :]
        if group == 1:
            total = _summed(total, _terms(x, y, split))
            continue
        x = column_chunks(x, width)  # (..., S, M, W): W is width but in a shorter last group
        part = mx.sum(_summed(None, _terms(x, row_chunks(y, x.shape[-3], x.shape[-1]), split)), -3)
        total = part if total is None else total + part
    return total


def _summed(total: mx.array | None, pairs) -> mx.array:
    """``total`` plus the products of the operand ``pairs`` (their sum alone where ``total``
    is None), one batched product each (no per-matrix loop: the callers' inner dimensions
    are short), the later ones added by ``mx.addmm``."""
    for x, y in pairs:
        if total is None:
            total = product(x, y, looped=False)
        else:
            total = accumulate(total, x, y, looped=False)
    return total


def _terms(x: mx.array, y: mx.array, split: bool) -> tuple:
    """The operand pairs whose products sum to x @ y: the split's two, or (x, y) itself."""
    return split_operands(x, y) if split else ((x, y),)


def split_operands(a: mx.array, b: mx.array) -> tuple[tuple, tuple]:
    """The split product as two products: ``((a_hi, b_hi), (A2, B2))``.

    ``a @ b ≈ a_hi @ b_hi + A2 @ B2`` with A2 = [a_hi, a_lo] (..., M, 2K) and
    B2 = [b_lo; b_hi] (..., 2K, N): the two small correction terms share one product (and
    its accumulator), the leading term has its own. One product of inner size 3K for all
    three terms writes the result once, but it adds the corrections into the leading
    term's accumulator: on an H100 its error was 2.2e-5 at n = 2048, against 1e-5 here.
    """
    a_hi, a_lo = split_float32(a)
    b_hi, b_lo = split_float32(b)
    return (a_hi, b_hi), (pair(a_hi, a_lo, -1), pair(b_lo, b_hi, -2))


def pair(first: mx.array, second: mx.array, axis: int) -> mx.array:
    """``mx.concatenate([first, second], axis)`` for axis -1 or -2, in one launch.

    MLX's GPU concatenate copies each input by its own launch; a ``where`` over a new
    axis of length two in front of ``axis``, reshaped (free: the result is contiguous),
    writes the same array at once.
    """
    pick_second = mx.array([False, True]).reshape(2, *([1] * -axis))
    new_axis = axis - 1
    stacked = mx.where(
        pick_second, mx.expand_dims(second, new_axis), mx.expand_dims(first, new_axis)
    )
    shape = list(first.shape)
    shape[axis] *= 2
    return stacked.reshape(shape)


@_split_product.vjp
def _split_product_vjp(primals, cotangent, _output):
    """Cotangents of a @ b: ``G bᵀ`` and ``aᵀ G``, summed over broadcast batch axes."""
    a, b = primals
    grad_a = _split_product(cotangent, mx.swapaxes(b, -1, -2))
    grad_b = _split_product(mx.swapaxes(a, -1, -2), cotangent)
    return _unbroadcast(grad_a, a.shape), _unbroadcast(grad_b, b.shape)


def _unbroadcast(gradient: mx.array, shape) -> mx.array:
    """``gradient`` summed down to ``shape`` (undoes batch broadcasting)."""
    extra = gradient.ndim - len(shape)
    if extra:
        gradient = gradient.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and gradient.shape[i] != 1)
    return gradient.sum(axis=axes, keepdims=True) if axes else gradient


def needs_split(stream: StreamOrDevice = None) -> bool:
    """Whether float32 products on the stream's device must be split: they lose precision
    there, and no :func:`reduced_products` context is active in this thread."""
    return reduced_precision(stream) and not getattr(_reduced_allowed, "on", False)


@contextlib.contextmanager
def reduced_products():
    """Within this context (this thread), float32 products use the device's own precision.

    For the low-precision half of mixed-precision algorithms (a factorization refined by
    float32-accurate residuals, as in Haidar et al., SC18): :func:`matmul` and the blocked
    factorizations' trailing updates then run as plain TF32 products where the device
    multiplies so. The graph is built inside the context; evaluating it later is fine.
    """
    previous = getattr(_reduced_allowed, "on", False)
    _reduced_allowed.on = True
    try:
        yield
    finally:
        _reduced_allowed.on = previous


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


def tf32_round(x: mx.array) -> mx.array:
    """float32 ``x`` rounded to the nearest TF32 value (10 mantissa bits; ties away from zero),
    in float32. A finite x that would round to infinity has its low 13 bits cleared instead;
    infinities and NaNs are returned unchanged."""
    bits = mx.view(x, mx.uint32)
    rounded = (bits + _ROUND_HALF) & _HI_MASK
    rounded = mx.where((rounded & _EXPONENT) == _EXPONENT, bits & _HI_MASK, rounded)
    return mx.view(mx.where((bits & _EXPONENT) == _EXPONENT, bits, rounded), mx.float32)


@mx.compile
def split_float32(x: mx.array) -> tuple[mx.array, mx.array]:
    """``(hi, lo)`` of float32 ``x``: hi = x rounded to TF32, lo = x − hi (exact) rounded to
    TF32, both exact in TF32; x − hi − lo is below 2⁻²²|x| (module docstring). One fused
    kernel on the GPU (``mx.compile``)."""
    hi = tf32_round(x)
    return hi, tf32_round(x - hi)


def _device(stream: StreamOrDevice) -> mx.Device:
    if stream is None:
        return mx.default_device()
    if isinstance(stream, mx.Stream):
        return stream.device
    if isinstance(stream, mx.DeviceType):
        return mx.Device(stream)
    return stream
