"""Which implementation runs an op: one table, keyed by op and backend.

The backend comes from the ``stream=`` argument (a Stream, Device or DeviceType) or, when it
is None, MLX's default device. On the GPU backend the rules of ``GPU_RULES[op]`` are tried in
order; the first whose predicate accepts the arguments runs. Everything else, and every op
without a GPU rule yet, runs on the CPU through LAPACK (``mlx_linalg._cpu.lapack``), which
returns ordinary MLX arrays usable on either device.

Implementation contract: called with MLX arrays already validated and cast to the compute
dtype, plus the op's keywords; returns ``(outputs, failed)`` where ``outputs`` is an MLX
array or tuple of them and ``failed`` is None or a bool MLX array of the batch shape marking
matrices that failed numerically (their outputs are already NaN).
"""

import functools
from collections.abc import Callable

import mlx.core as mx

from mlx_linalg import _autodiff, _devices
from mlx_linalg._cpu import lapack
from mlx_linalg._gpu import (
    blocked_rules,
    qdwh_svd,
    small_factor,
    small_spectral,
    tall_rules,
    two_stage,
)

Predicate = Callable[..., bool]
Implementation = Callable[..., tuple]

# op -> [(applies(*arrays, **keywords), implementation)], tried in order on the GPU backend.
GPU_RULES: dict[str, list[tuple[Predicate, Implementation]]] = {}

# Stacks of small float32 matrices (n <= 64), one threadgroup per matrix: Cholesky, LU and
# the solves built on them (mlx_linalg._gpu.small_factor, kernels in metal/).
GPU_RULES.update(
    {
        "cholesky": [(small_factor.applies_square, small_factor.cholesky)],
        "cho_solve": [(small_factor.applies_rhs, small_factor.cho_solve)],
        "lu": [(small_factor.applies_matrix, small_factor.lu)],
        "lu_factor": [(small_factor.applies_matrix, small_factor.lu_factor)],
        "lu_solve": [(small_factor.applies_rhs, small_factor.lu_solve)],
        "solve": [(small_factor.applies_rhs, small_factor.solve)],
        "inv": [(small_factor.applies_square, small_factor.inv)],
        "det": [(small_factor.applies_square, small_factor.det)],
        "slogdet": [(small_factor.applies_square, small_factor.slogdet)],
        "solve_triangular": [(small_factor.applies_rhs, small_factor.solve_triangular)],
    }
)

# Stacks of small float32 matrices, one threadgroup per matrix: Householder QR, Jacobi eigh
# and one-sided Jacobi SVD (mlx_linalg._gpu.small_spectral, kernels in metal/).
GPU_RULES.update(
    {
        "qr": [(small_spectral.qr_applies, small_spectral.qr)],
        "eigh": [(small_spectral.eigh_applies, small_spectral.eigh)],
        "eigvalsh": [(small_spectral.eigh_applies, small_spectral.eigvalsh)],
        "svd": [(small_spectral.svd_applies, small_spectral.svd)],
        "svdvals": [(small_spectral.svdvals_applies, small_spectral.svdvals)],
    }
)

# Tall-skinny float32 stacks, after the small-matrix kernels and before the blocked graphs:
# reduced QR by CholeskyQR2 with a Householder fallback, and SVD/svdvals of up to 64 columns
# (or rows) as QR then the Jacobi kernel on R (mlx_linalg._gpu.tall_rules).
for _op, _rule in tall_rules.dispatch_rules().items():
    GPU_RULES.setdefault(_op, []).append(_rule)

# Large float32 matrices: blocked right-looking graphs of panel kernels and matmul updates
# (mlx_linalg._gpu.blocked_*), from the measured crossover orders of blocked_rules.CROSSOVER.
for _op, _rule in blocked_rules.dispatch_rules().items():
    GPU_RULES.setdefault(_op, []).append(_rule)

# Large symmetric float32 matrices: the two-stage tridiagonal reduction (dense to band by
# matrix products, band to tridiagonal by bulge chasing), bisection or divide and conquer
# (mlx_linalg._gpu.two_stage), from its measured crossover orders.
for _op, _rule in two_stage.dispatch_rules().items():
    GPU_RULES.setdefault(_op, []).append(_rule)

# Large float32 SVD and singular values (square and up to 8:1): QDWH polar, then the
# two-stage eigh of the polar factor H (mlx_linalg._gpu.qdwh_svd), from its measured crossover.
for _op, _rule in qdwh_svd.dispatch_rules().items():
    GPU_RULES.setdefault(_op, []).append(_rule)


def backend(stream: object = None) -> str:
    """``"gpu"`` or ``"cpu"`` for a ``stream=`` argument as MLX's own functions take it."""
    if stream is None:
        device_type = mx.default_device().type
    elif isinstance(stream, mx.Stream):
        device_type = stream.device.type
    elif isinstance(stream, mx.Device):
        device_type = stream.type
    elif isinstance(stream, mx.DeviceType):
        device_type = stream
    else:
        raise TypeError(
            f"[mlx_linalg] expected stream to be None, an mx.Stream or an mx.Device, "
            f"got {type(stream).__name__}"
        )
    return "gpu" if device_type == mx.DeviceType.gpu else "cpu"


def implementation(op: str, stream: object, *arrays: mx.array, **keywords) -> Implementation:
    """The implementation of ``op`` for these arguments on the stream's backend."""
    if backend(stream) == "gpu":
        for applies, impl in GPU_RULES.get(op, ()):
            if applies(*arrays, **keywords):
                return impl if stream is None else _on_stream(impl, stream)
    return getattr(lapack, op)


def _on_stream(impl: Implementation, stream: object) -> Implementation:
    """``impl`` with every MLX op it builds (kernel launches included) on ``stream``."""

    @functools.wraps(impl)
    def on_stream(*arrays: mx.array, **keywords) -> tuple:
        with _devices.on(stream):
            return impl(*arrays, **keywords)

    return on_stream


def run(op: str, stream: object, *arrays: mx.array, **keywords) -> tuple:
    """Pick the implementation of ``op`` and call it: returns ``(outputs, failed)``.

    ``outputs`` is always a tuple. The call goes through ``mlx_linalg._autodiff``, which
    gives every implementation, CPU or GPU, the op's VJP, JVP and vmap rules, and runs the
    eager LAPACK path lazily while ``mx.compile`` or ``mx.vmap`` traces it.
    """
    impl = implementation(op, stream, *arrays, **keywords)
    return _autodiff.call(op, impl, stream, arrays, keywords)
