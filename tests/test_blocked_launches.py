"""Launch counts of the blocked Cholesky, triangular-solve, QR and LU graphs (issue #7), and the
pieces that cut them: counted on the CPU by tools/count_launches.py (lazy graphs, building
blocks stubbed, nothing evaluated), so a change that adds launches shows here. Counts, not
timings."""

import mlx.core as mx
import numpy as np
import pytest
import tool_scripts
from kernel_emulation import emulate, needs_emulation
from matrices import as64, as_mlx

from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_cholesky, blocked_common, small_factor
from mlx_linalg._gpu.blocked_common import REFERENCE

count_launches = tool_scripts.load("tools/count_launches.py")

# (op, n): (kernel calls, largest launches, largest launches with TF32 split products).
# Measured when written (plain / TF32): cholesky 94 / 169, solve_triangular 60 / 137,
# cho_solve 115 / 267; before issue #7's cuts 291 / 445, 63 / 168 and 118 / 328. With the
# rounded split (``_precision.split_float32`` under ``mx.compile``, 2026-11-26): TF32
# cholesky 184, solve_triangular 114, cho_solve 214. (On a GPU the ``split_pair`` kernel
# forms each split operand in one launch instead: blocked_common.FUSED_SPLIT.) Cholesky
# with each leaf's columns copied once (``mx.contiguous``; before, the GPU copied the
# building blocks' sliced inputs, twice per leaf, which this method does not count):
# 110 / 200. One ``cholesky_panel`` launch per leaf (its factor and the rows below it, read
# in place; 2026-11-27): 64 / 154.
_QR_CALLS = {"qr_small": 76, "trsm_small": 16, "tsqr_householder": 32, "tsqr_product": 103}
BOUNDS = {
    ("cholesky", 1024): ({"cholesky_panel": 16}, 66, 156),
    ("cholesky_upper", 1024): ({"cholesky_panel": 16}, 66, 156),
    ("solve_triangular", 1024): ({"trsm_small": 16}, 62, 140),
    ("solve_triangular_1", 1024): ({"trsm_small": 16}, 62, 140),
    ("cho_solve", 1024): ({"trsm_small": 32}, 117, 270),
    # QR with the TSQR panel (its kernels stubbed too), Vᵀ C in 256-row chunks: 641 / 1236
    # when written (2026-11-26; 605 / 1104 with whole products); 612 / 1207 with the
    # leaves and tree levels read unpadded by ``qr_small`` (2026-11-29: 29 pads fewer);
    # 613 / 1208 with ``finite_matrices``' two reductions; 621 / 1216 with the compact-WY
    # T's triangular solves copying their diagonal blocks out at once (one ``Contiguous``
    # each, where the GPU copied every block for its kernel: copies not counted here).
    ("qr", 1024): (_QR_CALLS, 623, 1218),
    # The LU with recursive panels (leaves of 16, lu_join at the internal nodes): 560 / 980
    # and solve 596 / 1121 while each step composed the permutation and each panel was
    # gathered into its rows at the end; 432 / 852 and 468 / 993 with the last step one
    # lu_assemble launch (2026-11-29).
    ("lu_factor", 1024): (
        {"lu_panel": 64, "trsm_small": 63, "lu_join": 48, "gather_rows": 30, "lu_assemble": 1},
        434,
        854,
    ),
    ("solve", 1024): (
        {"lu_panel": 64, "trsm_small": 95, "lu_join": 48, "gather_rows": 31, "lu_assemble": 1},
        470,
        995,
    ),
}


@pytest.mark.parametrize(("op", "n"), list(BOUNDS))
def test_launch_counts_stay_bounded(op, n):
    calls, plain_bound, split_bound = BOUNDS[(op, n)]
    plain = count_launches.count(op, n, split=False)
    split = count_launches.count(op, n, split=True)
    assert plain["calls"] == calls
    assert split["calls"] == calls
    assert plain["launches"] <= plain_bound
    assert split["launches"] <= split_bound
    assert plain["nodes"] <= plain["launches"] <= split["launches"]


