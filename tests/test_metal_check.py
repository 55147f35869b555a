"""The C++ check of the Metal kernel bodies (tools/metal_check): it passes every shipped
kernel and rejects a body with an undeclared name or a syntax error."""

import importlib.util
import shutil
from pathlib import Path

import pytest

from mlx_linalg import _kernels

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("metal_check", ROOT / "tools/metal_check/check.py")
metal_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(metal_check)

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")

GOOD = """// @kernel toy
// @inputs A:float32
// @outputs out:float32
// @template NMAX:int
// @headers linalg_common.h
// @check NMAX=32
const int n = A_shape[0];
const uint i = thread_position_in_grid.x;
threadgroup float tile[NMAX];
tile[thread_index_in_threadgroup % NMAX] = 0.0f;
threadgroup_barrier(mem_flags::mem_threadgroup);
if (i < (uint)n) {
  out[i] = simd_sum(metal::sqrt(metal::abs(A[i]))) + tile[0];
}
"""


def _results(body: str, mode: str = "metal"):
    return metal_check.check(_kernels.parse_spec("toy", body), mode)


@needs_gxx
@pytest.mark.parametrize("name", _kernels.kernel_names())
def test_shipped_kernels_compile(name):
    for instance, ok, output in metal_check.check(_kernels.spec(name), "metal"):
        assert ok, f"{name} {instance}:\n{output}"


@needs_gxx
def test_good_body_compiles():
    assert all(ok for _, ok, _ in _results(GOOD))


@needs_gxx
@pytest.mark.parametrize(
    "bad, expected",
    [
        (GOOD.replace("metal::sqrt", "metal::sqrtt"), "sqrtt"),  # undeclared function
        (GOOD.replace("simd_sum(", "warp_sum("), "warp_sum"),  # CUDA-ism Metal lacks
        (GOOD.replace("out[i] =", "outt[i] ="), "outt"),  # undeclared variable
        (GOOD.replace("std::", "").replace("metal::abs", "std::abs"), "std"),  # no std
        (
            GOOD.replace(
                "tile[thread_index_in_threadgroup % NMAX] = 0.0f;",
                "tile[thread_index_in_threadgroup % NMAX] = 0.0f",
            ),
            "expected",
        ),
        (GOOD.replace("if (i < (uint)n) {", "if (i < (uint)n {"), "expected"),
        (
            GOOD.replace("threadgroup_barrier(mem_flags::mem_threadgroup)", "__syncthreads()"),
            "__syncthreads",
        ),
    ],
)
def test_check_rejects_bad_body(bad, expected):
    results = _results(bad)
    assert not any(ok for _, ok, _ in results)
    assert expected in results[0][2]


@needs_gxx
def test_check_declares_only_the_attributes_the_body_names():
    # MLX adds an attribute only when the body names it; so does the check. A body that
    # takes the lane from a helper argument name that MLX would not declare fails.
    body = GOOD.replace("thread_index_in_threadgroup", "thread_index")
    assert not any(ok for _, ok, _ in _results(body))
    source = metal_check.metal_source(_kernels.parse_spec("toy", GOOD), (("NMAX", 32),))
    assert "uint3 thread_position_in_grid" in source
    assert "uint thread_index_in_threadgroup" in source
    assert "simdgroup_index_in_threadgroup" not in source
    assert "const constant int* A_shape" in source


@needs_nvcc
@pytest.mark.parametrize("name", _kernels.kernel_names())
def test_shipped_kernels_compile_for_cuda(name):
    for instance, ok, output in metal_check.check(_kernels.spec(name), "cuda"):
        assert ok, f"{name} {instance}:\n{output}"


@needs_nvcc
def test_cuda_check_rejects_bad_body():
    results = _results(GOOD.replace("metal::sqrt", "metal::sqrtt"), "cuda")
    assert not any(ok for _, ok, _ in results)
