"""Stage 2's back-transformation by blocks (``band_q_blocks.apply_band_q_blocks``) against
the reflectors applied one at a time in NumPy, in the order the bulge-chasing kernel
documents (Q₂ = Π_s Π_k H(s, k)), on random reflectors in the kernel's layout: the same
Q₂ Z to 20 u ‖Z‖ per entry-scale (float32) and 1e-12 (float64), for groups narrower than,
as wide as and wider than the band, batches, and orders below, at and past a group."""

import mlx.core as mx
import numpy as np
import pytest

from mlx_linalg._gpu import band_chase
from mlx_linalg._gpu.band_q_blocks import apply_band_q_blocks
from mlx_linalg._gpu.blocked_common import REFERENCE


def _reflectors(rng, batch, n, band):
    """Random reflectors (batch, S, K, band + 1) where the kernel has them: sweep s's tick
    k acts on rows s + 1 + k band .. min(s + (k + 1) band, n - 1), v[0] = 1, tau = 2/‖v‖²;
    zeros (H = I) in the other slots."""
    sweeps, ticks = band_chase.reflector_slots(n, band)
    kept = np.zeros((batch, sweeps, ticks, band + 1))
    for s in range(n - 2):
        for k in range(1 + (n - 3 - s) // band):
            length = min(band, n - (s + 1 + k * band))
            v = rng.standard_normal((batch, length))
            v[:, 0] = 1
            kept[:, s, k, :length] = v
            kept[:, s, k, band] = 2 / np.sum(v * v, axis=-1)
    return kept


def _one_at_a_time(kept, z):
    """Q₂ Z: the reflectors applied in reverse order, sweep by sweep, in float64."""
    out = z.astype(np.float64).copy()
    sweeps, ticks, width = kept.shape[-3:]
    band = width - 1
    for b in range(out.shape[0]):
        for s in reversed(range(sweeps)):
            for k in reversed(range(ticks)):
                tau = kept[b, s, k, band]
                if tau == 0:
                    continue
                start = s + 1 + k * band
                rows = slice(start, start + band)
                v = kept[b, s, k, : out.shape[1] - start if start + band > out.shape[1] else band]
                out[b, rows] -= tau * np.outer(v, v @ out[b, rows])
    return out


@pytest.mark.parametrize(
    ("batch", "n", "m", "band", "group"),
    [
        (1, 40, 7, 8, 8),
        (2, 53, 5, 8, 3),
        (1, 70, 9, 4, 16),
        (1, 37, 37, 32, 32),
        (3, 20, 4, 6, 5),
        (1, 3, 2, 2, 4),
        (1, 100, 3, 16, 32),
    ],
)
def test_blocks_give_the_reflectors_product(rng, batch, n, m, band, group):
    kept = _reflectors(rng, batch, n, band)
    z = rng.standard_normal((batch, n, m))
    expected = _one_at_a_time(kept, z)
    got64 = apply_band_q_blocks(
        mx.array(kept, dtype=mx.float64),
        mx.array(z, dtype=mx.float64),
        group=group,
        blocks=REFERENCE,
    )
    np.testing.assert_allclose(np.array(got64), expected, atol=1e-12 * np.abs(expected).max())
    got32 = apply_band_q_blocks(
        mx.array(kept, dtype=mx.float32),
        mx.array(z, dtype=mx.float32),
        group=group,
        blocks=REFERENCE,
    )
    error = np.abs(np.array(got32).astype(np.float64) - expected).max()
    assert error <= 20 * n * np.finfo(np.float32).eps * np.abs(expected).max()


def test_orders_below_three_and_empty_z_are_returned_as_they_are():
    kept = mx.zeros((1, 1, 1, 3))
    z = mx.ones((1, 2, 5))
    assert mx.array_equal(apply_band_q_blocks(kept, z, blocks=REFERENCE), z)
    empty = mx.zeros((1, 7, 0))
    assert apply_band_q_blocks(mx.zeros((1, 5, 3, 3)), empty, blocks=REFERENCE).shape == (1, 7, 0)


def test_bad_batch_shape_or_group_is_refused():
    with pytest.raises(ValueError, match="apply_band_q_blocks"):
        apply_band_q_blocks(mx.zeros((2, 5, 3, 3)), mx.zeros((1, 7, 2)), blocks=REFERENCE)
    with pytest.raises(ValueError, match="group >= 1"):
        apply_band_q_blocks(mx.zeros((5, 3, 3)), mx.zeros((7, 2)), group=0, blocks=REFERENCE)
