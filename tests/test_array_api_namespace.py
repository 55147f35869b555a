"""``mlx_linalg.array_api`` outside linalg: what it adds to or fixes in ``mlx.core`` for the
standard (device and copy keywords, inspection, dtype functions, missing functions and
keyword forms, data-dependent functions), each checked against NumPy or the standard's text.
"""

import math

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mlx_linalg
import mlx_linalg.array_api as xp

FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None)


def _np(x) -> np.ndarray:
    return np.asarray(x)


# ---------------------------------------------------------------- namespace surface


def test_namespace_metadata():
    assert xp.__array_api_version__ == "2024.12"
    assert xp.linalg is mlx_linalg
    assert xp.bool is mx.bool_
    for name in xp.__all__:
        assert hasattr(xp, name), name


def test_every_standard_name_is_present():
    strict = pytest.importorskip("array_api_strict")
    strict.set_array_api_strict_flags(api_version="2024.12")
    try:
        names = {n for n in strict.__all__ if not n.startswith("_") and "strict" not in n.lower()}
    finally:
        strict.reset_array_api_strict_flags()
    # Not offered: complex128 (MLX has no such dtype), fft (not this package's extension),
    # broadcast_shapes (2025.12) and array-api-strict's own Device class.
    absent = {"complex128", "fft", "broadcast_shapes", "Device"}
    assert sorted(n for n in names - absent if not hasattr(xp, n)) == []


# ---------------------------------------------------------------- devices and creation


@pytest.mark.parametrize("device", [None, "cpu", mx.cpu, mx.Device(mx.cpu, 0)])
def test_creation_accepts_device(device):
    assert xp.asarray([1.0, 2.0], device=device).dtype == mx.float32
    assert xp.arange(3, device=device).dtype == mx.int32
    assert xp.arange(0.0, 1.0, 0.25, device=device).shape == (4,)
    assert xp.zeros((2, 3), device=device).shape == (2, 3)
    assert xp.ones((2,), dtype=xp.int8, device=device).dtype == mx.int8
    assert xp.empty((0, 2), device=device).shape == (0, 2)
    assert xp.full((2,), 3, device=device).dtype == mx.int32
    assert xp.full((2,), 1.5, device=device).dtype == mx.float32
    assert xp.full((2,), True, device=device).dtype == mx.bool_
    assert xp.full((1,), 1j, device=device).dtype == mx.complex64
    np.testing.assert_array_equal(_np(xp.eye(2, 3, k=1, device=device)), np.eye(2, 3, k=1))
    np.testing.assert_allclose(_np(xp.linspace(0, 1, 5, device=device)), np.linspace(0, 1, 5))
    np.testing.assert_allclose(
        _np(xp.linspace(0, 1, 4, endpoint=False, device=device)), [0, 0.25, 0.5, 0.75]
    )
    like = xp.ones((2, 2), dtype=xp.int16)
    for f in (xp.zeros_like, xp.ones_like, xp.empty_like):
        assert f(like, device=device).dtype == mx.int16
    assert xp.full_like(like, 7, device=device).dtype == mx.int16


def test_bad_device_is_a_clear_error():
    with pytest.raises(ValueError, match=r"^\[mlx_linalg.array_api.zeros\] expected a device"):
        xp.zeros(3, device="tpu")
    if not mx.is_available(mx.gpu):
        with pytest.raises(ValueError, match="not available"):
            xp.zeros(3, device="gpu")


def test_device_and_to_device():
    x = xp.ones(3)
    assert xp.device(x) == mx.default_device()
    assert xp.to_device(x, "cpu") is x
    with pytest.raises(ValueError, match="stream"):
        xp.to_device(x, "cpu", stream=1)


def test_asarray_copy_semantics():
    x = mx.arange(4)
    assert xp.asarray(x) is x
    assert xp.asarray(x, copy=False) is x  # mx.asarray raises here
    y = xp.asarray(x, copy=True)
    assert y is not x
    y[0] = 9
    assert int(x[0]) == 0
    with pytest.raises(ValueError, match="copy=False"):
        xp.asarray(x, dtype=xp.float32, copy=False)
    assert xp.asarray(x, dtype=xp.float32).dtype == mx.float32
    with pytest.raises(ValueError):
        xp.asarray(np.ones(3, np.float32), copy=False)  # MLX cannot alias host memory
    assert xp.asarray(np.ones(3)).dtype == mx.float64  # inferred, not narrowed to float32
    assert xp.asarray(np.float64(1.0)).dtype == mx.float64
    assert xp.asarray([1.0, 2.0]).dtype == mx.float32
    assert xp.asarray(True).dtype == mx.bool_


