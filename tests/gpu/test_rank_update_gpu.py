"""On the GPU: the ``rank_update`` kernel is as accurate as a float32 GEMM (never TF32), and
the blocked graphs that use it (``blocked_common.RANK_UPDATE_MAX_K``) give the results they
give without it, to rounding."""

import mlx.core as mx
import numpy as np
import pytest

from mlx_linalg._gpu import (
    blocked_cholesky,
    blocked_common,
    blocked_lu,
    blocked_qr,
    blocked_triangular,
)

pytestmark = pytest.mark.gpu

U32 = np.finfo(np.float32).eps / 2


@pytest.mark.parametrize(
    "batch, m, n, k, trans_b, at",
    [
        (1, 1, 1, 1, False, (0, 0)),
        (3, 100, 77, 17, True, (1, 2)),
        (1, 4096, 16, 16, False, (16, 0)),  # an LU panel's half
        (1, 2000, 1968, 32, False, (0, 32)),  # a QR trailing update, C read in place
        (2, 513, 700, 32, True, (0, 0)),
        (1, 1000, 1100, 64, False, (64, 64)),  # an LU trailing update
    ],
)
def test_rank_update_kernel_is_float32_accurate(batch, m, n, k, trans_b, at):
    rng = np.random.default_rng(m + n + k)
    i, j = at
    c = rng.standard_normal((batch, m + i, n + j)).astype(np.float32)
    a = rng.standard_normal((batch, m, k)).astype(np.float32)
    b = rng.standard_normal((batch, n, k) if trans_b else (batch, k, n)).astype(np.float32)
    d = blocked_common.rank_update_kernel(
        mx.array(c), mx.array(a), mx.array(b), trans_b=trans_b, at=at
    )
    op_b = np.swapaxes(b, -1, -2).astype(np.float64) if trans_b else b.astype(np.float64)
    a64 = a.astype(np.float64)
    block = c[:, i : i + m, j : j + n].astype(np.float64)
    exact = block - a64 @ op_b
    bound = (k + 2) * U32 * (np.abs(block) + np.abs(a64) @ np.abs(op_b))
    error = np.abs(np.asarray(d, dtype=np.float64) - exact)
    assert np.all(error <= bound), float(np.max(error / bound))


@pytest.mark.parametrize("transposed", [False, True])
def test_rank_update_kernel_reads_a_window_in_place(transposed):
    """op(A) as a block of a larger matrix (a triangular solve's coupling block, or its
    transpose), read in place: the same bound as for the block copied out."""
    rng = np.random.default_rng(11)
    batch, m, n, k, (row, column) = 2, 1800, 300, 64, (100, 64)
    big = rng.standard_normal((batch, 2000, 2000)).astype(np.float32)
    c = rng.standard_normal((batch, m, n)).astype(np.float32)
    b = rng.standard_normal((batch, k, n)).astype(np.float32)
    if transposed:
        op_a = np.swapaxes(big[:, row : row + k, column : column + m], -1, -2)
    else:
        op_a = big[:, row : row + m, column : column + k]
    view = mx.zeros(op_a.shape, dtype=mx.float32)  # only its shape is used, never its values
    window = blocked_common.Window(mx.array(big), row, column, transposed)
    d = blocked_common.rank_update_kernel(mx.array(c), view, mx.array(b), window=window)
    a64, b64, c64 = (x.astype(np.float64) for x in (op_a, b, c))
    bound = (k + 2) * U32 * (np.abs(c64) + np.abs(a64) @ np.abs(b64))
    error = np.abs(np.asarray(d, dtype=np.float64) - (c64 - a64 @ b64))
    assert np.all(error <= bound), float(np.max(error / bound))


@pytest.mark.parametrize("batch, k, m, n", [(1, 1, 1, 1), (4, 256, 32, 3000), (2, 200, 64, 70)])
def test_transposed_product_kernel_is_float32_accurate(batch, k, m, n):
    rng = np.random.default_rng(k + m + n)
    a = rng.standard_normal((batch, k, m)).astype(np.float32)
    b = rng.standard_normal((batch, k, n)).astype(np.float32)
    d = blocked_common.transposed_product_kernel(mx.array(a), mx.array(b))
    a64, b64 = np.swapaxes(a, -1, -2).astype(np.float64), b.astype(np.float64)
    bound = (k + 2) * U32 * (np.abs(a64) @ np.abs(b64))
    error = np.abs(np.asarray(d, dtype=np.float64) - a64 @ b64)
    assert np.all(error <= bound), float(np.max(error / bound))


@pytest.mark.parametrize("n", [300, 2048])
def test_blocked_graphs_agree_with_and_without_the_kernel(n, monkeypatch):
    rng = np.random.default_rng(n)
    g = rng.standard_normal((n, n)).astype(np.float32) / np.float32(n**0.5)
    a = mx.array(g + 4 * np.eye(n, dtype=np.float32))[None]
    b = mx.array(rng.standard_normal((1, n, 16)).astype(np.float32))

    spd = mx.array(g @ g.T + np.eye(n, dtype=np.float32))[None]

    def run():
        (x,), _ = blocked_lu.solve(a, b)
        (q, r), _ = blocked_qr.qr(a, mode="reduced")
        (factor,), _ = blocked_cholesky.cholesky(spd, upper=False)
        y = blocked_triangular.solve_triangular(
            factor, b, lower=True, unit_diagonal=False, trans=0
        )[0][0]
        mx.eval(x, q, r, factor, y)
        return [np.asarray(z[0], dtype=np.float64) for z in (x, q, r, factor, y)]

    with_kernel = run()
    monkeypatch.setattr(blocked_common, "RANK_UPDATE_MAX_K", 0)
    monkeypatch.setattr(blocked_common, "TRANSPOSED_PRODUCT_MAX_M", 0)
    without = run()
    for got, want in zip(with_kernel, without, strict=True):
        assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)
    x, q, r, factor, y = with_kernel
    spd64 = np.asarray(spd[0], dtype=np.float64)
    assert np.linalg.norm(factor @ factor.T - spd64) <= 30 * n * U32 * np.linalg.norm(spd64)
    assert np.linalg.norm(factor @ y - np.asarray(b[0])) <= 30 * n * U32 * np.linalg.norm(
        factor
    ) * np.linalg.norm(y)
    a64 = np.asarray(a[0], dtype=np.float64)
    assert np.linalg.norm(a64 @ x - np.asarray(b[0])) <= 30 * n * U32 * np.linalg.norm(
        a64
    ) * np.linalg.norm(x)
    assert np.linalg.norm(q @ r - a64) <= 30 * n * U32 * np.linalg.norm(a64)
    assert np.linalg.norm(q.T @ q - np.eye(n)) <= 30 * n * U32
