"""The split product keeps float32 accuracy; matmul routes to it only where products lose
precision (TF32)."""

import mlx.core as mx
import numpy as np
import pytest
from matrices import emulate_tf32, tf32, tf32_addmm, tf32_matmul

import mlx_linalg as la
from mlx_linalg import _precision

FLOAT32_PRODUCT_ERROR = 1e-5  # normwise; TF32 gives about 3e-4


def _relative_error(got, a, b) -> float:
    ref = np.asarray(a).astype(np.complex128) @ np.asarray(b).astype(np.complex128)
    return float(np.linalg.norm(np.asarray(got) - ref) / np.linalg.norm(ref))


def test_split_product_is_float32_accurate_even_with_tf32_products(monkeypatch, rng):
    a = mx.array(rng.standard_normal((2, 96, 64)).astype(np.float32))
    b = mx.array(rng.standard_normal((64, 80)).astype(np.float32))

    plain = tf32_matmul(a, b)
    assert _relative_error(plain, a, b) > 1e-4  # the simulation really is TF32
    monkeypatch.setattr(_precision.mx, "matmul", tf32_matmul)
    assert _relative_error(_precision.split_matmul(a, b), a, b) < FLOAT32_PRODUCT_ERROR


def test_split_product_of_complex_operands(rng):
    a = rng.standard_normal((20, 30)) + 1j * rng.standard_normal((20, 30))
    b = rng.standard_normal((30, 10)) + 1j * rng.standard_normal((30, 10))
    got = _precision.split_matmul(
        mx.array(a.astype(np.complex64)), mx.array(b.astype(np.complex64))
    )
    assert got.dtype == mx.complex64
    assert _relative_error(got, a, b) < FLOAT32_PRODUCT_ERROR


def test_cpu_products_are_full_precision_and_go_straight_to_mlx():
    assert _precision.reduced_precision(mx.cpu) is False


@pytest.mark.parametrize("reduced", [True, False])
def test_matmul_routes_by_the_probe(monkeypatch, reduced, rng):
    calls = []
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: reduced)
    monkeypatch.setattr(
        _precision, "split_matmul", lambda a, b, stream=None: calls.append(1) or a @ b
    )
    a = mx.array(rng.standard_normal((24, 24)).astype(np.float32))  # above TINY_PRODUCT
    la.matmul(a, a)
    la.matmul(a.astype(mx.float64), a.astype(mx.float64))
    assert len(calls) == (1 if reduced else 0)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "tiny"),
    [
        ((1, 1), (1, 1), True),
        ((1000, 4, 4), (1000, 4, 4), True),  # 64 terms per matrix, 64,000 in all
        ((16, 16), (16, 16), True),  # TINY_PRODUCT
        ((3, 1, 2, 5), (1, 4, 5, 2), True),  # batch axes broadcast
        ((16, 16), (16, 17), False),
        ((2**17, 4, 4), (4, 4), False),  # 2²³ terms in all: above TINY_PRODUCT_TOTAL
        ((4,), (4, 4), False),  # a vector operand
    ],
)
def test_tiny_products_are_summed_elementwise_where_products_lose_precision(
    monkeypatch, a_shape, b_shape, tiny, rng
):
    """A tiny float32 product is exact products summed in float32, not split: a 1 x 1
    product s · 1 returns s bit for bit (the split's x − hi − lo residual would not)."""
    assert _precision.is_tiny_product(mx.zeros(a_shape), mx.zeros(b_shape)) is tiny
    if not tiny:
        return
    calls = []
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    monkeypatch.setattr(_precision.mx, "matmul", tf32_matmul)
    monkeypatch.setattr(
        _precision, "split_matmul", lambda a, b, stream=None: calls.append(1) or a @ b
    )
    a = mx.array((1 + rng.random(a_shape) * 2**-12).astype(np.float32))
    b = mx.array(rng.standard_normal(b_shape).astype(np.float32))
    got = _precision.matmul(a, b)
    assert calls == []
    ref = np.asarray(a).astype(np.float64) @ np.asarray(b).astype(np.float64)
    bound = a_shape[-1] * 2**-24 * (np.abs(np.asarray(a)) @ np.abs(np.asarray(b)))
    assert np.all(np.abs(np.asarray(got) - ref) <= bound)
    one = mx.ones((1, 1), dtype=mx.float32)
    assert np.asarray(_precision.matmul(a[..., :1, :1], one)) == pytest.approx(
        np.asarray(a[..., :1, :1]), rel=0, abs=0
    )