def test_astype_copy():
    x = mx.ones(3)
    assert xp.astype(x, xp.float32, copy=False) is x
    assert xp.astype(x, xp.float32) is not x
    assert xp.astype(x, xp.int32).dtype == mx.int32


# ---------------------------------------------------------------- inspection


def test_namespace_info():
    info = xp.__array_namespace_info__()
    caps = info.capabilities()
    assert caps["data-dependent shapes"] is True
    assert caps["boolean indexing"] is False  # MLX rejects masks unless installed
    assert caps["max dimensions"] is None
    assert info.default_device() == mx.default_device()
    assert mx.Device(mx.cpu, 0) in info.devices()
    assert info.default_dtypes() == {
        "real floating": mx.float32,
        "complex floating": mx.complex64,
        "integral": mx.int32,
        "indexing": mx.int32,
    }
    assert set(info.dtypes(kind="real floating")) == {"float32", "float64"}
    assert set(info.dtypes(kind=("bool", "complex floating"))) == {"bool", "complex64"}
    assert "bool" not in info.dtypes(kind="numeric")
    assert len(info.dtypes()) == 12
    assert info.dtypes(device="cpu", kind="signed integer") == {
        "int8": mx.int8,
        "int16": mx.int16,
        "int32": mx.int32,
        "int64": mx.int64,
    }
    with pytest.raises(ValueError, match="unknown dtype kind"):
        info.dtypes(kind="real")


# ---------------------------------------------------------------- dtype functions


def test_dtype_functions():
    assert xp.finfo(xp.ones(2)).eps == np.finfo(np.float32).eps
    assert xp.iinfo(xp.arange(2)).max == np.iinfo(np.int32).max
    assert xp.isdtype(xp.float32, "real floating")
    assert xp.isdtype(xp.int8, ("bool", "signed integer"))
    assert not xp.isdtype(xp.uint8, "signed integer")
    with pytest.raises(TypeError, match="expected a dtype"):
        xp.isdtype("float32", "real floating")
    assert xp.can_cast(xp.ones(2, dtype=xp.int8), xp.int32)
    assert xp.result_type(xp.int8, xp.int16) == mx.int16
    # Python scalars join the array's kind without changing its dtype (2024.12).
    assert xp.result_type(xp.ones(2, dtype=xp.int8), 3) == mx.int8
    assert xp.result_type(xp.ones(2, dtype=xp.float32), 1.5) == mx.float32
    assert xp.result_type(xp.ones(2, dtype=xp.int8), 1.5) == mx.float32
    assert xp.result_type(xp.ones(2, dtype=xp.float32), 1j) == mx.complex64
    with pytest.raises(ValueError, match="at least one"):
        xp.result_type()


# ---------------------------------------------------------------- functions MLX lacks


finite32 = st.floats(-1e6, 1e6, width=32, allow_subnormal=False)


@FAST
@given(hnp.arrays(np.float32, st.integers(1, 8), elements=finite32 | st.just(-0.0)))
def test_signbit_copysign(a):
    np.testing.assert_array_equal(_np(xp.signbit(mx.array(a))), np.signbit(a))
    b = a[::-1].copy()
    np.testing.assert_array_equal(_np(xp.copysign(mx.array(a), mx.array(b))), np.copysign(a, b))


@FAST
@given(
    hnp.arrays(np.float32, 5, elements=finite32),
    hnp.arrays(np.float32, 5, elements=finite32),
)
def test_hypot_nextafter(a, b):
    np.testing.assert_allclose(_np(xp.hypot(mx.array(a), mx.array(b))), np.hypot(a, b), rtol=2e-7)
    np.testing.assert_array_equal(_np(xp.nextafter(mx.array(a), mx.array(b))), np.nextafter(a, b))


def test_hypot_no_overflow_and_inf():
    big = xp.asarray([2e38, float("inf"), 1e-30])
    np.testing.assert_allclose(
        _np(xp.hypot(big, xp.asarray([2e38, float("nan"), 1e-30]))),
        np.hypot(np.float32([2e38, np.inf, 1e-30]), np.float32([2e38, np.nan, 1e-30])),
        rtol=1e-6,
    )


@FAST
@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
               elements=st.floats(-100, 100, width=32)),
    st.sampled_from([0, 1, 1.5]),
)  # fmt: skip
def test_var_std_correction(a, correction):
    n = a.size
    if n - correction <= 0:
        return
    np.testing.assert_allclose(
        _np(xp.var(mx.array(a), correction=correction)),
        np.var(a.astype(np.float64), ddof=correction),
        rtol=1e-4,
        atol=1e-3,
    )
    np.testing.assert_allclose(
        _np(xp.std(mx.array(a), axis=0, correction=correction, keepdims=True)),
        np.std(a.astype(np.float64), axis=0, ddof=correction, keepdims=True)
        if a.shape[0] - correction > 0
        else _np(xp.std(mx.array(a), axis=0, correction=correction, keepdims=True)),
        rtol=1e-4,
        atol=1e-3,
    )


