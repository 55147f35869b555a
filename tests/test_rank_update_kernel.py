"""The ``rank_update`` kernel (metal/rank_update.metal) under CPU emulation, and where the
blocked graphs use it (``blocked_common.rank_update_applies``).

The kernel forms D = C[i:, j:] - A op(B) in float32 FMAs; its error is checked against the
float64 product with the bound of a float32 GEMM, |D - D₆₄| <= (K + 2) u (|C| + |A| |op(B)|)
entry by entry (Higham, Accuracy and Stability of Numerical Algorithms, §3.5), where a TF32
product would be some 2¹³ times further off.
"""

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg
from kernel_emulation import emulate, needs_emulation

from mlx_linalg import _precision
from mlx_linalg._gpu import band_reduction, blocked_common, blocked_qr, blocked_triangular

U32 = np.finfo(np.float32).eps / 2


def _emulated(c, a, b, *, trans_b, at, trans_a=False, product=False, origin=(0, 0), shape=None):
    """The emulated kernel; op(A) is ``a`` (or its transpose, ``trans_a``), or, with
    ``shape`` (B, M, K), its block of that shape from ``origin`` (read in place)."""
    if shape is None:
        shape = (a.shape[0], a.shape[2], a.shape[1]) if trans_a else a.shape
    launch, dims = blocked_common.rank_update_arguments(
        shape,
        b.shape,
        transposed=trans_a,
        trans_b=trans_b,
        product=product,
        at=at,
        origin=origin,
    )
    (d,) = emulate.run("rank_update", [c, a, b, np.zeros((*dims, 0), np.int32)], **launch)
    return d


def assert_gemm_accurate(d, c, a, op_b):
    """``d`` is ``c - a @ op_b`` to a float32 GEMM's bound, entry by entry."""
    c64, a64, b64 = (x.astype(np.float64) for x in (c, a, op_b))
    exact = c64 - a64 @ b64
    bound = (a.shape[-1] + 2) * U32 * (np.abs(c64) + np.abs(a64) @ np.abs(b64))
    assert np.all(np.abs(d - exact) <= bound), np.max(np.abs(d - exact) / bound)


@needs_emulation
@pytest.mark.parametrize(
    "batch, m, n, k, trans_b, at",
    [
        (1, 1, 1, 1, False, (0, 0)),
        (1, 5, 7, 3, True, (0, 0)),
        (2, 70, 66, 33, False, (3, 10)),  # K past one 16-wide step, edge tiles, a batch
        (2, 64, 130, 16, True, (0, 5)),
        (1, 130, 20, 32, True, (2, 0)),
    ],
)
def test_emulated_rank_update_is_float32_accurate(batch, m, n, k, trans_b, at):
    rng = np.random.default_rng(m + n + k)
    i, j = at
    c = rng.standard_normal((batch, m + i + 1, n + j + 2)).astype(np.float32)
    a = rng.standard_normal((batch, m, k)).astype(np.float32)
    b = rng.standard_normal((batch, n, k) if trans_b else (batch, k, n)).astype(np.float32)
    d = _emulated(c, a, b, trans_b=trans_b, at=at)
    op_b = np.swapaxes(b, -1, -2) if trans_b else b
    assert_gemm_accurate(d, c[:, i : i + m, j : j + n], a, op_b)


@needs_emulation
@pytest.mark.parametrize("trans_a", [False, True])
def test_emulated_rank_update_reads_a_block_of_a_in_place(trans_a):
    """op(A) as the block of a larger array from (row, column) (a triangular solve's
    coupling block): D equals the update by that block copied out."""
    rng = np.random.default_rng(7)
    batch, m, n, k, (row, column) = 2, 70, 40, 20, (5, 3)
    c = rng.standard_normal((batch, m, n)).astype(np.float32)
    big = rng.standard_normal((batch, 90, 80)).astype(np.float32)
    b = rng.standard_normal((batch, k, n)).astype(np.float32)
    if trans_a:
        op_a = np.swapaxes(big[:, row : row + k, column : column + m], -1, -2)
    else:
        op_a = big[:, row : row + m, column : column + k]
    d = _emulated(
        c,
        big,
        b,
        trans_b=False,
        at=(0, 0),
        trans_a=trans_a,
        origin=(row, column),
        shape=(batch, m, k),
    )
    assert_gemm_accurate(d, c, op_a, b)


@needs_emulation
@pytest.mark.parametrize("batch, k, m, n", [(1, 1, 1, 1), (2, 70, 32, 66), (1, 256, 64, 130)])
def test_emulated_transposed_product_is_float32_accurate(batch, k, m, n):
    """The product form: D = Aᵀ B for A (B, K, M), C not read (a dummy here)."""
    rng = np.random.default_rng(k + m + n)
    a = rng.standard_normal((batch, k, m)).astype(np.float32)
    b = rng.standard_normal((batch, k, n)).astype(np.float32)
    dummy = np.zeros((1, 1, 1), dtype=np.float32)
    d = _emulated(dummy, a, b, trans_b=False, at=(0, 0), trans_a=True, product=True)
    assert_gemm_accurate(d, np.zeros((batch, m, n), np.float32), -np.swapaxes(a, -1, -2), b)


