"""What the GPU backends lack, and where mlx_linalg runs it instead (mlx_linalg._devices)."""

import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg as la
from mlx_linalg import _devices

PUBLIC_FUNCTIONS = [
    name
    for name in la.__all__
    if name[0].islower() and name not in ("errstate", "geterr", "install", "installed", "uninstall")
]


def _record_stream(*args, stream=None):
    return stream, mx.default_stream(mx.default_device())


@pytest.mark.parametrize("x", [mx.ones((2, 2), mx.float64), np.ones((2, 2))], ids=["mlx", "numpy"])
def test_float64_runs_on_the_cpu_stream(x):
    stream, default = _devices.float64_on_cpu(_record_stream)(mx.ones((2, 2)), x, stream=mx.gpu)
    assert stream == mx.cpu
    assert default.device == mx.cpu


def test_float64_inside_a_tuple_argument_counts():
    """cho_solve's (c, lower) and lu_solve's (lu, piv) carry the factor in a tuple."""
    factor = (mx.ones((2, 2), mx.float64), True)
    stream, _ = _devices.float64_on_cpu(_record_stream)(factor, mx.ones(2), stream=mx.gpu)
    assert stream == mx.cpu


def test_other_dtypes_keep_their_stream():
    wrapped = _devices.float64_on_cpu(_record_stream)
    assert wrapped(mx.ones((2, 2)), np.ones(2, np.float32), stream=mx.gpu)[0] == mx.gpu
    assert wrapped(mx.ones((2, 2), mx.complex64))[0] is None


def _float64_calls():
    a = mx.array(np.eye(3) * 2 + 0.1, mx.float64)
    v = mx.array([1.0, 2.0, 3.0], mx.float64)
    lu_piv = la.lu_factor(a)
    factor = la.cho_factor(a)
    return {
        "cho_factor": (a,),
        "cho_solve": (factor, v),
        "cholesky": (a,),
        "cond": (a,),
        "cross": (v, v),
        "det": (a,),
        "diagonal": (a,),
        "eig": (a,),
        "eigh": (a,),
        "eigvals": (a,),
        "eigvalsh": (a,),
        "inv": (a,),
        "lstsq": (a, v),
        "lu": (a,),
        "lu_factor": (a,),
        "lu_solve": (lu_piv, v),
        "matmul": (a, a),
        "matrix_norm": (a,),
        "matrix_power": (a, 3),
        "matrix_rank": (a,),
        "matrix_transpose": (a,),
        "null_space": (a,),
        "orth": (a,),
        "outer": (v, v),
        "pinv": (a,),
        "polar": (a,),
        "qr": (a,),
        "slogdet": (a,),
        "solve": (a, v),
        "solve_triangular": (a, v),
        "svd": (a,),
        "svdvals": (a,),
        "tensordot": (a, a),
        "trace": (a,),
        "vecdot": (v, v),
        "vector_norm": (v,),
    }


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_every_public_function_sends_float64_to_the_cpu(name):
    """Wrapped by float64_on_cpu, and ``stream=mx.gpu`` with float64 input works: without a
    GPU backend every op on the GPU stream raises, so everything ran on the CPU stream."""
    assert getattr(la, name).__wrapped__.__name__ == name
    outputs = getattr(la, name)(*_float64_calls()[name], stream=mx.gpu)
    mx.eval(outputs)


def test_complex_identity():
    np.testing.assert_array_equal(
        np.asarray(_devices.eye(3, 2, dtype=mx.complex64)), np.eye(3, 2, dtype=np.complex64)
    )
