"""Launch counts of the blocked large-matrix graphs, built lazily on the CPU (issue #7).

The method of docs/kernels-blocked-recursive.md ("The counting script"): each graph is built
on one float32 n x n matrix (n right-hand sides or one) without evaluating anything, with the
building blocks of ``blocked_common.KERNELS`` replaced by stand-ins that add no graph node
and count one launch each, and exported with ``mx.export_to_dot``. *Nodes* are the graph's
non-view nodes (:data:`VIEWS` not counted) plus the building-block calls; *launches* also
count each input of a Concatenate as one copy, as MLX's GPU concatenate does. The *TF32*
columns build the graph as on an H100 (``_precision.reduced_precision`` pretended true, so
``needs_split`` is true: every trailing update is the split product, and QR's small
products are elementwise). The *GPU* column is the TF32 graph with each split operand
formed as on a GPU, by one launch of the ``split_pair`` or ``split_gram`` kernel
(``blocked_common.FUSED_SPLIT``; stand-ins counted as calls), and each update with a
small inner dimension as one launch of the ``rank_update`` kernel
(``blocked_common.RANK_UPDATE_MAX_K``), where the other columns count the MLX ops that
form them on the CPU: the launches a GPU run makes.

Not counted (as in that method): copies that the GPU makes of non-contiguous views, e.g.
a kernel's ``ensure_row_contiguous`` copy of a sliced input or a reshape that cannot be a
view.

Usage: ``python tools/count_launches.py [--sizes 1024,4096] [--ops cholesky,...] [--kinds]``
(``--kinds``: the TF32 launches by primitive). An older revision's counts: run this script
with ``PYTHONPATH`` set to that revision's tree (``git archive REV mlx_linalg metal``).
"""

import argparse
import collections
import contextlib
import re
import tempfile
from collections.abc import Callable

import mlx.core as mx
import numpy as np

from mlx_linalg import _precision
from mlx_linalg._gpu import (
    blocked_cholesky,
    blocked_common,
    blocked_lu,
    blocked_qr,
    blocked_triangular,
    small_spectral,
    tsqr,
)
from mlx_linalg._gpu.blocked_common import KERNELS, Blocks

VIEWS = frozenset(
    {
        "Broadcast",
        "Slice",
        "ExpandDims",
        "Squeeze",
        "Reshape",
        "Flatten",
        "Transpose",
        "View",
        "AsStrided",
        "StopGradient",
        "Depends",
        "CustomTransforms",
    }
)
OPS = (
    "cholesky",
    "cholesky_upper",
    "solve_triangular",
    "solve_triangular_1",
    "cho_solve",
    "cho_solve_1",
    "lu_factor",
    "solve",
    "qr",
)


class Counts(collections.Counter):
    """Building-block calls by name."""


def _constant(shape: tuple, dtype) -> mx.array:
    """A host array: a graph input, no node."""
    return mx.array(np.zeros(shape, dtype=dtype))


def stubs(calls: Counts) -> Blocks:
    """``KERNELS`` with every building block replaced by a one-launch stand-in (no node)."""

    def cholesky_panel(a, width):
        calls["cholesky_panel"] += 1
        factor = _constant((a.shape[0], a.shape[1], width), np.float32)
        return mx.depends(factor, a), _constant(a.shape[:1], np.bool_)

    def trsm(t, x, **_):
        calls["trsm_small"] += 1
        return mx.depends(x, t)

    def lu_pivots(a, columns=None):
        calls["lu_panel"] += 1
        batch, m, w = a.shape
        w = w if columns is None else columns
        perm = np.broadcast_to(np.arange(m, dtype=np.int32), (batch, m)).copy()
        return a[:, :, :w], mx.array(perm), _constant((batch, min(m, w)), np.int32)

    def lu_join(p1, u12, p2, perm1, perm2):
        calls["lu_join"] += 1
        batch, m, w1 = p1.shape
        packed = _constant((batch, m, w1 + p2.shape[-1]), np.float32)
        return tuple(mx.depends([packed, perm1], [p1, u12, p2, perm2]))

    def gather_rows(x, rows, first=0):
        calls["gather_rows"] += 1
        batch, _, n = x.shape
        return mx.depends(_constant((batch, rows.shape[1], n - first), np.float32), [x, rows])

    def lu_assemble(stored, moves, block):
        calls["lu_assemble"] += 1
        batch, m = moves.shape[1:]
        perm = _constant((batch, m), np.int32)
        return tuple(mx.depends([_constant(stored.shape, np.float32), perm], [stored, moves]))

    def qr(a):
        calls["qr_panel"] += 1
        batch, m, w = a.shape
        return a, _constant((batch, min(m, w)), np.float32)

    return KERNELS._replace(
        cholesky_panel=cholesky_panel,
        trsm=trsm,
        lu=lambda a: lu_pivots(a)[:2],
        lu_pivots=lu_pivots,
        lu_join=lu_join,
        gather_rows=gather_rows,
        lu_assemble=lu_assemble,
        qr=qr,
    )


