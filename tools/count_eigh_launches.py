"""Launches of the two-stage eigh route (issue #8) by phase, its graph built lazily on the CPU.

The method of tools/count_launches.py, for ``two_stage.eigh`` on one float32 n x n matrix:
nothing is evaluated; every custom kernel (``_kernels.launch``) is a stand-in that adds no
graph node and counts one launch, as do the leaves' eigh (the batched Jacobi kernels on a
GPU: one launch), the TSQR panels' kernels and the split operands and narrow updates
(``count_launches.tsqr_stubbed`` and ``gpu_stubbed``); float32 products are split as on an
H100 or H200 with TF32 (``count_launches.tf32``); MLX's own primitives are counted from
the exported graph (views left out, each input of a Concatenate one copy). Each phase is
built from constant inputs, so its count is its own: stage 1 (``band_reduction.sy2sb``),
stage 2 (the chase, ``band_chase.band_to_tridiagonal_q``), the divide and conquer
(``tridiagonal_dc.eigh_tridiagonal``), Q₂ Z (``band_chase.apply_band_q`` or, from
``two_stage.Q2_BLOCKS_FROM``, ``band_q_blocks``) and Q₁ (``band_reduction.apply_q``).
Not counted: copies the GPU makes of non-contiguous kernel inputs, and the route's glue
(reshapes, the scaling of the dispatched ``eigh``), so a GPU timeline shows some more.
``--polar`` adds the SVD route's first part, the QDWH polar decomposition
(``polar.qdwh`` with ``tall_skinny.KERNELS``), whose H the route then hands to this eigh.

Usage: ``python tools/count_eigh_launches.py [--sizes 1024,2048] [--kinds] [--polar]``
(``--kinds``: each phase's launches by primitive).
"""

import argparse
import collections
import contextlib
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_launches import (  # noqa: E402
    _constant,
    evaluation_deferred,
    gpu_stubbed,
    graph_kinds,
    tf32,
    tsqr_stubbed,
)

from mlx_linalg import _kernels  # noqa: E402
from mlx_linalg._gpu import (  # noqa: E402
    band_chase,
    band_q_blocks,
    band_reduction,
    blocked_qr,
    polar,
    tall_skinny,
    tridiagonal_dc,
    two_stage,
)
from mlx_linalg._gpu.blocked_common import KERNELS  # noqa: E402

PHASES = ("stage 1", "stage 2", "divide and conquer", "Q2 Z", "Q1")


@contextlib.contextmanager
def kernels_stubbed(calls: collections.Counter):
    """Within this context every ``_kernels.launch`` returns constant outputs of the declared
    shapes and dtypes that depend on its inputs (no node) and counts one launch under the
    kernel's name; the leaves' eigh likewise."""
    saved = (_kernels.launch, tridiagonal_dc._default_leaf_eigh)

    def launch(name, inputs, *, output_shapes, **_):
        calls[name] += 1
        declared = _kernels.spec(name).outputs  # (name, dtype): NumPy's dtype names too
        outputs = [
            _constant(shape, np.dtype(dtype))
            for shape, (_, dtype) in zip(output_shapes, declared, strict=True)
        ]
        return list(mx.depends(outputs, inputs))

    def leaf_eigh(x):
        calls["leaf eigh (Jacobi kernel)"] += 1
        count, size, _ = x.shape
        outputs = [_constant((count, size), np.float32), _constant(x.shape, np.float32)]
        return tuple(mx.depends(outputs, [x]))

    _kernels.launch = launch
    tridiagonal_dc._default_leaf_eigh = leaf_eigh
    try:
        yield
    finally:
        _kernels.launch, tridiagonal_dc._default_leaf_eigh = saved


def _builders(n: int, band: int, reflector_shapes: list[tuple]) -> dict:
    """Each phase after stage 1: a function building its outputs (lazy) from constant
    inputs of the shapes the route hands it (``reflector_shapes``: stage 1's)."""
    z = _constant((1, n, n), np.float32)
    kept = _constant((1, *band_chase.reflector_slots(n, band), band + 1), np.float32)

    def q2():
        if n >= two_stage.Q2_BLOCKS_FROM:
            return [band_q_blocks.apply_band_q_blocks(kept, z)]
        return [band_chase.apply_band_q(kept, z)]

    def q1():
        held = [
            blocked_qr.Reflectors(
                *(None if shape is None else _constant(shape, np.float32) for shape in shapes)
            )
            for shapes in reflector_shapes
        ]
        return [band_reduction.apply_q(held, z)]

    return {
        "stage 2": lambda: list(band_chase.band_to_tridiagonal_q(z, band)),
        "divide and conquer": lambda: list(
            tridiagonal_dc.eigh_tridiagonal(
                _constant((1, n), np.float32), _constant((1, n - 1), np.float32)
            )
        ),
        "Q2 Z": q2,
        "Q1": q1,
    }


@contextlib.contextmanager
def as_on_a_gpu(calls: collections.Counter):
    """Kernels, the TSQR panels' kernels, split operands and narrow updates as one-launch
    stand-ins counted in ``calls``, products split as with TF32, evaluation deferred."""
    with (
        kernels_stubbed(calls),
        tf32(True),
        tsqr_stubbed(calls),
        gpu_stubbed(calls, True),
        evaluation_deferred(),
    ):
        yield


def count(n: int, band: int = two_stage.BAND) -> dict:
    """``{phase: Counter of launches by primitive or kernel}`` for eigh at order n."""
    calls = collections.Counter()
    with as_on_a_gpu(calls):
        a = _constant((1, n, n), np.float32)
        banded, reflectors = band_reduction.sy2sb(a, band=band, blocks=KERNELS)
        outputs = [banded] + [x for r in reflectors for x in (r.v, r.t)]
        result = {"stage 1": graph_kinds(outputs) + calls}
    shapes = [tuple(None if x is None else x.shape for x in r) for r in reflectors]
    for phase, build in _builders(n, band, shapes).items():
        calls = collections.Counter()
        with as_on_a_gpu(calls):
            result[phase] = graph_kinds(build()) + calls
    return result


def count_polar(n: int) -> collections.Counter:
    """Launches by primitive or kernel of ``polar.qdwh`` on one float32 n x n matrix."""
    calls = collections.Counter()
    with as_on_a_gpu(calls):
        u, h, info = polar.qdwh(_constant((1, n, n), np.float32), tall_skinny.KERNELS)
        return graph_kinds([u, h, info]) + calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048")
    parser.add_argument("--kinds", action="store_true", help="launches by primitive")
    parser.add_argument("--polar", action="store_true", help="also the QDWH polar factor's")
    args = parser.parse_args()
    print("| n | " + " | ".join(PHASES) + " | eigh |" + (" polar (QDWH) |" if args.polar else ""))
    print("| --- |" + " --- |" * (len(PHASES) + 1 + args.polar))
    for n in (int(s) for s in args.sizes.split(",")):
        phases = count(n)
        if args.polar:
            polar_kinds = count_polar(n)
        totals = [sum(kinds.values()) for kinds in phases.values()]
        polar_cell = f" {sum(polar_kinds.values())} |" if args.polar else ""
        print(
            f"| {n} | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |" + polar_cell,
            flush=True,
        )
        if args.kinds:
            if args.polar:
                phases = {**phases, "polar (QDWH)": polar_kinds}
            for phase, kinds in phases.items():
                top = ", ".join(f"{k} {v}" for k, v in kinds.most_common())
                print(f"    {phase}: {top}")


if __name__ == "__main__":
    main()
