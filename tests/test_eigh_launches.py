"""tools/count_eigh_launches.py: the two-stage eigh route's launches by phase, counted on the
CPU with every kernel a one-launch stand-in."""

import math

import mlx.core as mx
import tool_scripts

from mlx_linalg._gpu import (
    band_chase,
    blocked_qr,
    polar,
    small_factor,
    tridiagonal_dc,
    two_stage,
)


def _tool():
    return tool_scripts.load("tools/count_eigh_launches.py")


def test_each_phase_counts_its_own_kernels():
    """n = 200, band 32: stage 2 and Q₂ Z one kernel each (below the tiled chase and the
    blocks); the divide and conquer one leaf launch and one ``secular_roots`` a merge level
    (8 leaves, 3 levels); stage 1 one ``tsqr_householder`` a block column, which Q₁ applies
    with one slice update each."""
    n = 200
    assert n < band_chase.TILED_FROM and n < two_stage.Q2_BLOCKS_FROM
    phases = _tool().count(n)
    assert list(phases) == ["stage 1", "stage 2", "divide and conquer", "Q2 Z", "Q1"]
    assert phases["stage 2"] == {"band_to_tridiagonal": 1}
    assert phases["Q2 Z"] == {"apply_band_reflectors": 1}
    _, leaves = tridiagonal_dc.leaves(n)
    dc = phases["divide and conquer"]
    assert dc["leaf eigh (Jacobi kernel)"] == 1
    assert dc["secular_roots"] == math.log2(leaves) == 3
    columns = phases["stage 1"]["tsqr_householder"]
    assert columns >= 5 and phases["Q1"]["SliceUpdate"] == columns
    assert sum(dc.values()) > 100  # MLX's own primitives are counted, not only kernels


def test_command_line_prints_the_table():
    out = tool_scripts.run("tools/count_eigh_launches.py", "--sizes", "100", "--kinds", "--polar")
    lines = out.splitlines()
    assert lines[0] == (
        "| n | stage 1 | stage 2 | divide and conquer | Q2 Z | Q1 | eigh | polar (QDWH) |"
    )
    row = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert row[0] == "100" and int(row[-2]) == sum(int(x) for x in row[1:-2])
    assert int(row[-1]) > 0
    assert any("secular_roots" in line for line in lines[3:])
    assert any(line.strip().startswith("polar (QDWH): ") for line in lines[3:])


def test_polar_counts_one_panel_kernel_per_block_of_each_iteration():
    """``polar.qdwh`` at n = 200, float32's static schedule (QR-based iterations while
    c_k > 100, then Cholesky-based ones): one ``cholesky_panel`` per leaf (the small
    kernels' largest order, ``small_factor.MAX_N`` = 64 columns) of each Cholesky-based
    iteration and one ``tsqr_householder`` per QR panel of each QR-based one."""
    n = 200
    schedule = polar.qdwh_schedule(
        polar._eps(mx.float32) * polar.L_FLOOR_FACTOR, polar.unit_roundoff(mx.float32)
    )
    qr_based = sum(schedule)
    assert qr_based >= 1 and len(schedule) - qr_based >= 1
    kinds = _tool().count_polar(n)
    cholesky_leaves = -(-n // small_factor.MAX_N)
    qr_panels = -(-n // blocked_qr.BLOCK)
    assert kinds["cholesky_panel"] == (len(schedule) - qr_based) * cholesky_leaves
    assert kinds["tsqr_householder"] == qr_based * qr_panels
