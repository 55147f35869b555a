"""mlx_linalg._tracing: MLX's refusals to evaluate inside function transformations are
recognised, and start_evaluation (the tiled bulge chase's mx.async_eval) starts nothing
there instead of raising."""

import mlx.core as mx
import pytest

from mlx_linalg import _tracing
from mlx_linalg._tracing import is_tracing_error, start_evaluation


def _started_inside(transform) -> list[bool]:
    seen = []

    def f(y):
        seen.append(start_evaluation(y * 3))
        return (y * y).sum()

    transform(f)(mx.arange(3.0))
    return seen


@pytest.mark.parametrize("transform", [mx.compile, mx.vmap, mx.grad])
def test_start_evaluation_starts_nothing_inside_a_transformation(transform):
    assert _started_inside(transform) == [False]


def test_start_evaluation_starts_outside():
    x = mx.arange(4) * 2
    assert start_evaluation(x)
    assert x.tolist() == [0, 2, 4, 6]


def test_start_every_starts_at_multiples_of_the_stride(monkeypatch):
    started = []
    monkeypatch.setattr(_tracing, "start_evaluation", lambda *arrays: started.append(arrays))
    x = mx.arange(3)
    for step in range(1, 3 * _tracing.STEPS_PER_START + 2):
        _tracing.start_every(step, x)
    assert len(started) == 3 and all(arrays == (x,) for arrays in started)
    started.clear()
    for step in range(1, 10):
        _tracing.start_every(step, x, every=4)
    assert len(started) == 2


def test_eval_refusals_are_recognised_and_others_are_not():
    def f(y):
        mx.eval(y)
        return y

    with pytest.raises(ValueError) as refused:
        mx.compile(f)(mx.array(1.0))
    assert is_tracing_error(refused.value)
    assert not is_tracing_error(ValueError("[eval] something else"))
    assert not is_tracing_error(RuntimeError("Attempting to eval an array during function"))
