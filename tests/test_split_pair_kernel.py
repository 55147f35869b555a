"""The ``split_pair`` kernel (metal/split_pair.metal) under CPU emulation against the MLX
ops it replaces (``_precision.split_float32`` and ``_precision.pair``, as
``blocked_common.left`` / ``right`` use them), bit for bit: normal, subnormal, zero, -0,
Inf and NaN entries, odd shapes, a batch."""

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
