"""Stage 2's back-transformation by blocks of reflectors: Q₂ Z as matrix products.

The bulge-chasing kernel (``band_chase.band_to_tridiagonal_q``) keeps one reflector per
(sweep s, tick k), acting on rows s + 1 + k b .. s + (k + 1) b, and T = Q₂ᵀ A Q₂ with
Q₂ = Π_s Π_k H(s, k) (sweeps in order, each sweep's ticks in order). The
``apply_band_reflectors`` kernel applies them to Z a sweep at a time, one simdgroup per
column held in threadgroup memory (n - 2 dependent steps per column; n <= 4096). Here
they are grouped as MAGMA groups them (Haidar, Solcà, Gates, Tomov, Schulthess & Dongarra,
ISC 2013): the reflectors of g consecutive sweeps at one tick form a block, G(j, k) =
Π_{s in group j} H(s, k), on a window of b + g − 1 rows, I − V T Vᵀ in compact WY form (V
a parallelogram: each sweep's reflector one row below the previous one's).

Order. H(s, k) must come before H(s + 1, k) and H(s + 1, k − 1), whose rows it shares;
all other pairs of the same sweep group commute. So Q₂ = Π_j Π_{k descending} G(j, k),
and Q₂ Z applies, from the last group to the first, each group's blocks with k ascending.
G(j, k) shares rows with G(j, k − 1) and with G(j + 1, k − 2 .. k) (for g = b), which come
before it; blocks (j, k) with the same k + (J − 1 − j) (a phase) share no row: their
windows start b + g rows apart, so a phase's windows are one slab of Z's rows, b + g rows
per block (V padded with a zero row). So J + K − 1 phases, each one slab read, (I − V T
Vᵀ) applied to its blocks as Zw − (V T)(Vᵀ Zw) (V T formed for all blocks at once) by
float32-accurate products (``blocked_qr``'s), and written back. About 2n²m(1 + g/b) flops
for Z (n, m): twice the one-at-a-time kernel's, in matrix products, and about (n/b + n/g)
passes over Z.
"""

import math

import mlx.core as mx
import numpy as np

from mlx_linalg._gpu import blocked_qr
from mlx_linalg._gpu.blocked_common import KERNELS, Blocks
from mlx_linalg._tracing import start_every

# Sweeps per block: the blocks' width g (their windows have band + g - 1 rows). On the
# H100 (band 32, Z n x n, tools/bench_band_reduction.py): 64 took 26.9 / 113 / 636 ms at
# n = 2048 / 4096 / 8192, 32 took 39.1 / 126 / 704, the kernel then (one reflector at a
# time) 36.6 / 192 / 1573 (and 6.7 ms at 1024, where blocks took 18-22).
GROUP = 64


def _parallelogram(v: mx.array, band: int, group: int) -> mx.array:
    """V (..., band + group - 1, group) from reflectors v (..., group, band): column i
    holds reflector i from row i down."""
    rows = band + group - 1
    offset = np.arange(rows)[:, None] - np.arange(group)[None, :]  # row - column
    inside = (offset >= 0) & (offset < band)
    source = np.arange(group)[None, :] * band + np.clip(offset, 0, band - 1)
    flat = v.reshape(*v.shape[:-2], group * band)
    gathered = mx.take(flat, mx.array(source.reshape(-1)), axis=-1)
    return mx.where(mx.array(inside), gathered.reshape(*v.shape[:-2], rows, group), 0)


def _blocks_of(reflectors: mx.array, group: int, blocks: Blocks):
    """(V, T): each block's V (B, J, K, band + group - 1, group) and T (B, J, K, group,
    group) for reflectors (B, S, K, band + 1), the sweeps padded to J·group with
    identities (v = 0, tau = 0)."""
    batch, sweeps, ticks, width = reflectors.shape
    band = width - 1
    count = math.ceil(sweeps / group)
    padded = mx.pad(reflectors, [(0, 0), (0, count * group - sweeps), (0, 0), (0, 0)])
    by_block = mx.swapaxes(padded.reshape(batch, count, group, ticks, width), 2, 3)
    v = _parallelogram(by_block[..., :band], band, group)
    tau = by_block[..., band]
    rows = band + group - 1
    t = blocked_qr._triangular_factor(blocks, v.reshape(-1, rows, group), tau.reshape(-1, group))
    return v, t.reshape(batch, count, ticks, group, group)