def test_sum_prod_dtype():
    x = xp.asarray([100, 100], dtype=xp.int8)
    assert xp.sum(x, dtype=xp.int32).item() == 200
    assert xp.prod(x, dtype=xp.int64).item() == 10000
    assert xp.sum(xp.ones((2, 3)), axis=(0, 1)).item() == 6
    small = xp.sum(x, dtype=xp.int8)  # the requested dtype, wrapping: 200 - 256
    assert small.dtype == xp.int8 and small.item() == -56
    assert xp.prod(x, dtype=xp.int16).dtype == xp.int16


def test_cumulative():
    x = xp.asarray([1, 2, 3])
    np.testing.assert_array_equal(_np(xp.cumulative_sum(x)), [1, 3, 6])
    np.testing.assert_array_equal(_np(xp.cumulative_sum(x, include_initial=True)), [0, 1, 3, 6])
    np.testing.assert_array_equal(_np(xp.cumulative_prod(x, include_initial=True)), [1, 1, 2, 6])
    m = xp.reshape(xp.arange(6), (2, 3))
    np.testing.assert_array_equal(
        _np(xp.cumulative_sum(m, axis=1, include_initial=True)),
        [[0, 0, 1, 3], [0, 3, 7, 12]],
    )
    with pytest.raises(ValueError, match="axis is required"):
        xp.cumulative_sum(m)


def test_diff_prepend_append():
    x = xp.asarray([1, 4, 9])
    np.testing.assert_array_equal(
        _np(xp.diff(x, prepend=xp.asarray([0]), append=xp.asarray([16]))),
        np.diff([1, 4, 9], prepend=0, append=16),
    )


@FAST
@given(hnp.arrays(np.int32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
                  elements=st.integers(-3, 3)))  # fmt: skip
def test_sort_argsort_descending_stable(a):
    x = mx.array(a)
    np.testing.assert_array_equal(_np(xp.sort(x, descending=True)), -np.sort(-a, axis=-1))
    idx = _np(xp.argsort(x, descending=True))
    assert idx.dtype == np.int32
    np.testing.assert_array_equal(idx, np.argsort(-a, axis=-1, kind="stable"))
    np.testing.assert_array_equal(_np(xp.argsort(x)), np.argsort(a, axis=-1, kind="stable"))


def test_searchsorted_sorter_and_side():
    x1 = xp.asarray([3, 1, 2])
    sorter = xp.argsort(x1)
    x2 = xp.asarray([2, 3])
    np.testing.assert_array_equal(
        _np(xp.searchsorted(x1, x2, sorter=sorter)),
        np.searchsorted([3, 1, 2], [2, 3], sorter=[1, 2, 0]),
    )
    np.testing.assert_array_equal(
        _np(xp.searchsorted(xp.asarray([1, 2, 2]), xp.asarray([2]), side="right")), [3]
    )
    with pytest.raises(ValueError, match="side"):
        xp.searchsorted(x1, x2, side="middle")


def test_clip_roll_reshape_take_along_axis():
    x = xp.asarray([-2.0, 0.5, 3.0])
    np.testing.assert_array_equal(_np(xp.clip(x, min=-1, max=1)), [-1, 0.5, 1])
    np.testing.assert_array_equal(_np(xp.clip(x, max=0)), [-2, 0, 0])
    assert xp.clip(x) is x
    np.testing.assert_array_equal(_np(xp.roll(xp.arange(4), 1)), [3, 0, 1, 2])
    np.testing.assert_array_equal(
        _np(xp.roll(xp.reshape(xp.arange(4), (2, 2)), shift=1, axis=1)), [[1, 0], [3, 2]]
    )
    y = xp.reshape(x, (3, 1), copy=True)
    assert y.shape == (3, 1)
    idx = xp.asarray([[1], [0]])
    np.testing.assert_array_equal(
        _np(xp.take_along_axis(xp.asarray([[1, 2], [3, 4]]), idx, axis=1)), [[2], [3]]
    )


# ---------------------------------------------------------------- data-dependent shapes


@FAST
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
                  elements=st.sampled_from([0.0, 1.0, 2.5, np.nan])))  # fmt: skip
