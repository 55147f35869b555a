"""Mixed-precision iterative refinement for ``solve(..., refine=True)``.

LAPACK dsgesv's scheme (Langou et al., "Exploiting the performance of 32 bit floating point
arithmetic in obtaining 64 bit accuracy", SC06; Buttari et al., 2007) as Haidar et al.
("Harnessing GPU Tensor Cores for Fast FP16 Arithmetic to Speed up Mixed-Precision
Iterative Refinement Solvers", SC18) run it on GPUs: factor A once in a low precision, then
correct the solution from residuals formed in the working precision:

    P A ≈ L U                           (low precision, 2n³/3 flops, once)
    x₀ = U⁻¹ L⁻¹ P b                    (low precision)
    repeat:  r = b − A xᵢ               (working precision, 2n²K flops)
             test ‖r‖∞ ≤ c · ‖xᵢ‖∞ · ‖A‖∞ · ε   for every column
             dᵢ = U⁻¹ L⁻¹ P r ,  xᵢ₊₁ = xᵢ + dᵢ   (low precision, 2n²K flops)

dsgesv stops once the test holds with c = √n. Here the iteration goes on to the floor of
float32 residuals (``TARGET`` = 0) as long as it progresses: the
scaled residual ‖r‖∞ / (‖x‖∞ · ‖A‖∞ · ε) must halve per correction once dsgesv's test
holds (LAPACK sgerfs's rule) and decrease before that; it also stops after ``ITERMAX``
corrections. The result is accepted if the test holds with c = ``ACCEPT`` = 2 (dsgesv
accepts c = √n, which let float32 results through with 7x the ordinary solve's backward
error on the H100). The iteration
contracts when κ(A)·u_low is well below 1; a matrix for which it does not (ill-conditioned:
κ·u_low ≳ 1), or whose residual is not finite (as for a singular low-precision
factorization), is solved again by the ordinary working-precision solve, as dsgesv falls
back to dgesv. A residual test, so an accepted result has the ordinary solve's backward
error and its accuracy.

Precisions, by the working (compute) dtype:

* float32 and complex64: the factorization and the corrections are built inside
  ``_precision.reduced_products()``, so on a device that multiplies float32 in TF32 (MLX's
  CUDA backend, Apple M5) the blocked LU's trailing updates and substitutions are plain TF32
  products (u_low = 2⁻¹¹) instead of the three-term split; residuals use the float32-accurate
  ``_precision.matmul`` in products of at most 256 inner terms, summed
  (``_precision.chunked_matmul``: a device product's float32 accumulation over all n
  terms set the floor at n = 8192 on an H100). On a full-precision device (the CPU, Apple
  M1-M4) the factors are float32's own: 0 to 2 corrections (fixed-precision refinement of
  LAPACK-quality solutions).
* float64 (on the CPU): the factorization and corrections in float32 (LAPACK sgetrf/sgetrs),
  residuals in float64: dsgesv itself.

Convergence is decided on the host after every residual (one small synchronization per
iteration); matrices of a batch that converged, or gave up, leave the iteration. So this
path cannot run inside ``mx.compile`` or ``mx.vmap``; its gradient is that of the solution
(a custom VJP), not of the iteration.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import mlx.core as mx
import numpy as np

from mlx_linalg import _autodiff_rules, _dispatch, _precision
from mlx_linalg._checks import fail
from mlx_linalg._devices import on
from mlx_linalg._gpu.small_factor import flat
from mlx_linalg._tracing import is_tracing_error

# LAPACK dsgesv's ITERMAX: corrections tried before falling back to the working precision.
ITERMAX = 30
# The factorization's dtype for each working dtype (float32 and complex64 lose their
# precision through reduced_products() instead, where the device's products do).
LOW_DTYPE = {mx.float32: mx.float32, mx.complex64: mx.complex64, mx.float64: mx.float32}
# dsgesv's ε, LAPACK's dlamch("Epsilon"): the unit roundoff of the working precision.
EPSILON = {
    mx.float32: float(np.finfo(np.float32).eps) / 2,
    mx.complex64: float(np.finfo(np.float32).eps) / 2,
    mx.float64: float(np.finfo(np.float64).eps) / 2,
}
# The residual test's constant c to aim for. dsgesv stops at c = √n, which left float32
# solutions up to √n times LAPACK's backward error (emulated TF32, n = 200 and 400: forward
# errors up to 13x LAPACK sgesv's). c = 1 was not enough either: on the H100 a Wishart
# 8192 x 8192 matrix (κ 5) stopped at c <= 1 with 17x LAPACK's backward error (ratio 0.68
# against 0.039). So there is no fixed target: the iteration runs to the floor of float32
# residuals (about 2.3/√n for Gaussian matrices, about 1 for diagonally dominant ones,
# measured), where a correction no longer halves c (LAPACK sgerfs's rule), at the cost of
# one correction past the floor (O(n²K), next to the O(n³) factorization); an exactly
# zero residual stops it too.
TARGET = 0.0
# The largest c accepted when the iteration stops: dsgesv accepts c = √n, which let a
# float32 solution through with 7x the ordinary solve's backward error and 30x LAPACK's
# forward error (H100, Gaussian 4096 x 4096, κ 2.7·10⁴ where κ·u_low ≈ 13: the iteration
# wandered below √n, stagnated and was accepted). Above ACCEPT the ordinary solve runs.
ACCEPT = 2.0


class Steps(NamedTuple):
    """The solver pieces the refinement calls, each with ``_dispatch``'s contract.

    Attributes:
        factor: ``factor(a) -> ((lu, piv), failed)``: packed LU of a (B, n, n) stack.
        solve_with: ``solve_with(lu, piv, b) -> ((x,), failed)``: x = A⁻¹ b from the packed
            LU, (B, n, K) ``b``.
        solve: ``solve(a, b) -> ((x,), failed)``: the ordinary working-precision solve, the
            fallback; ``failed`` (B,) marks singular matrices (x NaN) or is None.
    """

    factor: Callable[[mx.array], tuple]
    solve_with: Callable[[mx.array, mx.array, mx.array], tuple]
    solve: Callable[[mx.array, mx.array], tuple]


def dispatched(stream: object = None) -> Steps:
    """The :class:`Steps` of the dispatch table: GPU kernels or blocked graphs where
    ``mlx_linalg._dispatch`` picks them for the stream, LAPACK elsewhere."""
    return Steps(
        lambda a: _dispatch.run("lu_factor", stream, a),
        lambda lu, piv, b: _dispatch.run("lu_solve", stream, lu, piv, b, trans=0),
        lambda a, b: _dispatch.run("solve", stream, a, b),
    )


class Refined(NamedTuple):
    """A refined solve and how it went.

    Attributes:
        x: (..., n, K) solutions.
        failed: (...) bool, the matrices the fallback found singular (x NaN), or None when
            no matrix fell back.
        iterations: (...) int NumPy array, corrections applied (0: the low-precision solution
            passed at once); for a matrix that fell back, the corrections tried.
        fell_back: (...) bool NumPy array, matrices solved again in the working precision
            (no convergence within ``ITERMAX``, no decrease of the residual, or a non-finite
            residual, as from a singular low-precision factorization).
    """

    x: mx.array
    failed: mx.array | None
    iterations: np.ndarray
    fell_back: np.ndarray


def solve(
    a: mx.array,
    b: mx.array,
    *,
    stream: object = None,
    steps: Steps | None = None,
    itermax: int = ITERMAX,
) -> Refined:
    """``a X = b`` by mixed-precision iterative refinement (module docstring).

    Args:
        a: (..., n, n) float32, complex64 or float64 (validated, compute dtype).
        b: (..., n, K) of a's dtype and batch shape.
        stream: MLX stream or device.
        steps: the solver pieces; :func:`dispatched` for ``stream`` when None.
        itermax: corrections tried before falling back.

    Returns:
        :class:`Refined`. Gradients flow to ``a`` and ``b`` as those of A⁻¹b: the VJP is
        ``solve``'s own rule (``_autodiff_rules``), not the iteration's.
    """
    steps = dispatched(stream) if steps is None else steps
    outcome: list[Refined] = []

    @mx.custom_function
    def solution(a: mx.array, b: mx.array) -> mx.array:
        with on(stream):
            outcome.append(_refine(a, b, steps, stream, itermax))
        return outcome[-1].x

    @solution.vjp
    def solution_vjp(primals, cotangent, output):
        return _autodiff_rules.vjp("solve", stream, {}, primals, (cotangent,), (output,))

    x = solution(a, b)
    return outcome[-1]._replace(x=x)


def _refine(a: mx.array, b: mx.array, steps: Steps, stream: object, itermax: int) -> Refined:
    """The iteration on flattened (B, n, n) and (B, n, K) stacks."""
    batch, n = a.shape[:-2], a.shape[-1]
    af, bf = flat(a), flat(b)
    count, dtype, low = af.shape[0], a.dtype, LOW_DTYPE[a.dtype]
    with _precision.reduced_products():
        (packed, piv), _ = steps.factor(af.astype(low))
        (x,), _ = steps.solve_with(packed, piv, bf.astype(low))
    x = x.astype(dtype)
    # ‖A‖∞ · ε per matrix: the residual test of each column is ‖r‖∞ ≤ ‖x‖∞ · ‖A‖∞ · ε · c.
    scale = mx.max(mx.sum(mx.abs(af), axis=-1), axis=-1) * EPSILON[dtype]
    # The residual's accuracy is the refinement's floor: A X in products of inner size at
    # most _precision.CHUNK, summed (A's chunks copied once).
    a_chunks = _precision.column_chunks(af)
    active = np.arange(count)  # matrices still iterating
    iterations = np.zeros(count, dtype=np.int32)
    fell_back = np.zeros(count, dtype=bool)
    previous = np.full(count, np.inf)  # the last scaled residual of each matrix
    for step in range(itermax + 1):
        sub_x = _take(x, active, count)
        product = _precision.chunked_matmul(_take(a_chunks, active, count), sub_x, stream=stream)
        r = _take(bf, active, count) - product
        residual = mx.max(mx.abs(r), axis=-2)  # (B_active, K): ‖r‖∞ of each column
        limit = mx.max(mx.abs(sub_x), axis=-2) * _take(scale, active, count)[:, None]
        scaled = mx.max(mx.where(residual == 0, 0, residual / limit), axis=-1)
        (scaled,) = _host(scaled)
        iterations[active] = step
        # Stop at the target (c = 1); at ITERMAX; where dsgesv's test (c = √n) holds
        # already, once the scaled residual did not halve (near float32's floor: LAPACK
        # sgerfs's rule); elsewhere once it did not decrease (divergence, κ·u_low ≳ 1, or a
        # non-finite residual, which fails every comparison). Accept where c <= ACCEPT.
        dsgesv = scaled <= math.sqrt(n)
        progress = np.where(dsgesv, 2 * scaled <= previous[active], scaled < previous[active])
        stop = (scaled <= TARGET) | ~progress | (step == itermax)
        fell_back[active[stop & ~(scaled <= ACCEPT)]] = True  # NaN fails the test
        previous[active] = scaled
        going = ~stop
        if not going.any():
            break
        keep = np.flatnonzero(going)
        active = active[keep]
        with _precision.reduced_products():
            (d,), _ = steps.solve_with(
                _take(packed, active, count),
                _take(piv, active, count),
                _take(r, keep, len(going)).astype(low),
            )
        x = _put(x, active, _take(sub_x, keep, len(going)) + d.astype(dtype), count)
    failed = None
    if fell_back.any():
        again = np.flatnonzero(fell_back)
        (x_again,), failed_again = steps.solve(_take(af, again, count), _take(bf, again, count))
        x = _put(x, again, x_again, count)
        if failed_again is not None:
            failed = _put(mx.zeros((count,), dtype=mx.bool_), again, failed_again, count)
            failed = failed.reshape(batch)
    return Refined(x.reshape(b.shape), failed, iterations.reshape(batch), fell_back.reshape(batch))


def _host(*arrays: mx.array) -> list[np.ndarray]:
    """The convergence test's small arrays on the host (the per-iteration synchronization)."""
    try:
        mx.eval(*arrays)
    except ValueError as error:
        if is_tracing_error(error):
            fail(
                "solve",
                "refine=True tests convergence on the host after each correction and cannot "
                "run inside mx.compile or mx.vmap; use refine=False there",
            )
        raise
    return [np.asarray(x) for x in arrays]


def _take(x: mx.array, index: np.ndarray, count: int) -> mx.array:
    """Entries ``index`` of x's first axis (x itself when ``index`` is all ``count``)."""
    return x if len(index) == count else mx.take(x, mx.array(index.astype(np.int32)), axis=0)


def _put(x: mx.array, index: np.ndarray, values: mx.array, count: int) -> mx.array:
    """x with its first-axis entries ``index`` replaced by ``values``.

    A gather from ``[x; values]`` rather than a scatter: MLX's GPU scatter rejects
    complex64.
    """
    if len(index) == count:
        return values.astype(x.dtype)
    position = np.arange(count)
    position[index] = count + np.arange(len(index))
    both = mx.concatenate([x, values.astype(x.dtype)], axis=0)
    return mx.take(both, mx.array(position.astype(np.int32)), axis=0)
