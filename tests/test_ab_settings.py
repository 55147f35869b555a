"""tools/ab_settings.py: variants parsed and applied, and a small A/B on the CPU."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ab_settings", ROOT / "tools/ab_settings.py")
ab_settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ab_settings)


def test_variant_splits_constants_from_environment():
    constants, environment = ab_settings.parse_variant(
        "mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX_K=128 MLX_MAX_OPS_PER_BUFFER=100"
    )
    assert constants == {"mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX_K": 128}
    assert environment == {"MLX_MAX_OPS_PER_BUFFER": "100"}
    assert ab_settings.parse_variant("") == ({}, {})
    with pytest.raises(ValueError, match="NAME=value"):
        ab_settings.parse_variant("RANK_UPDATE_MAX_K")


def test_constants_are_set_and_typos_refused(monkeypatch):
    from mlx_linalg._gpu import blocked_common

    monkeypatch.setattr(blocked_common, "RANK_UPDATE_MAX_K", blocked_common.RANK_UPDATE_MAX_K)
    ab_settings.apply_constants({"mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX_K": 7})
    assert blocked_common.RANK_UPDATE_MAX_K == 7
    with pytest.raises(ValueError, match="has no RANK_UPDATE_MAX"):
        ab_settings.apply_constants({"mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX": 7})


def test_two_variants_alternate_in_their_own_processes():
    run = subprocess.run(
        [
            sys.executable,
            "tools/ab_settings.py",
            "--device",
            "cpu",
            "--cases",
            "solve:96",
            "--variant",
            "",
            "--variant",
            "mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX_K=0",
            "--rounds",
            "1",
            "--reps",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = run.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("round 1  [as is]  solve 96: min ")
    assert lines[1].startswith("round 1  [mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX_K=0]")