def test_a_split_product_is_not_exact_where_the_tiny_product_is(monkeypatch):
    """Why tiny products are not split: x = 1 + 2⁻¹² + 2⁻²⁰ + 2⁻²³ has a low part with 12
    significant bits, one more than TF32 keeps, so the split x · 1 misses 2⁻²³ (half a
    unit of x's roundoff); the elementwise product returns x."""
    monkeypatch.setattr(_precision.mx, "matmul", tf32_matmul)
    x = mx.array(np.array([[1 + 2**-12 + 2**-20 + 2**-23]], dtype=np.float32))
    one = mx.ones((1, 1), dtype=mx.float32)
    assert float(_precision.split_matmul(x, one)[0, 0]) != float(x[0, 0])
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    assert float(_precision.matmul(x, one)[0, 0]) == float(x[0, 0])


@pytest.mark.parametrize("shape", [(5, 4), (3, 5, 4), (2, 1, 1, 7)])
def test_split_operands_are_the_concatenated_split_terms(shape, rng):
    """A2 = [a_hi, a_lo] and B2 = [b_lo; b_hi], bit for bit (built by one where each)."""
    a = mx.array(rng.standard_normal(shape).astype(np.float32))
    b = mx.swapaxes(mx.array(rng.standard_normal(shape).astype(np.float32)), -1, -2)
    (a_hi, b_hi), (a2, b2) = _precision.split_operands(a, b)
    a_lo, b_lo = _precision.tf32_round(a - a_hi), _precision.tf32_round(b - b_hi)
    assert bool(mx.all(a2 == mx.concatenate([a_hi, a_lo], axis=-1)))
    assert bool(mx.all(b2 == mx.concatenate([b_lo, b_hi], axis=-2)))
    for x, hi, lo in ((a, a_hi, a_lo), (b, b_hi, b_lo)):
        # both halves exact in TF32, and what they leave out below 2^-22 |x|
        assert bool(mx.all(_precision.tf32_round(hi) == hi))
        assert bool(mx.all(_precision.tf32_round(lo) == lo))
        assert bool(mx.all(mx.abs(x - hi - lo) <= 2.0**-22 * mx.abs(x)))


def _tf32_truncated(x: np.ndarray) -> np.ndarray:
    """float32 values cut to TF32's 10-bit mantissa (towards zero), as a product unit that
    truncates reads them."""
    return (x.astype(np.float32).view(np.uint32) & 0xFFFFE000).view(np.float32)


@pytest.mark.parametrize("convert", [tf32, _tf32_truncated], ids=["rounding", "truncating"])
def test_split_gram_product_is_unbiased_whatever_the_tf32_conversion(monkeypatch, rng, convert):
    """QᵀQ of an orthonormal Q: the split product's error does not depend on whether the
    product unit rounds or truncates its float32 inputs (with a truncated hi, a truncating
    unit cut lo towards zero, an error of one sign on QᵀQ's diagonal)."""
    n = 512
    q = np.linalg.qr(rng.standard_normal((n, n)))[0].astype(np.float32)

    def tf32_matmul(x, y, stream=None):
        return mx.array(np.matmul(convert(np.asarray(x)), convert(np.asarray(y))))

    def tf32_addmm(c, x, y, alpha=1.0, beta=1.0, stream=None):
        return mx.array(beta * np.asarray(c) + alpha * np.asarray(tf32_matmul(x, y)))

    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    monkeypatch.setattr(_precision.mx, "matmul", tf32_matmul)
    monkeypatch.setattr(_precision.mx, "addmm", tf32_addmm)
    exact = q.T.astype(np.float64) @ q
    got = np.asarray(_precision.matmul(mx.array(q.T.copy()), mx.array(q)))
    diagonal_bias = abs(float(np.mean(np.diag(got) - np.diag(exact))))
    assert diagonal_bias < 2.0**-24
    assert _relative_error(got, q.T, q) < FLOAT32_PRODUCT_ERROR