@needs_emulation
def test_emulated_rank_update_keeps_nan_and_inf():
    c = np.ones((1, 3, 4), dtype=np.float32)
    a = np.ones((1, 3, 2), dtype=np.float32)
    b = np.ones((1, 2, 4), dtype=np.float32)
    a[0, 1, 0], b[0, 1, 2] = np.nan, np.inf
    d = _emulated(c, a, b, trans_b=False, at=(0, 0))
    assert np.isnan(d[0, 1]).all() and np.isinf(d[0, [0, 2], 2]).all()
    assert np.array_equal(d[0, [0, 2]][:, [0, 1, 3]], np.full((2, 3), -1.0, dtype=np.float32))


@pytest.fixture
def gpu_that_splits(monkeypatch):
    """The default device counts as a GPU whose float32 products are split, and the kernel's
    two forms are stand-ins that record their calls and return their results (MLX ops)."""
    calls = []

    def stand_in(c, a, b, *, trans_b=False, at=(0, 0), window=None):
        calls.append((c.shape, a.shape, b.shape, trans_b, at))
        op_b = mx.swapaxes(b, -1, -2) if trans_b else b
        i, j = at
        block = c[:, i : i + a.shape[1], j : j + op_b.shape[2]]
        return block - a @ op_b

    monkeypatch.setattr(_precision, "_gpu_default", lambda: True)
    monkeypatch.setattr(_precision, "reduced_precision", lambda *_, **__: True)
    monkeypatch.setattr(blocked_common, "FUSED_SPLIT", False)

    def product_stand_in(a, b):
        calls.append(("product", a.shape, b.shape))
        return mx.swapaxes(a, -1, -2) @ b

    monkeypatch.setattr(blocked_common, "rank_update_kernel", stand_in)
    monkeypatch.setattr(blocked_common, "transposed_product_kernel", product_stand_in)
    return calls


def test_narrow_updates_take_the_kernel_and_wide_ones_do_not(gpu_that_splits):
    rng = np.random.default_rng(1)
    c = mx.array(rng.standard_normal((2, 40, 50)).astype(np.float32))
    k = blocked_common.RANK_UPDATE_MAX_K
    narrow = mx.array(rng.standard_normal((2, 40, k)).astype(np.float32))
    wide = mx.array(rng.standard_normal((2, 40, k + 1)).astype(np.float32))
    blocked_common.subtract_product(c, narrow, mx.array(np.ones((2, k, 45), np.float32)), at=(0, 5))
    assert gpu_that_splits == [((2, 40, 50), (2, 40, k), (2, k, 45), False, (0, 5))]
    d = blocked_common.subtract_product(
        c, wide, mx.array(np.ones((2, k + 1, 45), np.float32)), at=(0, 5)
    )
    assert len(gpu_that_splits) == 1 and d.shape == (2, 40, 45)
    with _precision.reduced_products():  # plain device products asked for: no kernel
        blocked_common.subtract_product(c, narrow, mx.array(np.ones((2, k, 50), np.float32)))
    assert len(gpu_that_splits) == 1


def test_gram_update_reads_x_itself(gpu_that_splits):
    """C - X Xᵀ through ``gram``: the kernel gets X (trans_b), not the transposed view, also
    for the right operand's first columns."""
    rng = np.random.default_rng(2)
    x = mx.array(rng.standard_normal((1, 30, 16)).astype(np.float32))
    c = mx.array(rng.standard_normal((1, 30, 10)).astype(np.float32))
    left, right = blocked_common.gram(x)
    d = blocked_common.subtract(c, left, blocked_common.first_columns(right, 10))
    assert gpu_that_splits == [((1, 30, 10), (1, 30, 16), (1, 10, 16), True, (0, 0))]
    want = np.asarray(c) - np.asarray(x) @ np.swapaxes(np.asarray(x), -1, -2)[..., :10]
    np.testing.assert_allclose(np.asarray(d), want, rtol=1e-5, atol=1e-5)