def test_unique_functions_match_numpy(a):
    x = mx.array(a)
    values, index, inverse, counts = np.unique(
        a.ravel(), return_index=True, return_inverse=True, return_counts=True, equal_nan=False
    )
    res = xp.unique_all(x)
    assert res._fields == ("values", "indices", "inverse_indices", "counts")
    np.testing.assert_array_equal(_np(res.values), values)
    np.testing.assert_array_equal(_np(res.indices), index)
    np.testing.assert_array_equal(_np(res.inverse_indices), inverse.reshape(a.shape))
    np.testing.assert_array_equal(_np(res.counts), counts)
    assert res.counts.dtype == mx.int32
    assert xp.unique_counts(x)._fields == ("values", "counts")
    assert xp.unique_inverse(x)._fields == ("values", "inverse_indices")
    assert xp.unique_inverse(x).inverse_indices.shape == x.shape
    np.testing.assert_array_equal(_np(xp.unique_values(x)), values)
    # Every NaN is its own value, as the standard asks.
    assert int(np.isnan(_np(xp.unique_values(x))).sum()) == int(np.isnan(a).sum())


def test_nonzero_repeat_isin():
    x = xp.asarray([[0, 1], [2, 0]])
    rows, cols = xp.nonzero(x)
    np.testing.assert_array_equal(_np(rows), [0, 1])
    np.testing.assert_array_equal(_np(cols), [1, 0])
    with pytest.raises(ValueError, match="at least 1-D"):
        xp.nonzero(xp.asarray(1))
    np.testing.assert_array_equal(_np(xp.repeat(xp.asarray([1, 2]), 2)), [1, 1, 2, 2])
    np.testing.assert_array_equal(_np(xp.repeat(xp.asarray([1, 2]), xp.asarray([0, 3]))), [2, 2, 2])
    np.testing.assert_array_equal(
        _np(xp.isin(xp.asarray([1, 2, 3]), xp.asarray([3, 1]))), [True, False, True]
    )
    np.testing.assert_array_equal(
        _np(xp.isin(xp.asarray([1, 2, 3]), xp.asarray([3, 1]), invert=True)),
        [False, True, False],
    )


def test_meshgrid_tril_triu():
    a, b = xp.meshgrid(xp.arange(2), xp.arange(3), indexing="ij")
    assert a.shape == (2, 3) and b.shape == (2, 3)
    with pytest.raises(ValueError, match="indexing"):
        xp.meshgrid(xp.arange(2), indexing="xyz")
    m = xp.ones((2, 3, 3))
    np.testing.assert_array_equal(_np(xp.tril(m, k=-1)), np.tril(np.ones((2, 3, 3)), -1))
    np.testing.assert_array_equal(_np(xp.triu(m, k=1)), np.triu(np.ones((2, 3, 3)), 1))


# ---------------------------------------------------------------- errors through the namespace


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda ns: ns.linalg.cholesky(ns.ones((3, 4))), ValueError),
        (lambda ns: ns.linalg.solve(ns.eye(3), ns.ones((4,))), ValueError),
        (lambda ns: ns.linalg.inv(ns.ones((2, 2), dtype=ns.int32)), TypeError),
        (lambda ns: ns.linalg.qr(ns.ones((3, 3)), mode="r"), ValueError),
        (lambda ns: ns.linalg.matrix_norm(ns.ones((3, 3)), ord=3), ValueError),
    ],
)
def test_errors_match_direct_calls(call, exc):
    with pytest.raises(exc) as direct:
        call(_Direct)
    with pytest.raises(exc) as via_namespace:
        call(xp)
    assert str(via_namespace.value) == str(direct.value)
    assert str(direct.value).startswith("[mlx_linalg.")


class _Direct:
    """The same calls spelled against mlx_linalg and mlx.core directly."""

    linalg = mlx_linalg
    int32 = mx.int32

    @staticmethod
    def ones(shape, dtype=mx.float32):
        return mx.ones(shape, dtype=dtype)

    @staticmethod
    def eye(n):
        return mx.eye(n)


def test_math_constants():
    assert xp.pi == math.pi and xp.e == math.e
    assert math.isinf(xp.inf) and math.isnan(xp.nan)
    assert xp.newaxis is None


@pytest.mark.parametrize(
    ("source", "destination"),
    [(0, -1), ((0, 1), (1, 0)), ((0, 2), (2, 0)), ((-1,), (0,)), ((0, 1), (2, 1))],
)
def test_moveaxis_tuples(source, destination):
    a = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(
        _np(xp.moveaxis(mx.array(a), source, destination)), np.moveaxis(a, source, destination)
    )
    with pytest.raises(ValueError, match="same length"):
        xp.moveaxis(mx.array(a), (0, 1), (1,))