def test_tf32_round_edges():
    """Ties away from zero, no overflow to infinity, infinities and NaNs unchanged."""
    x = np.array([1 + 2**-11, -(1 + 2**-11), 1 + 2**-12, 3.4028235e38, np.inf, -np.inf, 0.0,
                  -0.0, 1e-40], dtype=np.float32)
    special = np.array([0x7FFFFFFF, 0xFFFFFFFF, 0x7FC00000], dtype=np.uint32).view(np.float32)
    got = np.asarray(_precision.tf32_round(mx.array(x)))
    assert got[0] == np.float32(1 + 2**-10) and got[1] == -np.float32(1 + 2**-10)
    assert got[2] == 1.0 and np.isfinite(got[3]) and got[3] <= x[3]
    assert list(got[4:6]) == [np.inf, -np.inf] and got[6] == 0 and np.signbit(got[7])
    assert abs(float(got[8]) - float(x[8])) <= 2.0**-137  # half a TF32 unit among subnormals
    assert np.array_equal(np.asarray(_precision.tf32_round(mx.array(special))).view(np.uint32),
                          special.view(np.uint32))


def test_reduced_products_context_skips_the_split(monkeypatch, rng):
    calls = []
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    monkeypatch.setattr(
        _precision, "split_matmul", lambda a, b, stream=None: calls.append(1) or a @ b
    )
    a = mx.array(rng.standard_normal((24, 24)).astype(np.float32))
    with _precision.reduced_products():
        la.matmul(a, a)
    assert calls == []
    la.matmul(a, a)  # the context ended
    assert calls == [1]


def test_split_trailing_update_is_float32_accurate_with_tf32_products(monkeypatch, rng):
    """blocked_common.subtract_product under emulated TF32: float32-accurate through the
    two-product split, TF32-level inside a reduced_products context."""
    from mlx_linalg._gpu.blocked_common import subtract_product

    c = rng.standard_normal((2, 70, 50)).astype(np.float32)
    a = rng.standard_normal((2, 70, 64)).astype(np.float32)
    b = rng.standard_normal((2, 64, 50)).astype(np.float32)
    exact = c.astype(np.float64) - a.astype(np.float64) @ b

    def error(got):
        return float(np.linalg.norm(np.asarray(got) - exact) / np.linalg.norm(exact))

    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    monkeypatch.setattr(_precision.mx, "addmm", tf32_addmm)
    args = (mx.array(c), mx.array(a), mx.array(b))
    assert error(subtract_product(*args)) < FLOAT32_PRODUCT_ERROR
    with _precision.reduced_products():
        assert error(subtract_product(*args)) > 1e-4