def test_cholesky_launches_grow_by_a_fixed_count_per_step():
    """Per outer step of 128 columns: the kernels (2 cholesky_panel), two products, two
    copies for the concatenation of L's rows below the block and two slice updates (the
    pieces); nothing that grows with the step's index."""
    small = count_launches.count("cholesky", 1024, split=False)
    large = count_launches.count("cholesky", 2048, split=False)
    per_step = (large["launches"] - small["launches"]) / 8
    assert per_step <= 8


@pytest.mark.parametrize("op", ["solve", "lu_factor", "cholesky"])
def test_gpu_column_forms_each_split_operand_in_one_launch(op):
    """The GPU column: split operands from (stand-ins of) the split_pair / split_gram
    kernels, one launch each, and narrow updates from the rank_update kernel, so fewer
    launches than the CPU-formed split; the stand-ins are gone afterwards; nothing in the
    LU grows with the step (the panel offsets of its last loop once were one gather each:
    64 launches at n = 4096)."""
    originals = (
        _precision._gpu_default,
        blocked_common.split_pair_kernel,
        blocked_common.rank_update_kernel,
    )
    split = count_launches.count(op, 1024, split=True)
    gpu = count_launches.count(op, 1024, split=True, fused=True)
    fused = sum(gpu["calls"].get(k, 0) for k in ("split_pair", "split_gram", "rank_update"))
    assert fused > 0 and gpu["launches"] < split["launches"]
    assert (
        _precision._gpu_default,
        blocked_common.split_pair_kernel,
        blocked_common.rank_update_kernel,
    ) == originals
    assert "Gather" not in gpu["kinds"]


def test_count_method_counts_concatenation_copies():
    """The counting method itself: a three-input concatenation is three launches (one
    node), an addition one, views none (``a`` is a host array: no node)."""
    a = mx.array(np.zeros((1, 4, 4), dtype=np.float32))
    nodes, launches = count_launches.graph_counts(
        [mx.concatenate([a[:, :1], a[:, 1:2] + 1, mx.swapaxes(a, 1, 2)[:, 2:]], axis=1)]
    )
    assert (nodes, launches) == (2, 4)


def _spd(rng, batch, n):
    g = rng.standard_normal((batch, n, n))
    return g @ np.swapaxes(g, -1, -2) / n + np.eye(n)


