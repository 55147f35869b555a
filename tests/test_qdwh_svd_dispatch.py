"""The dispatch of svd and svdvals to the QDWH + two-stage route (``mlx_linalg._gpu.qdwh_svd``):
which implementation the GPU backend picks, checked without running it (the route runs in
tests/gpu/test_qdwh_svd_gpu.py; its building blocks' CPU forms in
tests/test_spectral_blocks.py and tests/test_band_reduction.py)."""

import inspect

import mlx.core as mx
import pytest

from mlx_linalg import _dispatch
from mlx_linalg._gpu import qdwh_svd, small_spectral, tall_rules


def _picked(op: str, shape, dtype=mx.float32, **keywords):
    x = mx.zeros(shape, dtype=dtype)
    return inspect.unwrap(_dispatch.implementation(op, mx.gpu, x, **keywords))


@pytest.mark.parametrize("op", ["svd", "svdvals"])
def test_float32_from_the_crossover_on_takes_the_route(op):
    n = qdwh_svd.CROSSOVER[op]
    route, lapack = getattr(qdwh_svd, op), inspect.unwrap(getattr(_dispatch.lapack, op))
    keywords = {"full_matrices": False} if op == "svd" else {}
    assert _picked(op, (n, n), **keywords) is route
    assert _picked(op, (2, n, n), **keywords) is route  # a stack
    assert _picked(op, (qdwh_svd.MAX_ASPECT * n, n), **keywords) is route  # tall
    assert _picked(op, (n, qdwh_svd.MAX_ASPECT * n), **keywords) is route  # wide
    assert _picked(op, (qdwh_svd.MAX_ASPECT * n + 1, n), **keywords) is lapack
    assert _picked(op, (n - 1, n - 1), **keywords) is lapack
    assert _picked(op, (n, n), mx.float64, **keywords) is lapack
    assert _picked(op, (n, n), mx.complex64, **keywords) is lapack
    assert _picked(op, (0, n, n), **keywords) is lapack  # empty
    assert _picked(op, (8, 8), **keywords) is getattr(small_spectral, op)
    assert _picked(op, (4096, 64), **keywords) is getattr(tall_rules, op)


def test_full_matrices_takes_the_route_for_square_matrices_only():
    n = qdwh_svd.CROSSOVER["svd"]
    assert _picked("svd", (n, n), full_matrices=True) is qdwh_svd.svd
    assert _picked("svd", (2 * n, n), full_matrices=True) is inspect.unwrap(_dispatch.lapack.svd)


def test_the_route_is_the_last_rule_and_runs_eagerly():
    """After the small-matrix and tall-skinny rules; not wrapped by compiled_graphs.cached
    (like the two-stage eigh it calls)."""
    for op in ("svd", "svdvals"):
        _, impl = _dispatch.GPU_RULES[op][-1]
        assert impl is getattr(qdwh_svd, op)
