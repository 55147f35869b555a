"""The ``split_pair`` and ``split_gram`` kernels (metal/split_pair.metal,
metal/split_gram.metal) under CPU emulation against the MLX ops they replace
(``_precision.split_float32`` and ``_precision.pair``, as ``blocked_common.left`` /
``right`` / ``gram`` use them), bit for bit: normal, subnormal, zero, -0, Inf and NaN
entries, odd shapes, a batch."""

import mlx.core as mx
import numpy as np
import pytest
from kernel_emulation import emulate, needs_emulation

from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_common


def _entries(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-40, 40, shape)
    flat = x.reshape(-1)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -3e-45, 3.4e38, 1 + 2**-20]
    flat[: len(specials)] = specials[: flat.size]
    return x.astype(np.float32)


def _reference(x: np.ndarray, right: bool) -> tuple[np.ndarray, np.ndarray]:
    hi, lo = _precision.split_float32(mx.array(x))
    pair = _precision.pair(lo, hi, -2) if right else _precision.pair(hi, lo, -1)
    return np.asarray(hi), np.asarray(pair)


@needs_emulation
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 5), (2, 7, 4), (3, 33, 17)])
@pytest.mark.parametrize("right", [False, True])
def test_emulated_split_pair_matches_the_mlx_ops(shape, right):
    x = _entries(shape, sum(shape) + right)
    b, r, c = shape
    hi, pair = emulate.run(
        "split_pair",
        [x],
        template={"RIGHT": right},
        grid=(-(-x.size // 64) * 64, 1, 1),  # whole threadgroups (the emulation's rule)
        threadgroup=(64, 1, 1),
        output_shapes=[shape, (b, 2 * r, c) if right else (b, r, 2 * c)],
    )
    exp_hi, exp_pair = _reference(x, right)
    np.testing.assert_array_equal(hi.view(np.uint32), exp_hi.view(np.uint32))
    np.testing.assert_array_equal(pair.view(np.uint32), exp_pair.view(np.uint32))


@needs_emulation
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 5), (2, 7, 4), (3, 33, 17)])
def test_emulated_split_gram_matches_the_mlx_ops(shape):
    x = _entries(shape, sum(shape))
    b, r, c = shape
    hi, pair, swapped = emulate.run(
        "split_gram",
        [x],
        template={},
        grid=(-(-x.size // 64) * 64, 1, 1),
        threadgroup=(64, 1, 1),
        output_shapes=[shape, (b, r, 2 * c), (b, r, 2 * c)],
    )
    ref_hi, ref_lo = _precision.split_float32(mx.array(x))
    expected = (ref_hi, _precision.pair(ref_hi, ref_lo, -1), _precision.pair(ref_lo, ref_hi, -1))
    for got, want in zip((hi, pair, swapped), expected, strict=True):
        np.testing.assert_array_equal(got.view(np.uint32), np.asarray(want).view(np.uint32))


def test_gram_operands_form_the_split_product(monkeypatch):
    """``blocked_common.gram``: the operands ``left(X)`` and ``right(Xᵀ)`` would form, the
    right one's parts as transposed views (and X itself as its ``rows``), C - X Xᵀ from
    them float32-accurate, and without split products X and Xᵀ alone."""
    rng = np.random.default_rng(7)
    x = mx.array(rng.standard_normal((2, 9, 5)).astype(np.float32))
    c = mx.array(rng.standard_normal((2, 9, 9)).astype(np.float32))
    plain_left, plain_right = blocked_common.gram(x)
    assert plain_left.hi is None and plain_right.hi is None
    monkeypatch.setattr(_precision, "reduced_precision", lambda *_, **__: True)
    left, right = blocked_common.gram(x)
    assert right.pair.shape == (2, 10, 9)
    expected = (blocked_common.left(x), blocked_common.right(mx.swapaxes(x, -1, -2)))
    for ours, theirs in zip((left, right), expected, strict=True):
        for got, want in zip(ours[:3], theirs[:3], strict=True):  # value, hi, pair
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert left.rows is None and right.rows is x  # X itself, for the rank_update kernel
    update = np.asarray(blocked_common.subtract(c, left, right), dtype=np.float64)
    x64 = np.asarray(x, dtype=np.float64)
    exact = np.asarray(c, dtype=np.float64) - x64 @ np.swapaxes(x64, -1, -2)
    assert np.abs(update - exact).max() <= 1e-6 * np.abs(exact).max()
    few = blocked_common.first_columns(right, 4)
    assert [part.shape for part in few[:4]] == [(2, 5, 4), (2, 5, 4), (2, 10, 4), (2, 4, 5)]


def test_the_kernel_split_is_never_taken_on_the_cpu(monkeypatch):
    """On by default (it passed its GPU tests); it still never runs where the default device
    is the CPU (the kernel needs a GPU), even with split products."""
    assert blocked_common.FUSED_SPLIT is True
    monkeypatch.setattr(_precision, "reduced_precision", lambda *_, **__: True)
    a = mx.ones((1, 4, 4))
    with mx.stream(mx.cpu):
        operand = blocked_common.left(a)
    hi, lo = _precision.split_float32(a)
    np.testing.assert_array_equal(np.asarray(operand.pair), np.asarray(_precision.pair(hi, lo, -1)))