def test_tensordot_matches_numpy_on_floats(rng):
    a, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((5, 4, 2))
    got = la.tensordot(
        mx.array(a, dtype=mx.float64), mx.array(b, dtype=mx.float64), axes=([1, -1], [1, 0])
    )
    np.testing.assert_allclose(
        np.asarray(got), np.tensordot(a, b, axes=([1, -1], [1, 0])), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("a_shape", "b_shape"), [((5, 4), (4, 6)), ((3, 5, 4), (4, 6)), ((2, 1, 5, 4), (3, 4, 6))]
)
def test_split_product_gradient_is_that_of_the_product(rng, a_shape, b_shape):
    """The split product's own VJP (MLX cannot differentiate its bit view): the same
    gradients as mx.matmul's, broadcast batch axes summed back."""
    a = mx.array(rng.standard_normal(a_shape).astype(np.float32))
    b = mx.array(rng.standard_normal(b_shape).astype(np.float32))
    out_shape = (*np.broadcast_shapes(a_shape[:-2], b_shape[:-2]), a_shape[-2], b_shape[-1])
    weights = mx.array(rng.standard_normal(out_shape))

    def loss(product):
        return lambda x, y: (product(x, y) * weights.astype(mx.float32)).sum()

    split = mx.grad(loss(_precision.split_matmul), argnums=(0, 1))(a, b)
    plain = mx.grad(loss(mx.matmul), argnums=(0, 1))(a, b)
    for got, expected in zip(split, plain, strict=True):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("a", "b", "shape"),
    [
        ((0, 3), (3, 2), (0, 2)),
        ((3, 0), (0, 3), (3, 3)),
        ((2, 1, 1, 0), (4, 0, 5), (2, 4, 1, 5)),
        ((0,), (0,), ()),
        ((3, 0), (0,), (3,)),
    ],
)
def test_products_with_an_empty_operand_are_zeros(a, b, shape):
    product = _precision.matmul(mx.ones(a, mx.float64), mx.ones(b, mx.float64), stream=mx.cpu)
    assert product.shape == shape and product.dtype == mx.float64
    assert not mx.any(product).item()


