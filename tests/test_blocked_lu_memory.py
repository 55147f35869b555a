"""Peak memory of the blocked LU and Cholesky graphs on the CPU (issue #7: "a few n×n
temporaries at most").

Each graph is built with the MLX-op building blocks (``REFERENCE``: the graph that runs
on the GPU, each kernel replaced by its MLX-op reference) on one float32 n x n matrix and
evaluated on the CPU stream; ``mx.get_peak_memory()`` after ``mx.reset_peak_memory()``,
less the memory active before (the inputs), in units of n² float32. The bounds leave a
margin over what the graphs reach here (written next to each bound) and sit below what
the concatenated assembly before issue #7 reached (in brackets): it kept the trailing
matrix's full row gather beside its update, every U block row widened to n columns, and
a concatenation of the whole factor.
"""

import functools

import mlx.core as mx
import pytest

from mlx_linalg import _precision
from mlx_linalg._gpu import blocked_cholesky, blocked_lu
from mlx_linalg._gpu.blocked_common import REFERENCE

# Peak above the inputs, n² float32, of the plain graphs at n = 512 and 1024 (blocks 128,
# 256), measured on a 2-core x86 CPU (the peaks vary by about 0.2 n² from run to run with
# the evaluation threads' timing): solve 2.6-3.6 [3.7-5.2], lu_factor 2.5-3.6 [3.4-4.8].
# (2.2-3.0 and 2.3-2.9 while the packed panels were kept apart and gathered into the
# result one by one, seven launches per step more: the one-launch assembly, kernel or
# MLX ops, writes a new n² array beside the stored steps.)
LU_BOUND = 4.0
# With split products (the TF32 graph of an H100), n = 768, block 128: solve 2.9-3.3
# [3.9-5.2], inv 5.3-5.8 [7.3]: of that, about one n² is the MLX-op substitution building
# block's own loop over a wide right-hand side (not the kernel's), and about one n² the
# split operands (a slab of a quarter of the columns split into hi and lo, and each
# product's pairs).
SPLIT_SOLVE_BOUND = 3.75
SPLIT_INV_BOUND = 6.5
# cholesky, plain and split, n = 512 and 768: 2.0-2.6 [2.0-2.6].
CHOLESKY_BOUND = 3.25


def _pretend_split_products(monkeypatch):
    """Build graphs as on a device whose float32 products lose precision (TF32)."""
    monkeypatch.setattr(_precision, "reduced_precision", lambda *_, **__: True)


def _inputs(n: int, *, spd: bool = False) -> tuple[mx.array, mx.array]:
    g = mx.random.normal((1, n, n), key=mx.random.key(n)) / n**0.5
    a = g @ mx.swapaxes(g, -1, -2) + mx.eye(n) if spd else g + 4 * mx.eye(n)
    b = mx.random.normal((1, n, 16), key=mx.random.key(1))
    mx.eval(a, b)
    return a, b


def _peak(build, n: int) -> float:
    """Peak memory above the live arrays while the graph ``build()`` is evaluated, n²
    float32."""
    with mx.stream(mx.cpu):
        outputs = build()
        mx.synchronize()
        mx.clear_cache()
        mx.reset_peak_memory()
        base = mx.get_active_memory()
        mx.eval(outputs)
        return (mx.get_peak_memory() - base) / (4 * n * n)


@pytest.mark.parametrize(("n", "block"), [(512, 128), (1024, 128), (1024, 256)])
def test_solve_and_lu_factor_peak(n, block):
    a, b = _inputs(n)
    solve = _peak(lambda: blocked_lu.solve(a, b, blocks=REFERENCE, block=block), n)
    factor = _peak(lambda: blocked_lu.lu_factor(a, blocks=REFERENCE, block=block), n)
    assert solve < LU_BOUND, solve
    assert factor < LU_BOUND, factor


def test_split_product_solve_and_inv_peak(monkeypatch):
    n = 768
    a, b = _inputs(n)
    _pretend_split_products(monkeypatch)
    solve = _peak(lambda: blocked_lu.solve(a, b, blocks=REFERENCE), n)
    inverse = _peak(lambda: blocked_lu.inv(a, blocks=REFERENCE), n)
    assert solve < SPLIT_SOLVE_BOUND, solve
    assert inverse < SPLIT_INV_BOUND, inverse


@pytest.mark.parametrize(("n", "split"), [(512, False), (768, True)])
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_peak(n, split, upper, monkeypatch):
    a, _ = _inputs(n, spd=True)
    if split:
        _pretend_split_products(monkeypatch)
    build = functools.partial(blocked_cholesky.cholesky, a, upper=upper, blocks=REFERENCE)
    peak = _peak(build, n)
    assert peak < CHOLESKY_BOUND, peak


def test_peak_measures_the_graph():
    """The method sees a graph's temporaries: three n x n arrays alive at once (a
    concatenation of two products of ``a``) read as about three n², not zero."""
    n = 512
    a, _ = _inputs(n)
    peak = _peak(lambda: mx.concatenate([a @ a, a + 1], axis=1), n)
    assert 3.5 < peak < 4.5, peak
