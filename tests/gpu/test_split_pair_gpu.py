"""On the GPU: the ``split_pair`` and ``split_gram`` kernels give the MLX ops' split bit for
bit, and the blocked graphs give the same results with them (``blocked_common.FUSED_SPLIT``)
as without: the checks that must pass before the flag is turned on."""

import mlx.core as mx
import numpy as np
import pytest

from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_cholesky, blocked_common, blocked_lu, blocked_qr

pytestmark = pytest.mark.gpu


def _bits(x: mx.array) -> np.ndarray:
    return np.asarray(x).view(np.uint32)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 33, 17), (2, 300, 129), (1, 2048, 64)])
@pytest.mark.parametrize("right", [False, True])
def test_split_pair_kernel_is_the_mlx_split(shape, right):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-40, 40, shape)
    x.reshape(-1)[:6] = [0.0, -0.0, np.inf, np.nan, 1e-40, -3e-45][: x.size]
    x = mx.array(x.astype(np.float32))
    hi, pair = blocked_common.split_pair_kernel(x, right=right)
    ref_hi, ref_lo = _precision.split_float32(x)
    ref_pair = _precision.pair(ref_lo, ref_hi, -2) if right else _precision.pair(ref_hi, ref_lo, -1)
    np.testing.assert_array_equal(_bits(hi), _bits(ref_hi))
    np.testing.assert_array_equal(_bits(pair), _bits(ref_pair))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 33, 17), (1, 2048, 64)])
def test_split_gram_kernel_is_the_mlx_split(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-40, 40, shape)
    x.reshape(-1)[:6] = [0.0, -0.0, np.inf, np.nan, 1e-40, -3e-45][: x.size]
    x = mx.array(x.astype(np.float32))
    hi, pair, swapped = blocked_common.split_gram_kernel(x)
    ref_hi, ref_lo = _precision.split_float32(x)
    np.testing.assert_array_equal(_bits(hi), _bits(ref_hi))
    np.testing.assert_array_equal(_bits(pair), _bits(_precision.pair(ref_hi, ref_lo, -1)))
    np.testing.assert_array_equal(_bits(swapped), _bits(_precision.pair(ref_lo, ref_hi, -1)))


@pytest.mark.parametrize("n", [300, 1024])
def test_blocked_graphs_are_unchanged_by_the_fused_split(n, monkeypatch):
    rng = np.random.default_rng(n)
    g = rng.standard_normal((n, n)).astype(np.float32) / np.float32(n**0.5)
    a = mx.array(g + 4 * np.eye(n, dtype=np.float32))[None]
    spd = mx.array(g @ g.T + np.eye(n, dtype=np.float32))[None]
    b = mx.array(rng.standard_normal((1, n, 16)).astype(np.float32))

    def run():
        return [
            blocked_lu.solve(a, b)[0][0],
            blocked_cholesky.cholesky(spd, upper=False)[0][0],
            *blocked_qr.qr(a, mode="reduced")[0],
        ]

    monkeypatch.setattr(blocked_common, "FUSED_SPLIT", False)
    before = run()
    mx.eval(before)
    monkeypatch.setattr(blocked_common, "FUSED_SPLIT", True)
    after = run()
    mx.eval(after)
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
