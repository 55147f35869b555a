"""tools/svd_route_breakdown.py: its QDWH steps and error pieces run (on the CPU, with the
LAPACK building blocks in place of the GPU kernels; the two-stage eigh and the dispatched
SVD route need a GPU and are left out)."""

import mlx.core as mx
import numpy as np
import tool_scripts

from mlx_linalg._gpu import tall_skinny

breakdown = tool_scripts.load("tools/svd_route_breakdown.py")


def test_iteration_times_name_one_qr_and_one_cholesky_iteration(monkeypatch, capsys):
    monkeypatch.setattr(breakdown, "KERNELS", tall_skinny.LAPACK)
    a = np.random.default_rng(0).standard_normal((40, 40)).astype(np.float32)
    with mx.stream(mx.cpu):
        breakdown.iteration_times(mx.array(a / (1.5 * np.linalg.norm(a, 2)))[None], 40)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "QR-based" in lines[0] and "QR-based" in lines[1] and "Cholesky-based" in lines[2]


def test_orthogonality_is_zero_for_an_orthonormal_basis_and_not_otherwise():
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((30, 10)))
    assert breakdown._orthogonality(q) < 1e-13
    assert breakdown._orthogonality(2 * q) > 1
