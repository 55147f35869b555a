"""The dispatch of eigh and eigvalsh to the two-stage route (``mlx_linalg._gpu.two_stage``):
which implementation the GPU backend picks, checked without running it (the route's
kernels run in tests/gpu/test_two_stage_gpu.py and, emulated, in
tests/test_band_chase_kernel.py)."""

import inspect

import mlx.core as mx
import pytest

from mlx_linalg import _dispatch
from mlx_linalg._gpu import small_spectral, two_stage

ROUTES = {"eigh": two_stage.eigh_scaled, "eigvalsh": two_stage._eigvalsh_scaled}


@pytest.mark.parametrize("op", sorted(ROUTES))
def test_float32_from_the_crossover_on_takes_the_route(op):
    crossover = two_stage.CROSSOVER[op]

    def picked(shape, dtype=mx.float32):
        return _dispatch.implementation(op, mx.gpu, mx.zeros(shape, dtype=dtype))

    assert inspect.unwrap(picked((crossover, crossover))) is ROUTES[op]
    assert inspect.unwrap(picked((2, crossover, crossover))) is ROUTES[op]  # a stack
    assert picked((crossover - 1, crossover - 1)) is getattr(_dispatch.lapack, op)
    assert picked((crossover, crossover), mx.complex64) is getattr(_dispatch.lapack, op)
    assert picked((crossover, crossover), mx.float64) is getattr(_dispatch.lapack, op)
    assert picked((0, crossover, crossover)) is getattr(_dispatch.lapack, op)  # empty
    small = inspect.unwrap(picked((small_spectral.EIGH_MAX, small_spectral.EIGH_MAX)))
    assert small is getattr(small_spectral, op)


def test_the_route_is_the_last_rule_and_runs_eagerly():
    """After the small-matrix kernels; not wrapped by compiled_graphs.cached (its divide and
    conquer would compile new fused kernels at every new order)."""
    for op, route in ROUTES.items():
        _, impl = _dispatch.GPU_RULES[op][-1]
        assert impl is route