@pytest.mark.parametrize("split", [False, True], ids=["float32", "tf32-split"])
@pytest.mark.parametrize(
    ("a_shape", "b_shape", "looped"),
    [
        ((3, 8, 300), (3, 300, 2), True),  # a few matrices, long inner dimension
        ((2, 2, 8, 300), (1, 300, 2), True),  # batch axes broadcast: 4 matrices
        ((1, 8, 300), (1, 300, 2), False),  # one matrix
        ((3, 8, 64), (3, 64, 2), False),  # short inner dimension (a trailing update)
        ((3, 8, 200), (3, 200, 2), False),  # also when the split's correction has 2K = 400
        ((_precision.PER_MATRIX_MAX_BATCH + 1, 8, 300), (1, 300, 2), False),  # many matrices
    ],
)
def test_few_large_products_are_formed_one_matrix_at_a_time(
    monkeypatch, rng, a_shape, b_shape, looped, split
):
    """On a GPU, MLX's batched products of a few matrices with a long inner dimension were
    less accurate than one matrix's: subtract_product and its split form take one product
    per matrix there, same values, same shapes; matmul with K > CHUNK is summed from chunks
    instead (short, so batched), and so takes one batched product where K <= CHUNK."""
    from mlx_linalg._gpu import blocked_common

    if split:
        emulate_tf32(monkeypatch)
    monkeypatch.setattr(_precision, "_gpu_default", lambda: True)
    monkeypatch.setattr(blocked_common, "FUSED_SPLIT", False)  # the kernel needs a real GPU
    ranks = []
    for name in ("matmul", "addmm"):
        original = getattr(mx, name)

        def recording(*args, _original=original, **kwargs):
            ranks.append(args[-1].ndim)
            return _original(*args, **kwargs)

        monkeypatch.setattr(mx, name, recording)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    c = rng.standard_normal((1, 8, 2)).astype(np.float32)
    expected = a.astype(np.float64) @ b
    product = np.asarray(_precision.matmul(mx.array(a), mx.array(b)))
    product_ranks, ranks[:] = list(ranks), []
    difference = np.asarray(blocked_common.subtract_product(mx.array(c), mx.array(a), mx.array(b)))
    assert product.shape == difference.shape == expected.shape
    np.testing.assert_allclose(product, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(difference, c - expected, rtol=0, atol=1e-4)
    chunked = a_shape[-1] > _precision.CHUNK
    for got, one_by_one in ((product_ranks, looped and not chunked), (ranks, looped)):
        assert all(rank == 2 for rank in got) if one_by_one else all(rank > 2 for rank in got)


@pytest.mark.parametrize(
    ("a_shape", "chunks", "width"),
    [
        ((5, 200), 1, 200),  # K <= CHUNK: one chunk
        ((5, 512), 2, 256),  # K a multiple of CHUNK
        ((5, 600), 3, 200),  # the widest divisor of K in [CHUNK/2, CHUNK]: no padding
        ((5, 257), 2, 256),  # no such divisor (prime K): zero-padded to 512
        ((2, 3, 4, 300), 2, 150),  # batch axes
    ],
)
def test_chunked_product_is_the_product(rng, a_shape, chunks, width):
    """column_chunks/chunked_matmul (the refinement's residual): the same product from
    products of inner size at most CHUNK, summed."""
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal((*a_shape[:-2], a_shape[-1], 3)).astype(np.float32)
    pieces = _precision.column_chunks(mx.array(a))
    assert pieces.shape == (*a_shape[:-2], chunks, a_shape[-2], width)
    got = np.asarray(_precision.chunked_matmul(pieces, mx.array(b)))
    expected = a.astype(np.float64) @ b
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "budget", "products"),
    [
        ((7, 200), (200, 5), None, 2),  # K <= CHUNK: the split's two products
        ((2, 7, 1024), (2, 1024, 5), None, 2),  # 4 chunks, one group: two batched products
        ((7, 1031), (1031, 5), None, 2),  # prime K: 5 chunks of CHUNK, zero-padded
        ((2, 7, 1100), (1100, 5), None, 2),  # chunks of 220 (a divisor of K), b broadcast
        ((7, 1024), (1024, 5), 70, 4),  # outputs of 35: groups of 2 chunks
        ((7, 1000), (1000, 5), 105, 4),  # chunks of 250, groups of 3 and 1
        ((7, 1024), (1024, 5), 35, 8),  # one output fills the budget: chunk by chunk
    ],
)
@pytest.mark.parametrize("split", [True, False], ids=["tf32-split", "float32-gpu"])
def test_gpu_products_sum_chunks_of_a_long_inner_dimension(
    rng, monkeypatch, a_shape, b_shape, budget, products, split
):
    """On a GPU a float32 product with K > CHUNK is summed from products of at most CHUNK
    inner terms, float32-accurate: split ones under (emulated) TF32, plain ones where
    products are float32 proper (a GPU emulated by the default-device check); batched over
    a group of chunks whose outputs fit CHUNK_OUTPUTS, else one chunk at a time added into
    the total."""
    if split:
        emulate_tf32(monkeypatch)
    else:
        monkeypatch.setattr(_precision, "_gpu_default", lambda: True)
        products //= 2  # one product per chunk (group) instead of the split's two
    if budget is not None:
        monkeypatch.setattr(_precision, "CHUNK_OUTPUTS", budget)
    inner = []
    for name in ("matmul", "addmm"):
        original = getattr(mx, name)

        def recording(*args, _original=original, **kwargs):
            inner.append(args[-1].shape[-2])
            return _original(*args, **kwargs)

        monkeypatch.setattr(mx, name, recording)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    got = np.asarray(_precision.matmul(mx.array(a), mx.array(b)))
    expected = a.astype(np.float64) @ b
    scale = np.abs(a).max() * np.abs(b).max() * a_shape[-1]
    assert np.abs(got - expected).max() <= 4 * float(np.finfo(np.float32).eps) * scale
    assert max(inner) <= (2 if split else 1) * _precision.CHUNK  # split: correction's 2K
    assert len(inner) == products


def test_products_stay_whole_off_a_gpu_and_in_reduced_products(rng, monkeypatch):
    """Long products are chunked on a GPU only, and not within reduced_products (where the
    caller asked for the device's own precision, for speed)."""
    inner = []
    original = mx.matmul

    def recording(*args, **kwargs):
        inner.append(args[-1].shape[-2])
        return original(*args, **kwargs)

    monkeypatch.setattr(mx, "matmul", recording)
    a, b = mx.array(rng.standard_normal((7, 1024))), mx.array(rng.standard_normal((1024, 5)))
    a, b = a.astype(mx.float32), b.astype(mx.float32)
    _precision.matmul(a, b)  # the CPU
    monkeypatch.setattr(_precision, "_gpu_default", lambda: True)
    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    with _precision.reduced_products():
        _precision.matmul(a, b)
    assert inner == [1024, 1024]