def apply_band_q_blocks(
    reflectors: mx.array, z: mx.array, *, group: int = GROUP, blocks: Blocks = KERNELS
) -> mx.array:
    """Q₂ Z for the Q₂ of ``band_chase.band_to_tridiagonal_q``, by blocks of reflectors.

    Args:
        reflectors: (..., S, K, band + 1), the kernel's layout (``band_chase``).
        z: (..., n, m) float32 or float64 with the reflectors' batch shape; n = S + 2
            (S = 1 also for n < 3).
        group: sweeps per block, >= 1.
        blocks: the building blocks of the triangular factors' solves
            (``blocked_common.KERNELS`` on a GPU, ``REFERENCE`` anywhere).

    Returns:
        (..., n, m): Q₂ Z, as ``band_chase.apply_band_q`` gives it.
    """
    n, m = z.shape[-2:]
    batch_shape = reflectors.shape[:-3]
    sweeps, ticks, width = reflectors.shape[-3:]
    band = width - 1
    if z.shape[:-2] != batch_shape or group < 1:
        raise ValueError(
            f"[apply_band_q_blocks] expected z (..., n, m) with the reflectors' batch shape "
            f"{batch_shape} and group >= 1, got {z.shape} and {group}"
        )
    if z.size == 0 or n < 3:
        return z
    kept = reflectors.reshape(-1, sweeps, ticks, width).astype(z.dtype)
    batch = kept.shape[0]
    v, t = _blocks_of(kept, group, blocks)
    count, rows = v.shape[1], v.shape[-2]
    stride = rows + 1  # a window's rows and the one row between two windows
    each_v = v.reshape(-1, rows, group)
    # V T for every block at once: each phase is then two products, W = Vᵀ Zw and
    # Zw − (V T) W, instead of three.
    vt = blocked_qr._product(each_v, t.reshape(-1, group, group))
    pad = [(0, 0), (0, 1), (0, 0)]
    flat_v = mx.pad(each_v, pad).reshape(batch, count * ticks, stride, group)
    flat_vt = mx.pad(vt, pad).reshape(batch, count * ticks, stride, group)
    work = mx.pad(z.reshape(batch, n, m), [(0, 0), (0, stride), (0, 0)])
    for phase in range(count + ticks - 1):
        # The phase's blocks (j, k = phase - (count - 1 - j)): j from first to last, their
        # windows `stride` rows apart from row `start`, so one slab of Z's rows.
        first = max(0, count - 1 - phase)
        start = first * stride + 1 + (phase - count + 1) * band
        last = min(count - 1, count - 1 - phase + ticks - 1, (n - 1 - start) // stride + first)
        if last < first:
            continue
        picked = last - first + 1
        # Block (j, k) is flat_v's j·ticks + k; along the phase, j and k grow by one each.
        step = ticks + 1
        block = first * ticks + phase - (count - 1 - first)
        chosen = slice(block, block + (picked - 1) * step + 1, step)
        vb = flat_v[:, chosen].reshape(batch * picked, stride, group)
        vtb = flat_vt[:, chosen].reshape(batch * picked, stride, group)
        slab_rows = slice(start, start + picked * stride)
        slab = work[:, slab_rows].reshape(batch * picked, stride, m)
        w = blocked_qr._transposed_product(vb, slab)
        updated = blocked_qr._subtract_product(slab, vtb, w)
        work[:, slab_rows] = updated.reshape(batch, picked * stride, m)
        start_every(phase + 1, work)
    return work[:, :n].reshape(z.shape)
