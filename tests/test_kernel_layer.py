"""The kernel layer (mlx_linalg._kernels): sources, declarations, the compile cache, launch
checks and the error without a GPU. Runs on any machine; kernel results are tested in
tests/gpu."""

import threading

import mlx.core as mx
import pytest

from mlx_linalg import _kernels

DECL = """// @kernel toy
// @inputs A:float32 piv:int32
// @outputs X:float32 info:int32
// @template NMAX:int UPPER:bool
// @headers linalg_common.h
// @check NMAX=8,UPPER=false NMAX=64,UPPER=true
X[0] = A[0];
"""


def test_every_kernel_declares_itself():
    names = _kernels.kernel_names()
    assert "cholesky_small" in names
    for name in names:
        spec = _kernels.spec(name)
        assert spec.name == name
        assert spec.outputs, name
        for h in spec.headers:
            assert _kernels.read_source(h), (name, h)
        for instance in spec.checks:
            assert [t for t, _ in instance] == [t for t, _ in spec.template]


def test_sources_and_headers_load():
    for name in ("metal_prelude.h", "cuda_compat.h", "linalg_common.h"):
        assert len(_kernels.read_source(name)) > 100
    with pytest.raises(FileNotFoundError, match=r"\[mlx_linalg.kernels\] no kernel source"):
        _kernels.read_source("missing.metal")


def test_parse_spec_reads_declaration():
    spec = _kernels.parse_spec("toy", DECL)
    assert spec.inputs == (("A", "float32"), ("piv", "int32"))
    assert spec.outputs == (("X", "float32"), ("info", "int32"))
    assert spec.template == (("NMAX", "int"), ("UPPER", "bool"))
    assert spec.headers == ("linalg_common.h",)
    assert spec.checks == ((("NMAX", 8), ("UPPER", False)), (("NMAX", 64), ("UPPER", True)))


@pytest.mark.parametrize(
    "edit, message",
    [
        (("// @kernel toy", "// @kernel other"), "declares @kernel other"),
        (("// @inputs A:float32 piv:int32\n", ""), "missing // @inputs"),
        (("A:float32", "A:float64"), "bad @inputs entry"),
        (("NMAX=8,UPPER=false", "NMAX=8"), "must set exactly"),
        (("UPPER=false", "UPPER=no"), "bool template value"),
        (("// @check NMAX=8,UPPER=false NMAX=64,UPPER=true\n", ""), "needs @check"),
        (("// @headers", "// @outputs Y:float32\n// @headers"), "given twice"),
    ],
)
def test_parse_spec_rejects_bad_declarations(edit, message):
    with pytest.raises(ValueError, match=message):
        _kernels.parse_spec("toy", DECL.replace(*edit))


def test_headers_per_backend():
    spec = _kernels.spec("cholesky_small")
    metal = _kernels.header(spec, "metal")
    cuda = _kernels.header(spec, "cuda")
    assert metal.startswith(_kernels.read_source("metal_prelude.h"))
    assert cuda.startswith(_kernels.read_source("cuda_compat.h"))
    assert metal.endswith(_kernels.read_source("linalg_common.h"))
    assert cuda.endswith(_kernels.read_source("linalg_common.h"))


def test_cuda_compat_defines_every_attribute():
    compat = _kernels.read_source("cuda_compat.h")
    for name, _ in _kernels.ATTRIBUTES:
        if name.startswith(("dispatch_", "quadgroup", "grid_", "thread_index_in_quad")):
            continue  # Metal-only, not used by any kernel: absent on purpose
        assert f"#define {name} " in compat, name


def test_compile_cache_builds_once_per_template(monkeypatch):
    built = []

    def fake_build(spec, which):
        built.append((spec.name, which))
        return object()

    monkeypatch.setattr(_kernels, "backend", lambda: "cuda")
    monkeypatch.setattr(_kernels, "_build", fake_build)
    monkeypatch.setattr(_kernels, "_compiled", {})
    key = (("NMAX", 32), ("UPPER", False))
    results = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        results.append(_kernels.compiled("cholesky_small", key))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in results}) == 1
    other = _kernels.compiled("cholesky_small", (("NMAX", 64), ("UPPER", False)))
    assert other is not results[0]
    assert _kernels.compiled("cholesky_small", key) is results[0]
    assert len(_kernels._compiled) == 2


@pytest.mark.skipif(mx.is_available(mx.gpu), reason="checks the error on a machine without GPU")
def test_clear_error_without_gpu():
    a = mx.zeros((2, 4, 4))
    with pytest.raises(RuntimeError, match=r"\[mlx_linalg.kernels\] no GPU backend"):
        _kernels.launch(
            "cholesky_small",
            [a],
            template={"NMAX": 8, "UPPER": False},
            grid=(64, 1, 1),
            threadgroup=(32, 1, 1),
            output_shapes=[(2, 4, 4), (2,)],
        )


@pytest.mark.parametrize(
    "change, exc, message",
    [
        ({"inputs": [mx.zeros((2, 4, 4), dtype=mx.float16)]}, TypeError, "must be float32"),
        ({"inputs": []}, ValueError, "expected 1 inputs"),
        ({"template": {"NMAX": 8}}, ValueError, "expected template arguments"),
        ({"template": {"NMAX": 8.0, "UPPER": False}}, TypeError, "must be an int"),
        ({"template": {"NMAX": 8, "UPPER": 1}}, TypeError, "must be a bool"),
        ({"threadgroup": (48, 1, 1)}, ValueError, "multiple of 32"),
        ({"threadgroup": (2048, 1, 1)}, ValueError, "at most 1024"),
        ({"grid": (0, 1, 1)}, ValueError, "out of range"),
    ],
)
def test_launch_checks_arguments_before_compiling(change, exc, message):
    arguments = dict(
        inputs=[mx.zeros((2, 4, 4))],
        template={"NMAX": 8, "UPPER": False},
        grid=(64, 1, 1),
        threadgroup=(32, 1, 1),
        output_shapes=[(2, 4, 4), (2,)],
    )
    arguments.update(change)
    with pytest.raises(exc, match=message):
        _kernels.launch("cholesky_small", **arguments)