def test_blocked_qr_updates_take_the_kernel_in_place(gpu_that_splits, monkeypatch):
    """The blocked QR's products with a 32-column panel's reflectors are kernel calls: VᵀV
    and Vᵀ C (the product form) and the update of the trailing matrix, read in place from
    column 32 on; the factorization is still a QR."""
    monkeypatch.setattr(blocked_qr, "PANEL", "kernel")
    rng = np.random.default_rng(3)
    x = mx.array(rng.standard_normal((1, 100, 96)).astype(np.float32))
    (q, r), _ = blocked_qr.qr(x, mode="reduced", blocks=blocked_common.REFERENCE)
    # Per panel: VᵀV for its T, then (but for the last) Vᵀ C and the update of C (whole,
    # from column 32); then the blocked triangular solve that forms the merged T for Q.
    assert gpu_that_splits[:7] == [
        ("product", (1, 100, 32), (1, 100, 32)),
        ("product", (1, 100, 32), (1, 100, 96)),
        ((1, 100, 96), (1, 100, 32), (1, 32, 64), False, (0, 32)),
        ("product", (1, 68, 32), (1, 68, 32)),
        ("product", (1, 68, 32), (1, 68, 64)),
        ((1, 68, 64), (1, 68, 32), (1, 32, 32), False, (0, 32)),
        ("product", (1, 36, 32), (1, 36, 32)),
    ]
    q, r = np.asarray(q[0], dtype=np.float64), np.asarray(r[0], dtype=np.float64)
    assert np.linalg.norm(q @ r - np.asarray(x[0])) / np.linalg.norm(np.asarray(x[0])) < 1e-5
    assert np.linalg.norm(q.T @ q - np.eye(96)) < 1e-4


def test_band_reduction_updates_take_the_kernel(gpu_that_splits, monkeypatch):
    """Stage 1's two-sided update per block column: Vᵀ Z in the product form, W = ½ V M − Z
    and the rank-2w update of S₂₂, read in place from the trailing matrix at (band, band);
    the band matrix is still similar to A."""
    monkeypatch.setattr(blocked_qr, "PANEL", "kernel")
    rng = np.random.default_rng(4)
    n, band = 80, 16
    g = rng.standard_normal((1, n, n))
    a = ((g + np.swapaxes(g, -1, -2)) / 2).astype(np.float32)
    banded, _ = band_reduction.sy2sb(mx.array(a), band=band, blocks=blocked_common.REFERENCE)
    r = n - band  # the first block column's trailing rows
    assert ("product", (1, r, band), (1, r, band)) in gpu_that_splits  # Vᵀ Z
    assert ((1, r, band), (1, r, band), (1, band, band), False, (0, 0)) in gpu_that_splits
    assert ((1, n, n), (1, r, 2 * band), (1, 2 * band, r), False, (band, band)) in gpu_that_splits
    exact = scipy.linalg.eigvalsh(a[0].astype(np.float64))
    got = np.linalg.eigvalsh(np.asarray(banded[0], dtype=np.float64))
    assert np.max(np.abs(got - exact)) <= 30 * n * U32 * np.linalg.norm(a[0], 2)


@pytest.mark.parametrize("block, couplings", [(16, 12), (128, 2)])
@pytest.mark.parametrize(
    "lower, trans", [(True, False), (False, False), (True, True), (False, True)]
)
def test_triangular_solve_reads_its_coupling_blocks_in_place(
    gpu_that_splits, monkeypatch, lower, trans, block, couplings
):
    """The blocked triangular solve hands the kernel each coupling block as a window of A
    (forward, backward, transposed; with blocks of 128, those of the recursion inside each
    diagonal block, whose 128-column couplings are split products): a stand-in that reads
    op(A) from the window alone, never from the view it is given, still solves the
    system, with each full diagonal block taken from the ones copied out at once."""

    def from_window(c, a, b, *, trans_b=False, at=(0, 0), window=None):
        m, k = a.shape[1:]
        row, column = window.row, window.column
        if window.transposed:
            op_a = mx.swapaxes(window.array[:, row : row + k, column : column + m], -1, -2)
        else:
            op_a = window.array[:, row : row + m, column : column + k]
        gpu_that_splits.append(window.transposed)
        i, j = at
        return c[:, i : i + m, j : j + b.shape[-1]] - op_a @ b

    monkeypatch.setattr(blocked_common, "rank_update_kernel", from_window)
    rng = np.random.default_rng(4)
    n = 200  # blocks of 16: 12 full and one of 8; of 128: one, and one of 72 > 64
    a = rng.standard_normal((1, n, n)).astype(np.float32) + n * np.eye(n, dtype=np.float32)
    b = rng.standard_normal((1, n, 3)).astype(np.float32)
    x = blocked_triangular.trsm(
        blocked_common.REFERENCE,
        mx.array(a),
        mx.array(b),
        lower=lower,
        trans=trans,
        unit=False,
        block=block,
    )
    want = scipy.linalg.solve_triangular(a[0], b[0], lower=lower, trans=int(trans))
    assert gpu_that_splits == [trans] * couplings
    np.testing.assert_allclose(np.asarray(x[0]), want, rtol=1e-4, atol=1e-5)
