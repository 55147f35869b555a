"""tools/ab_settings.py: variants parsed and applied, and a small A/B on the CPU."""

import pytest
import tool_scripts

ab_settings = tool_scripts.load("tools/ab_settings.py")


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
    lines = tool_scripts.run(
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
    ).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("round 1  [as is]  solve 96: min ")
    assert lines[1].startswith("round 1  [mlx_linalg._gpu.blocked_common.RANK_UPDATE_MAX_K=0]")
