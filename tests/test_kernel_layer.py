"""The kernel layer (mlx_linalg._kernels): sources, declarations, the compile cache, launch
checks and the error without a GPU; and the MLX-op references of the small-matrix kernel
contracts (mlx_linalg._gpu.reference) against LAPACK. Runs on any machine; the kernels
themselves are compared with these references in tests/gpu."""

import threading

import mlx.core as mx
import numpy as np
import pytest
import scipy.linalg

from mlx_linalg import _kernels
from mlx_linalg._gpu import reference as ref
from mlx_linalg._gpu import small_factor
from mlx_linalg._gpu.small_factor import scaled_product

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
    pasted = "\n".join(_kernels.read_source(h) for h in ("linalg_common.h", "cholesky_tile.h"))
    assert metal.endswith(pasted)
    assert cuda.endswith(pasted)


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


# --- the MLX-op references of the kernel contracts, against LAPACK ------------------------


def _rng_stack(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_reference_matches_lapack(upper):
    a = _rng_stack((3, 7, 7), 1)
    spd = a @ np.swapaxes(a, -1, -2) + 7 * np.eye(7, dtype=np.float32)
    spd[1, 2, 2] = -50  # not positive definite at column 2
    factor, failed = ref.cholesky_small(mx.array(spd), upper=upper)
    np.testing.assert_array_equal(np.asarray(failed), [False, True, False])
    assert np.isnan(np.asarray(factor)[1]).all()
    expected = np.linalg.cholesky(spd[[0, 2]], upper=upper)
    np.testing.assert_allclose(np.asarray(factor)[[0, 2]], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m, n", [(6, 6), (7, 3), (3, 7)])
def test_lu_reference_matches_lapack(m, n):
    a = _rng_stack((3, m, n), 2)
    packed, piv, perm = ref.lu_small(mx.array(a))
    for b in range(3):
        lu, p = scipy.linalg.lu_factor(a[b])
        np.testing.assert_array_equal(np.asarray(piv)[b], p)
        np.testing.assert_allclose(np.asarray(packed)[b], lu, rtol=1e-5, atol=1e-5)
        pm, _, _ = scipy.linalg.lu(a[b])
        np.testing.assert_array_equal(a[b][np.asarray(perm)[b]], pm.T @ a[b])


def test_solve_and_inv_references_match_lapack():
    a = _rng_stack((3, 6, 6), 3) + 4 * np.eye(6, dtype=np.float32)
    a[2, :, 1] = 0  # exactly singular
    b = _rng_stack((3, 6, 2), 4)
    x, info = ref.solve_small(mx.array(a), mx.array(b))
    assert np.asarray(info)[2] == 2 and not np.asarray(info)[:2].any()
    assert np.isnan(np.asarray(x)[2]).all()
    np.testing.assert_allclose(np.asarray(x)[:2], np.linalg.solve(a[:2], b[:2]), rtol=1e-4)
    xi, _ = ref.solve_small(mx.array(a), mx.array(a), eye=True)
    np.testing.assert_allclose(np.asarray(xi)[:2], np.linalg.inv(a[:2]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("trans", [0, 1])
@pytest.mark.parametrize("unit", [False, True])
def test_trsm_reference_matches_lapack(lower, trans, unit):
    a = _rng_stack((2, 6, 6), 5) + 3 * np.eye(6, dtype=np.float32)
    b = _rng_stack((2, 6, 3), 6)
    x, info = ref.trsm_small(mx.array(a), mx.array(b), lower=lower, trans=bool(trans), unit=unit)
    for k in range(2):
        expected = scipy.linalg.solve_triangular(
            a[k], b[k], lower=lower, trans=trans, unit_diagonal=unit
        )
        np.testing.assert_allclose(np.asarray(x)[k], expected, rtol=1e-4, atol=1e-5)
    assert not np.asarray(info).any()


@pytest.mark.parametrize("trans", [0, 1])
def test_lu_solve_reference_matches_lapack(trans):
    a = _rng_stack((2, 6, 6), 7) + 3 * np.eye(6, dtype=np.float32)
    b = _rng_stack((2, 6, 4), 8)
    packed, piv, _ = ref.lu_small(mx.array(a))
    x, info = ref.lu_solve_small(packed, piv, mx.array(b), trans=bool(trans))
    for k in range(2):
        expected = scipy.linalg.lu_solve(scipy.linalg.lu_factor(a[k]), b[k], trans=trans)
        np.testing.assert_allclose(np.asarray(x)[k], expected, rtol=1e-4, atol=1e-5)
    bad = mx.array(np.full((2, 6), 9, dtype=np.int32))  # pivots out of range
    _, info = ref.lu_solve_small(packed, bad, mx.array(b), trans=bool(trans))
    np.testing.assert_array_equal(np.asarray(info), [-1, -1])


def test_determinant_product_neither_overflows_nor_underflows_early():
    """small_factor.det multiplies U's diagonal through scaled_product: runs on any device."""
    factors = np.array(
        [
            [2.0**100, 2.0**-100, 3.0],  # a running product overflows float32, the result 3
            [2.0**-80, 2.0**-80, 2.0**70],  # underflows, the result 2^-90
            [2.0**-140, 2.0**100, -1.5],  # a denormal factor
            [1e30, 1e30, 1e30],  # the product itself overflows: inf
            [0.0, 2.0**120, 2.0**120],  # an exact zero stays zero
            [np.nan, 1.0, 1.0],
        ]
    )
    got = np.asarray(scaled_product(mx.array(factors.astype(np.float32))))
    with np.errstate(over="ignore", invalid="ignore"):  # the inf and NaN rows, on purpose
        want = np.prod(factors.astype(np.float32).astype(np.float64), axis=-1).astype(np.float32)
    np.testing.assert_array_equal(got, want)


def test_split_launches_pass_shared_inputs_whole(monkeypatch):
    """A stack too large for one grid is launched in chunks of the batch: each chunk gets
    its slice of the batched inputs and every ``shared`` input whole (cholesky_panel's
    width), and the outputs are joined in batch order."""
    launches = []

    def fake_launch(name, inputs, *, template, grid, threadgroup, output_shapes):
        launches.append((name, [np.asarray(x) for x in inputs], grid))
        first = float(np.asarray(inputs[0])[0, 0, 0])
        return [mx.full(shape, first) for shape in output_shapes]

    monkeypatch.setattr(_kernels, "launch", fake_launch)
    threads, tasks = 64, 2  # width 64 and 70 rows: 1 + ceil(6 / 32) groups per matrix
    monkeypatch.setattr(_kernels, "MAX_GRID", 2 * threads * tasks)  # two matrices per launch
    a = mx.array(np.arange(5, dtype=np.float32).reshape(5, 1, 1) * np.ones((5, 70, 80)))
    factor, failed = small_factor.cholesky_panel(a, 64)
    assert [(n, x[0].shape, x[1].shape, g) for n, x, g in launches] == [
        ("cholesky_panel", (2, 70, 80), (64, 0), (2 * threads * tasks, 1, 1)),
        ("cholesky_panel", (2, 70, 80), (64, 0), (2 * threads * tasks, 1, 1)),
        ("cholesky_panel", (1, 70, 80), (64, 0), (threads * tasks, 1, 1)),
    ]
    assert factor.shape == (5, 70, 64) and failed.shape == (5,)
    assert np.asarray(factor)[:, 0, 0].tolist() == [0.0, 0.0, 2.0, 2.0, 4.0]
