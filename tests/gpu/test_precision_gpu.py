"""On the GPU, float32 products stay float32-accurate whatever MLX_ENABLE_TF32 says, and
ops without a kernel compute through LAPACK and return arrays usable on the GPU."""

import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg as la
from mlx_linalg import _precision

pytestmark = pytest.mark.gpu


def _relative_error(got, ref) -> float:
    return float(np.linalg.norm(np.asarray(got) - ref) / np.linalg.norm(ref))


def test_matmul_is_float32_accurate_on_the_gpu():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048)).astype(np.float32) for _ in range(2))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    print("reduced-precision float32 products on this GPU:", _precision.reduced_precision())
    assert _relative_error(la.matmul(mx.array(a), mx.array(b)), ref) < 1e-5


def test_composed_ops_on_a_gpu_stream_are_float32_accurate():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 300, 200)).astype(np.float32)
    pinv = la.pinv(mx.array(a), stream=mx.gpu)
    np.testing.assert_allclose(
        np.asarray(pinv), np.linalg.pinv(a.astype(np.float64)), rtol=0, atol=2e-5
    )
    u, p = la.polar(mx.array(a[0]), stream=mx.gpu)
    recon = np.asarray(u).astype(np.float64) @ np.asarray(p).astype(np.float64)
    assert _relative_error(recon, a[0].astype(np.float64)) < 1e-5


def test_every_op_accepts_a_gpu_stream_and_returns_gpu_usable_arrays():
    rng = np.random.default_rng(2)
    x = mx.array(rng.standard_normal((4, 20, 20)).astype(np.float32))
    spd = x @ mx.swapaxes(x, -1, -2) + 20 * mx.eye(20)
    results = [
        la.qr(x, stream=mx.gpu).Q,
        la.svd(x, stream=mx.gpu).S,
        la.eigh(spd, stream=mx.gpu)[0],
        la.cholesky(spd, stream=mx.gpu),
        la.solve(x, x, stream=mx.gpu),
        la.inv(x, stream=mx.gpu),
        la.det(x, stream=mx.gpu),
        la.eig(x, stream=mx.gpu)[0],
        la.lstsq(x, x, stream=mx.gpu).solution,
        la.lu(x, stream=mx.gpu).U,
    ]
    for r in results:
        mx.eval((r * 2).sum(stream=mx.gpu))


@pytest.mark.parametrize("stream", [None, mx.gpu], ids=["default", "gpu-stream"])
def test_float64_runs_on_the_cpu(stream):
    """No MLX GPU has float64: with the GPU as default device (or stream=mx.gpu) float64
    input still works, through LAPACK on the CPU stream, at float64 accuracy."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 40, 40)) + 40 * np.eye(40)
    b = rng.standard_normal((2, 40, 3))
    # Note: with the GPU as default device, MLX 0.32 (CUDA) makes float32 arrays of NumPy
    # float64 ones unless dtype= says otherwise.
    am, bm = mx.array(a, dtype=mx.float64), mx.array(b, dtype=mx.float64)
    np.testing.assert_allclose(la.solve(am, bm, stream=stream), np.linalg.solve(a, b), rtol=1e-12)
    q, r = la.qr(am, stream=stream)
    np.testing.assert_allclose(np.asarray(q) @ np.asarray(r), a, rtol=0, atol=1e-12)
    product = a @ b
    np.testing.assert_allclose(
        la.matmul(am, bm, stream=stream), product, rtol=0, atol=1e-13 * abs(product).max()
    )
    symmetric = a + np.swapaxes(a, -1, -2)  # MLX's own float64 ops do not run on a GPU
    np.testing.assert_allclose(
        la.eigvalsh(mx.array(symmetric, dtype=mx.float64), stream=stream),
        np.linalg.eigvalsh(symmetric),
        rtol=1e-12,
        atol=1e-12,
    )


def test_complex64_identities_avoid_the_gpu_scatter():
    """MLX's GPU scatter rejects complex64: matrix_power and lu of empty stacks build their
    identities from a real one."""
    a = mx.array(np.eye(3) * (1 + 1j), mx.complex64)
    np.testing.assert_allclose(la.matrix_power(a, 0), np.eye(3))
    np.testing.assert_allclose(la.matrix_power(a, 2), np.eye(3) * 2j, atol=1e-6)
    p, lower, upper = la.lu(mx.zeros((0, 4, 4), mx.complex64))
    assert (p.shape, lower.shape, upper.shape) == ((0, 4, 4), (0, 4, 4), (0, 4, 4))
