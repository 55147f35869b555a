"""Peak memory of the blocked QR graph (issue #7: "a few n×n temporaries at most"), on the CPU.

The blocked graph that the GPU runs, built with the MLX-op building blocks (``REFERENCE``)
on the CPU stream and evaluated once; the memory is ``mx.get_peak_memory()`` above the memory
active before (the input), in units of the largest output (Q or R: m·max(n, columns)
float32 entries). Two measures (docs/kernels-blocked.md, "Memory"):

* the live set: evaluated under a memory limit just above the input, MLX's evaluation waits
  for the device whenever the active memory exceeds the limit, so it runs (nearly) one
  operation at a time and the peak is what the graph itself keeps alive at once. Here the
  graph before issue #7's fix kept every step's trailing matrix to the end (8.4 at n = 512,
  growing as n/(3·block)), the fixed one about three outputs' worth;
* as evaluated normally: MLX allocates each operation's output when it dispatches it, up to
  some tens of operations ahead of the execution, whose buffers it frees only once they
  have run; that adds a few outputs' worth (the old graph: 18.5 at n = 512).
"""

import mlx.core as mx
import pytest

from mlx_linalg._gpu import blocked_qr
from mlx_linalg._gpu.blocked_common import REFERENCE

# Bounds in units of the largest output. Measured on the CPU (float32, 2026-11-26): live
# sets ~3.0 (512², both modes), 2.6 (768 x 256 reduced), 2.3 (complete, in units of Q's
# 768²); peaks 4.5 to 5.9, 3.9 to 5.2, 2.9 to 4.1 (they vary with how far the evaluation
# runs ahead). The graph before the fix: live sets 8.4, 6.5, 3.9; peaks 18.5, 13.8, 15.6.
LIVE = [((512, 512), "reduced", 4.5), ((768, 256), "complete", 3.0)]
PEAK = [
    ((512, 512), "reduced", 9.0),
    ((512, 512), "complete", 9.0),
    ((768, 256), "reduced", 8.0),
    ((768, 256), "complete", 7.0),
]


@pytest.fixture
def cpu():
    """The CPU stream, with the memory limit restored afterwards."""
    limit = mx.get_memory_limit()
    with mx.stream(mx.cpu):
        yield
    mx.set_memory_limit(limit)
    mx.clear_cache()


def _peak(shape: tuple, mode: str, *, live: bool) -> float:
    """Peak memory of one blocked QR of a float32 ``shape`` matrix, above the input, in
    units of its largest output; ``live``: evaluated under a memory limit."""
    m, n = shape
    a = mx.random.normal((1, m, n), key=mx.random.key(7))
    mx.eval(a)
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    limit = mx.set_memory_limit(base + 1) if live else None
    try:
        (q, r), failed = blocked_qr.qr(a, mode=mode, blocks=REFERENCE)
        mx.eval(q, r, failed)
    finally:
        if live:
            mx.set_memory_limit(limit)
    peak = mx.get_peak_memory() - base
    columns = m if mode == "complete" else min(m, n)
    return peak / (4 * m * max(n, columns))


@pytest.mark.parametrize(("shape", "mode", "bound"), LIVE)
def test_qr_live_set_is_a_few_outputs(cpu, shape, mode, bound):
    assert _peak(shape, mode, live=True) <= bound


@pytest.mark.parametrize(("shape", "mode", "bound"), PEAK)
def test_qr_peak_is_a_few_outputs(cpu, shape, mode, bound):
    assert _peak(shape, mode, live=False) <= bound