def tsqr_stubs(calls: Counts) -> tsqr.Ops:
    """The TSQR panel's kernels (``tsqr.Ops``: ``qr_small``, ``tsqr_householder``,
    ``tsqr_product``) as one-launch stand-ins (no node)."""

    def qr_small(a, height):
        calls["qr_small"] += 1
        launch = small_spectral.qr_small_launch(a.shape, complete=False, height=height)
        outputs = [_constant(shape, np.float32) for shape in launch["output_shapes"]]
        return tuple(mx.depends(outputs, [a]))

    def reconstruct(q1, r_factor, square):
        calls["tsqr_householder"] += 1
        batch, n, _ = q1.shape
        square_outs = [_constant((batch, n, n), np.float32)] * 3
        outs = square_outs + [
            _constant((batch, n), np.float32),
            _constant((batch, n, n), np.float32),
        ]
        return tuple(mx.depends(outs, [q1, r_factor]))

    def product(a, bm, top, *, trans, batch, rows):
        calls["tsqr_product"] += 1
        return mx.depends(_constant((batch, rows, bm.shape[-1]), np.float32), [a, bm])

    return tsqr.Ops(qr_small, reconstruct, product)


def _graph(outputs: list[mx.array]) -> tuple[dict, collections.Counter]:
    """The graph's primitives by node id, and each node's number of inputs."""
    outputs = [x for x in outputs if x is not None]
    with tempfile.NamedTemporaryFile("r", suffix=".dot") as f:
        mx.export_to_dot(f.name, *outputs)
        text = f.read()
    labels = dict(re.findall(r'\{ (\d+) \[label ="(\w+)"', text))
    return labels, collections.Counter(re.findall(r"-> (\d+)\n", text))


def graph_counts(outputs: list[mx.array]) -> tuple[int, int]:
    """(nodes, launches) of the lazy graph of ``outputs``, building blocks not included."""
    labels, indegree = _graph(outputs)
    nodes = sum(1 for kind in labels.values() if kind not in VIEWS)
    copies = sum(indegree[i] - 1 for i, kind in labels.items() if kind == "Concatenate")
    return nodes, nodes + copies


def graph_kinds(outputs: list[mx.array]) -> collections.Counter:
    """Launches of the lazy graph of ``outputs`` by primitive (views left out)."""
    labels, indegree = _graph(outputs)
    kinds = collections.Counter(kind for kind in labels.values() if kind not in VIEWS)
    kinds["Concatenate"] += sum(
        indegree[i] - 1 for i, kind in labels.items() if kind == "Concatenate"
    )
    return +kinds


def _spd_inputs(n: int, k: int) -> tuple[mx.array, mx.array]:
    return mx.zeros((1, n, n), dtype=mx.float32), mx.zeros((1, n, k), dtype=mx.float32)


def builders(blocks: Blocks) -> dict[str, Callable[[int], list[mx.array]]]:
    """Each op at the dispatcher's defaults: n -> its outputs (lazy)."""

    def flat_outputs(result) -> list[mx.array]:
        outputs, failed = result
        return [*outputs, failed]

    def triangular(n: int, k: int) -> list[mx.array]:
        a, b = _spd_inputs(n, k)
        return flat_outputs(
            blocked_triangular.solve_triangular(
                a, b, lower=True, unit_diagonal=False, trans=0, blocks=blocks
            )
        )

    def cho_solve(n: int, k: int) -> list[mx.array]:
        c, b = _spd_inputs(n, k)
        return flat_outputs(blocked_triangular.cho_solve(c, b, lower=True, blocks=blocks))

    def lu_factor(n: int) -> list[mx.array]:
        packed, piv = blocked_lu.lu_factor(_spd_inputs(n, 1)[0], blocks=blocks)[0]
        return [packed, piv]

    def solve(n: int) -> list[mx.array]:
        return flat_outputs(blocked_lu.solve(*_spd_inputs(n, n), blocks=blocks))

    return {
        "cholesky": lambda n: flat_outputs(
            blocked_cholesky.cholesky(_spd_inputs(n, 1)[0], upper=False, blocks=blocks)
        ),
        "cholesky_upper": lambda n: flat_outputs(
            blocked_cholesky.cholesky(_spd_inputs(n, 1)[0], upper=True, blocks=blocks)
        ),
        "solve_triangular": lambda n: triangular(n, n),
        "solve_triangular_1": lambda n: triangular(n, 1),
        "cho_solve": lambda n: cho_solve(n, n),
        "cho_solve_1": lambda n: cho_solve(n, 1),
        "lu_factor": lu_factor,
        "solve": solve,
        "qr": lambda n: flat_outputs(
            blocked_qr.qr(_spd_inputs(n, 1)[0], mode="reduced", blocks=blocks)
        ),
    }


@contextlib.contextmanager
def tf32(on: bool):
    """Within this context, float32 products count as reduced precision (as on an H100)."""
    saved = _precision.reduced_precision
    if on:
        _precision.reduced_precision = lambda *_, **__: True
    try:
        yield
    finally:
        _precision.reduced_precision = saved