@pytest.mark.parametrize("dtype", [mx.float64, mx.float32])
@pytest.mark.parametrize("block", [16, 128])
def test_cholesky_failed_flag_from_the_last_block(rng, dtype, block):
    """``failed`` is the last diagonal block's flag: a failure in any block (first, middle,
    last, inside a recursive diagonal block; NaN, Inf, indefinite) reaches it by NaN, and
    the other matrices of the batch are untouched."""
    n = 150
    a = _spd(rng, 7, n)
    a[1, 0, 0] = -1.0  # first block
    a[2, 70, 70] = -1e3  # a middle block (inside the first 128-block's second leaf)
    a[3, n - 1, n - 1] = -1e3  # the last block
    a[4, 90, 3] = np.nan  # below the diagonal, in a panel
    a[5, n - 1, 20] = np.inf
    (factor,), failed = blocked_cholesky.cholesky(
        as_mlx(a, dtype), upper=False, blocks=REFERENCE, block=block
    )
    expected = [False, True, True, True, True, True, False]
    assert np.asarray(failed).tolist() == expected
    f = as64(factor)
    assert np.all(np.isnan(f[1:6]))
    for i in (0, 6):
        np.testing.assert_allclose(f[i], np.linalg.cholesky(a[i]), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_factor_is_triangular_and_contiguous_pieces(rng, upper):
    """The pieces written into one zero array give the triangular factor (zeros on the
    other side exactly), in the requested orientation."""
    n = 200
    a = _spd(rng, 2, n)
    (factor,), _ = blocked_cholesky.cholesky(
        as_mlx(a, mx.float64), upper=upper, blocks=REFERENCE, block=128
    )
    f = as64(factor)
    lower = np.linalg.cholesky(a)
    expected = np.swapaxes(lower, -1, -2) if upper else lower
    np.testing.assert_allclose(f, expected, rtol=1e-10, atol=1e-12)
    zeros = np.tril(f, -1) if upper else np.triu(f, 1)
    assert not np.any(zeros)


def test_split_operands_formed_once_equal_subtract_product(rng):
    """With split products (TF32 pretended), ``subtract`` with operands split once gives
    ``subtract_product``'s result bit for bit, transposed operands included."""
    c = as_mlx(rng.standard_normal((2, 70, 50)), mx.float32)
    xt = as_mlx(rng.standard_normal((2, 30, 70)), mx.float32)
    b = as_mlx(rng.standard_normal((2, 30, 50)), mx.float32)
    saved = _precision.reduced_precision
    _precision.reduced_precision = lambda *_, **__: True
    try:
        parts = blocked_common.split_parts(xt)
        assert parts is not None
        a = blocked_common.left(
            mx.swapaxes(xt, -1, -2), blocked_common.transposed_parts(parts)
        )
        ours = blocked_common.subtract(c, a, blocked_common.right(b))
        theirs = blocked_common.subtract_product(c, mx.swapaxes(xt, -1, -2), b)
        mx.eval(ours, theirs)
    finally:
        _precision.reduced_precision = saved
    assert np.array_equal(np.asarray(ours).view(np.uint32), np.asarray(theirs).view(np.uint32))
    plain = blocked_common.subtract_product(c, mx.swapaxes(xt, -1, -2), b)
    assert not np.array_equal(np.asarray(ours), np.asarray(plain))  # the split path ran


def _emulated_trsm(t, x, *, lower, trans, unit, rows=False):
    """The ``trsm_small`` kernel body run on the CPU (tools/metal_check/emulate.py), launched
    as ``small_factor.trsm`` launches it: ceil(K / TRSM_TASK) threadgroups per matrix."""
    batch = t.shape[0]
    k = x.shape[-2] if rows else x.shape[-1]
    tasks = -(-k // small_factor.TRSM_TASK)
    out, _ = emulate.run(
        "trsm_small",
        [np.asarray(t), np.asarray(x)],
        template={"NMAX": 64, "LOWER": lower, "TRANS": trans, "UNIT": unit, "ROWS": rows},
        grid=(batch * tasks * 64, 1, 1),
        threadgroup=(64, 1, 1),
        output_shapes=[tuple(x.shape), (batch,)],
    )
    return mx.array(out)


@needs_emulation
@pytest.mark.parametrize("k", [131, 150])
def test_trsm_tasks_and_rows_keep_the_kernels_bits(rng, k):
    """The ``trsm_small`` kernel solves each right-hand side on its own: spread over
    threadgroups of TRSM_TASK columns (131 and 150: three, the last one partial) or solved
    one column per launch, and read as columns or (``ROWS``) as the rows of the transpose,
    the same bits; and LAPACK's solution."""
    b = 64
    t = (np.tril(rng.standard_normal((2, b, b))) + 4 * np.eye(b)).astype(np.float32)
    rhs = rng.standard_normal((2, b, k)).astype(np.float32)
    kw = {"lower": True, "trans": False, "unit": False}
    whole = np.asarray(_emulated_trsm(mx.array(t), mx.array(rhs), **kw))
    rows = np.asarray(
        _emulated_trsm(mx.array(t), mx.array(np.swapaxes(rhs, -1, -2).copy()), rows=True, **kw)
    )
    assert np.array_equal(np.swapaxes(rows, -1, -2).view(np.uint32), whole.view(np.uint32))
    for j in (0, 63, 64, k - 1):
        alone = np.asarray(_emulated_trsm(mx.array(t), mx.array(rhs[:, :, j : j + 1]), **kw))
        assert np.array_equal(alone[:, :, 0].view(np.uint32), whole[:, :, j].view(np.uint32))
    exact = np.linalg.solve(t.astype(np.float64), rhs)
    assert np.abs(whole - exact).max() <= 1e-5 * np.abs(exact).max()


def _emulated_cholesky_panel(a, width):
    """The ``cholesky_panel`` kernel body run on the CPU, launched as
    ``small_factor.cholesky_panel`` launches it."""
    batch, m = a.shape[:2]
    groups = 1 + -(-(m - width) // 32)
    factor, failed = emulate.run(
        "cholesky_panel",
        [np.asarray(a), np.zeros((width, 0), np.int32)],
        template={"NMAX": 64},
        grid=(batch * groups * 64, 1, 1),
        threadgroup=(64, 1, 1),
        output_shapes=[(batch, m, width), (batch,)],
    )
    return mx.array(factor), mx.array(failed.astype(bool))


@needs_emulation
def test_cholesky_panel_is_the_small_kernels_bit_for_bit(rng):
    """The ``cholesky_panel`` kernel (one launch: the top block's factor and the rows below
    it, read in place from the first ``width`` columns of a wider matrix) equals
    ``cholesky_small`` followed by ``trsm_small`` with ``rows`` bit for bit, for a leaf of
    64 and of 20 columns, rows below not a multiple of 32; a top block that is not positive
    definite makes its whole panel NaN."""
    m, k = 64 + 75, 150
    a = _spd(rng, 3, k)[:, :m].astype(np.float32)
    a[1, 5, 5] = -1.0
    for width in (64, 20):
        factor, failed = _emulated_cholesky_panel(mx.array(a), width)
        l11, want_failed = emulate.run(
            "cholesky_small",
            [a[:, :width, :width]],
            template={"NMAX": 64, "UPPER": False},
            grid=(3 * 64, 1, 1),
            threadgroup=(64, 1, 1),
            output_shapes=[(3, width, width), (3,)],
        )
        kw = {"lower": True, "trans": False, "unit": False, "rows": True}
        l21 = _emulated_trsm(mx.array(l11), mx.array(a[:, width:, :width]), **kw)
        want = np.concatenate([l11, np.asarray(l21)], axis=1)
        assert np.asarray(failed).tolist() == want_failed.astype(bool).tolist() == [0, 1, 0]
        got = np.asarray(factor)
        healthy = [0, 2]
        assert np.array_equal(got[healthy].view(np.uint32), want[healthy].view(np.uint32))
        assert np.all(np.isnan(got[1])) and np.all(np.isnan(want[1]))


@needs_emulation
def test_blocked_cholesky_on_the_emulated_kernels(rng):
    """The kernels' contract that the graph relies on (no ``tril``, ``failed`` from the last
    leaf): with the emulated ``cholesky_panel`` body as the building block,
    the factor has exact zeros above the diagonal, a failure in the first leaf reaches the
    last one, and the healthy matrix matches LAPACK."""
    n = 150
    a = _spd(rng, 3, n).astype(np.float32)
    a[1, 3, 3] = -1.0
    a[2, 100, 7] = np.nan
    blocks = REFERENCE._replace(cholesky_panel=_emulated_cholesky_panel)
    (factor,), failed = blocked_cholesky.cholesky(
        mx.array(a), upper=False, blocks=blocks, block=128
    )
    assert np.asarray(failed).tolist() == [False, True, True]
    f = np.asarray(factor)
    assert np.all(np.isnan(f[1:]))
    assert not np.any(np.triu(f[0], 1))
    np.testing.assert_allclose(f[0], np.linalg.cholesky(a[0].astype(np.float64)), atol=1e-4)
