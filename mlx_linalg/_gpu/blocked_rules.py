"""The dispatch rules of the blocked large-matrix algorithms, ready for ``GPU_RULES``.

Not wired in yet: they go into ``mlx_linalg._dispatch.GPU_RULES`` after the small-matrix
rules (which take n <= 64) once tests/gpu/test_blocked_gpu.py has passed on a GPU and
tools/bench_blocked.py has shown them faster than the CPU path::

    for op, rule in blocked_rules.RULES.items():
        GPU_RULES.setdefault(op, []).append(rule)

Each predicate accepts non-empty float32 stacks with max(M, N) > 64 (square where the op
needs it, non-empty right-hand sides for the solves); everything else keeps its current
route.
"""

from mlx_linalg._gpu import blocked_cholesky, blocked_lu, blocked_qr, blocked_triangular
from mlx_linalg._gpu.blocked_common import applies_matrix, applies_rhs, applies_square

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