@contextlib.contextmanager
def evaluation_deferred():
    """Within this context ``mx.async_eval`` starts nothing. The spectral routes start
    evaluating the graph built so far along their loops (``_tracing.start_every``); on the
    CPU that evaluates it, and the exported graph would hold only what came after the last
    start (sy2sb at n = 1024 counted 16.5 launches a block column that way, not 28.4)."""
    saved = mx.async_eval
    mx.async_eval = lambda *arrays: None
    try:
        yield
    finally:
        mx.async_eval = saved


@contextlib.contextmanager
def tsqr_stubbed(calls: Counts):
    """Within this context the TSQR panel (the QR's default) uses :func:`tsqr_stubs`, as
    the other building blocks use :func:`stubs` (its MLX-op reference would be counted op
    by op otherwise)."""
    saved = tsqr.ops_for
    tsqr.ops_for = lambda _blocks: tsqr_stubs(calls)
    try:
        yield
    finally:
        tsqr.ops_for = saved


@contextlib.contextmanager
def gpu_stubbed(calls: Counts, on: bool):
    """Within this context (when ``on``), the default device counts as a GPU for
    ``blocked_common._fused_split`` (``_precision._gpu_default``), and split operands come
    from one-launch stand-ins of the ``split_pair`` and ``split_gram`` kernels, and narrow
    updates from one of the ``rank_update`` kernel, as ``blocked_common`` forms them on a
    GPU."""
    saved = (
        _precision._gpu_default,
        blocked_common.split_pair_kernel,
        blocked_common.split_gram_kernel,
        blocked_common.rank_update_kernel,
        blocked_common.transposed_product_kernel,
    )

    def pair(x, *, right):
        calls["split_pair"] += 1
        rows, cols = x.shape[-2:]
        wide = (*x.shape[:-2], 2 * rows, cols) if right else (*x.shape[:-2], rows, 2 * cols)
        return tuple(mx.depends([_constant(x.shape, np.float32), _constant(wide, np.float32)], [x]))

    def gram(x):
        calls["split_gram"] += 1
        wide = (*x.shape[:-2], x.shape[-2], 2 * x.shape[-1])
        outs = [_constant(x.shape, np.float32)] + [_constant(wide, np.float32)] * 2
        return tuple(mx.depends(outs, [x]))

    def rank_update(c, a, b, *, trans_b=False, at=(0, 0), window=None):
        calls["rank_update"] += 1
        n = b.shape[-2] if trans_b else b.shape[-1]
        read = a if window is None else window.array
        return mx.depends(_constant((a.shape[0], a.shape[1], n), np.float32), [c, read, b])

    def transposed_product(a, b):
        calls["rank_update"] += 1
        shape = (a.shape[0], a.shape[2], b.shape[2])
        return mx.depends(_constant(shape, np.float32), [a, b])

    if on:
        _precision._gpu_default = lambda: True
        blocked_common.split_pair_kernel, blocked_common.split_gram_kernel = pair, gram
        blocked_common.rank_update_kernel = rank_update
        blocked_common.transposed_product_kernel = transposed_product
    try:
        yield
    finally:
        (
            _precision._gpu_default,
            blocked_common.split_pair_kernel,
            blocked_common.split_gram_kernel,
            blocked_common.rank_update_kernel,
            blocked_common.transposed_product_kernel,
        ) = saved


def count(op: str, n: int, *, split: bool, fused: bool = False) -> dict:
    """Kernel calls, nodes and launches (and launches by primitive: ``kinds``) of ``op`` on
    one n x n float32 matrix; ``fused``: split operands as on a GPU (one launch each)."""
    calls = Counts()
    with tf32(split), tsqr_stubbed(calls), gpu_stubbed(calls, fused):
        outputs = builders(stubs(calls))[op](n)
        nodes, launches = graph_counts(outputs)
        kinds = graph_kinds(outputs)
    kernels = sum(calls.values())
    return {
        "calls": dict(calls),
        "nodes": nodes + kernels,
        "launches": launches + kernels,
        "kinds": dict(kinds + collections.Counter(calls)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,4096")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument(
        "--kinds", action="store_true", help="also print the TF32 launches by primitive"
    )
    args = parser.parse_args()
    print(
        "| op | n | kernel calls | nodes | launches | nodes, TF32 | launches, TF32 "
        "| launches, GPU |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in (int(s) for s in args.sizes.split(",")):
        for op in args.ops.split(","):
            plain, split = count(op, n, split=False), count(op, n, split=True)
            gpu = count(op, n, split=True, fused=True)
            calls = " + ".join(f"{v} {k}" for k, v in sorted(plain["calls"].items()))
            print(
                f"| {op} | {n} | {calls} | {plain['nodes']} | {plain['launches']} "
                f"| {split['nodes']} | {split['launches']} | {gpu['launches']} |",
                flush=True,
            )
            if args.kinds:
                kinds = sorted(split["kinds"].items(), key=lambda item: -item[1])
                print("    TF32:", ", ".join(f"{k} {v}" for k, v in kinds))


if __name__ == "__main__":
    main()
