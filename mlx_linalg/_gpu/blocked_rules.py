"""The dispatch rules of the blocked large-matrix algorithms, and where they take over.

``RULES`` says where each blocked algorithm applies: non-empty float32 stacks with
max(M, N) > 64 (square where the op needs it, non-empty right-hand sides for the solves).
``mlx_linalg._dispatch`` appends :func:`dispatch_rules` to ``GPU_RULES``, after the
small-matrix rules (which take n <= 64): those are ``RULES`` restricted to orders of at least
``CROSSOVER[op]``; smaller matrices keep the CPU (LAPACK) path. Each implementation runs
through ``compiled_graphs.cached``: from the second call of an input shape on, its graph is
traced once and replayed.
"""

from mlx_linalg._gpu import (
    blocked_cholesky,
    blocked_lu,
    blocked_qr,
    blocked_triangular,
    compiled_graphs,
)
from mlx_linalg._gpu.blocked_common import (
    applies_matrix,
    applies_rhs,
    applies_square,
    from_order,
)

RULES = {
    "cholesky": (applies_square, blocked_cholesky.cholesky),
    "cho_solve": (applies_rhs, blocked_triangular.cho_solve),
    "solve_triangular": (applies_rhs, blocked_triangular.solve_triangular),
    "lu_factor": (applies_matrix, blocked_lu.lu_factor),
    "lu": (applies_matrix, blocked_lu.lu),
    "lu_solve": (applies_rhs, blocked_lu.lu_solve),
    "solve": (applies_rhs, blocked_lu.solve),
    "inv": (applies_square, blocked_lu.inv),
    "det": (applies_square, blocked_lu.det),
    "slogdet": (applies_square, blocked_lu.slogdet),
    "qr": (applies_matrix, blocked_qr.qr),
}

# The smallest order max(M, N) from which the blocked graph, as dispatched (compiled:
# traced once per shape, then replayed), beat mlx_linalg's CPU path (LAPACK, 16 cores) at
# every order timed, n = 128 ... 4096, on one H200 machine, float32, one matrix
# (tools/bench_blocked.py --blocks default, 2026-11-29; docs/kernels-blocked.md,
# "Crossovers"): e.g. cholesky 0.28 against 0.8 ms at 128, qr 1.3 against 2.1 ms at 128,
# solve 2.8 against 4.6 ms at 256 (1.5 against 1.2 at 128), inv 9.3 against 18.7 ms at
# 1024 (at 512 it lost once, 5.5 against 4.8, and won once, 5.4 against 6.9), lu_factor
# 3.2 against 4.2 ms at 512 (a tie at 256: 2.0 against 2.1). The triangular solves win
# from 128 on. lu, det and slogdet (lu_factor's graph and a little more) take lu_factor's
# order and lu_solve the triangular solves' 256 (not timed on their own).
CROSSOVER = {
    "cholesky": 128,
    "cho_solve": 128,
    "solve_triangular": 128,
    "lu_factor": 512,
    "lu": 512,
    "lu_solve": 256,
    "solve": 256,
    "inv": 1024,
    "det": 512,
    "slogdet": 512,
    "qr": 128,
}


def dispatch_rules() -> dict:
    """``op -> (applies, implementation)`` for ``GPU_RULES``: ``RULES`` from ``CROSSOVER`` on,
    each implementation traced once per input shape (``compiled_graphs.cached``)."""
    return {
        op: (from_order(CROSSOVER[op], applies), compiled_graphs.cached(impl))
        for op, (applies, impl) in RULES.items()
    }
