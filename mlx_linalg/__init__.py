"""mlx_linalg: dense linear algebra for MLX arrays.

The complete Array API (2024.12) ``linalg`` extension plus the SciPy functions users reach
for, on stacks of matrices ``(..., M, N)``, on the GPU and the CPU.
"""

from mlx_linalg._errors import LinAlgError, errstate, geterr
from mlx_linalg._install import install, installed, uninstall
from mlx_linalg._results import (
    ChoFactorResult,
    EighResult,
    EigResult,
    LstsqResult,
    LUFactorResult,
    LUResult,
    PolarResult,
    QRResult,
    SlogdetResult,
    SVDResult,
)
from mlx_linalg.cholesky import cho_factor, cho_solve, cholesky
from mlx_linalg.eig import eig, eigvals
from mlx_linalg.eigh import eigh, eigvalsh
from mlx_linalg.lstsq import lstsq
from mlx_linalg.lu import det, lu, lu_factor, lu_solve, slogdet
from mlx_linalg.norms import matrix_norm, vector_norm
from mlx_linalg.orth import null_space, orth, polar
from mlx_linalg.products import (
    cross,
    diagonal,
    matmul,
    matrix_transpose,
    outer,
    tensordot,
    trace,
    vecdot,
)
from mlx_linalg.qr import qr
from mlx_linalg.solve import inv, matrix_power, solve
from mlx_linalg.svd import cond, matrix_rank, pinv, svd, svdvals
from mlx_linalg.triangular import solve_triangular

__version__ = "0.1.0"

__all__ = [
    "ChoFactorResult",
    "EigResult",
    "EighResult",
    "LUFactorResult",
    "LUResult",
    "LinAlgError",
    "LstsqResult",
    "PolarResult",
    "QRResult",
    "SVDResult",
    "SlogdetResult",
    "cho_factor",
    "cho_solve",
    "cholesky",
    "cond",
    "cross",
    "det",
    "diagonal",
    "eig",
    "eigh",
    "eigvals",
    "eigvalsh",
    "errstate",
    "geterr",
    "install",
    "installed",
    "inv",
    "lstsq",
    "lu",
    "lu_factor",
    "lu_solve",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "matrix_transpose",
    "null_space",
    "orth",
    "outer",
    "pinv",
    "polar",
    "qr",
    "slogdet",
    "solve",
    "solve_triangular",
    "svd",
    "svdvals",
    "tensordot",
    "trace",
    "uninstall",
    "vecdot",
    "vector_norm",
]
