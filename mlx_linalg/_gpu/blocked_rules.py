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

# The smallest order max(M, N) at which the blocked graph beat mlx_linalg's CPU path (LAPACK,
# 16 cores) on one H100, float32, one matrix (tools/bench_blocked.py, docs/kernels-blocked.md):
# e.g. cholesky 2.5 against 3.4 ms at 512, solve 23 against 26 ms at 1024, inv 62 against
# 65 ms at 2048, qr 33 against 56 ms at 1024. The triangular solves win from 256 on. inv
# re-measured with compiled graphs on an H200 machine (16 cores): 8.0 against 16.1 ms at
# 1024.
CROSSOVER = {
    "cholesky": 512,
    "cho_solve": 256,
    "solve_triangular": 256,
    "lu_factor": 2048,
    "lu": 2048,
    "lu_solve": 256,
    "solve": 1024,
    "inv": 1024,
    "det": 2048,
    "slogdet": 2048,
    "qr": 1024,
}


def dispatch_rules() -> dict:
    """``op -> (applies, implementation)`` for ``GPU_RULES``: ``RULES`` from ``CROSSOVER`` on,
    each implementation traced once per input shape (``compiled_graphs.cached``)."""
    return {
        op: (from_order(CROSSOVER[op], applies), compiled_graphs.cached(impl))
        for op, (applies, impl) in RULES.items()
    }
