"""Checks of the official Array API test suite's linalg tests (data-apis/array-api-tests,
``array_api_tests/test_linalg.py``), reproduced check for check for any namespace ``ns``.

The official suite is not on PyPI and is not vendored; these functions restate what each of
its linalg tests asserts (shapes, dtypes, NamedTuple fields, triangularity, sortedness,
"the result maps over stacks", exact values for integer inputs, errors for invalid shapes).
Each ``check_<name>`` mirrors the official ``test_<name>``; the hypothesis strategies
(``cases_<name>``) draw inputs the way the official ones do, with small sizes. Floating-point
dtypes are float32 and complex64 (what MLX's GPUs have).

Where the official test asserts ``out.dtype == x.dtype`` for outputs the 2024.12 standard
defines as real (``svd().S``, ``eigh().eigenvalues``, norms of complex input), the standard's
real dtype is checked instead; the official strategies draw only real dtypes there.

Used by tests/test_array_api_linalg.py for ``mlx_linalg.array_api`` and, through
``python tests/test_array_api_linalg.py``, to measure MLX's own namespace on the same checks.
"""

import itertools
import math

import mlx.core as mx
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOATS = (np.float32, np.complex64)
REAL_FLOATS = (np.float32,)
INTS = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
REALS = INTS + REAL_FLOATS
NUMERIC = INTS + FLOATS
SCALAR = (np.bool_,) + NUMERIC
MAX_SIDE = 4
MAX_ARRAY_SIZE = 64

# ---------------------------------------------------------------- strategies


def _elements(dtype) -> st.SearchStrategy:
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(max(info.min, -8), min(info.max, 8))
    if dtype.kind == "c":
        part = st.floats(-8, 8, width=32)
        return st.builds(complex, part, part)
    return st.floats(-8, 8, width=32)


def np_arrays(dtype, shape) -> st.SearchStrategy:
    """Finite NumPy arrays with small values (mirrors the suite's finite ``arrays``)."""
    return hnp.arrays(dtype, shape, elements=_elements(dtype))


stack_shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)
matrix_shapes = st.tuples(stack_shapes, st.integers(0, MAX_SIDE), st.integers(0, MAX_SIDE)).map(
    lambda t: t[0] + (t[1], t[2])
)
square_shapes = st.tuples(stack_shapes, st.integers(0, MAX_SIDE)).map(lambda t: t[0] + (t[1], t[1]))


@st.composite
def mutual_dtypes(draw, dtypes):
    """Two dtypes the standard promotes together (same kind, and not uint/int mixes)."""
    first = draw(st.sampled_from(dtypes))
    kind = np.dtype(first).kind
    floating = {"f", "c"}
    peers = [
        d
        for d in dtypes
        if np.dtype(d).kind == kind or (np.dtype(d).kind in floating and kind in floating)
    ]
    return first, draw(st.sampled_from(peers))


def _hermitian_part(a: np.ndarray) -> np.ndarray:
    return (a + np.conj(np.swapaxes(a, -1, -2))) / 2


@st.composite
def symmetric_matrices(draw, dtypes=FLOATS):
    dtype = draw(st.sampled_from(dtypes))
    a = draw(np_arrays(dtype, draw(square_shapes)))
    return _hermitian_part(a).astype(dtype)


@st.composite
def positive_definite_matrices(draw, dtypes=FLOATS):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(square_shapes)
    a = draw(np_arrays(dtype, shape)).astype(np.complex128)
    n = shape[-1]
    spd = _hermitian_part(a @ np.conj(np.swapaxes(a, -1, -2)) + (n + 1) * np.eye(n))
    return (spd if np.dtype(dtype).kind == "c" else spd.real).astype(dtype)


@st.composite
def invertible_matrices(draw, dtypes=FLOATS, stack=None, dtype=None):
    dtype = dtype or draw(st.sampled_from(dtypes))
    n = draw(st.integers(0, MAX_SIDE))
    shape = (draw(stack_shapes) if stack is None else stack) + (n, n)
    a = draw(np_arrays(dtype, shape))
    # Strict diagonal dominance: |a_ii| > sum_j |a_ij| makes every matrix invertible.
    bump = 8 * max(n, 1) + 1
    return (a + bump * np.eye(n, dtype=dtype)).astype(dtype)


@st.composite
def finite_matrices(draw, dtypes=FLOATS, shape=None):
    dtype = draw(st.sampled_from(dtypes))
    return draw(np_arrays(dtype, shape if shape is not None else draw(matrix_shapes)))


@st.composite
def broadcastable_shapes(draw, num, min_dims=0, max_dims=3):
    shapes = draw(
        hnp.mutually_broadcastable_shapes(
            num_shapes=num, min_dims=min_dims, max_dims=max_dims, max_side=3
        )
    )
    return shapes.input_shapes


@st.composite
def rtols(draw, stack):
    """``rtol`` as a float or an array broadcastable to the stack shape (as the suite)."""
    if draw(st.booleans()):
        return draw(st.floats(0, 1, width=32))
    return mx.array(draw(hnp.arrays(np.float32, stack, elements=st.floats(0, 1, width=32))))


def to_mx(a: np.ndarray) -> mx.array:
    return mx.array(a)


# ---------------------------------------------------------------- helpers (suite semantics)

_REAL = {mx.complex64: mx.float32}
_FLOAT_DTYPES = (mx.float16, mx.bfloat16, mx.float32, mx.float64, mx.complex64)


def real_dtype(dtype):
    return _REAL.get(dtype, dtype)


def _host(x) -> np.ndarray:
    return np.asarray(x)


def assert_exactly_equal(x, y, msg=""):
    assert tuple(x.shape) == tuple(y.shape), f"shapes differ: {x.shape} != {y.shape} {msg}"
    assert x.dtype == y.dtype, f"dtypes differ: {x.dtype} != {y.dtype} {msg}"
    a, b = _host(x), _host(y)
    same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind in "fc" else a == b
    assert np.all(same), f"values differ {msg}"


def assert_equal(x, y, msg=""):
    """The suite's ``assert_equal``: shape and dtype for floating dtypes, exact otherwise."""
    if x.dtype in _FLOAT_DTYPES:
        assert tuple(x.shape) == tuple(y.shape), f"shapes differ: {x.shape} != {y.shape} {msg}"
        assert x.dtype == y.dtype, f"dtypes differ: {x.dtype} != {y.dtype} {msg}"
    else:
        assert_exactly_equal(x, y, msg)


def _stack_index(shape, stack, nmatrix):
    """The index of ``shape``'s stack entry for broadcast stack index ``stack``."""
    own = shape[: len(shape) - nmatrix]
    pad = len(stack) - len(own)
    return tuple(0 if d == 1 else i for i, d in zip(stack[pad:], own, strict=True))


def check_stacks(f, *args, res, dims, matrix_dims=None, true_val=None, **kw):
    """The suite's ``_test_stacks``: ``f`` on each stack entry equals that entry of ``res``.

    Args:
        matrix_dims: per argument, how many trailing axes form one entry (default 2).
        dims: how many trailing axes of ``res`` one entry's result has.
    """
    matrix_dims = matrix_dims or [2] * len(args)
    stacks = [tuple(a.shape[: a.ndim - m]) for a, m in zip(args, matrix_dims, strict=True)]
    stack_shape = np.broadcast_shapes(*stacks)
    for idx in itertools.product(*(range(d) for d in stack_shape)):
        entries = [
            a[_stack_index(tuple(a.shape), idx, m) + (Ellipsis,)]
            for a, m in zip(args, matrix_dims, strict=True)
        ]
        got = f(*entries, **kw)
        expected_entry = res[idx + (Ellipsis,)] if idx else res
        assert_equal(expected_entry, got, f"stack {idx}")
        if true_val is not None:
            assert_equal(got, true_val(*entries), f"stack {idx} (true value)")


def check_namedtuple(res, fields, name):
    """The suite's ``_test_namedtuple``."""
    assert isinstance(res, tuple), f"{name}() did not return a tuple"
    assert type(res) is not tuple, f"{name}() did not return a namedtuple"
    assert len(res) == len(fields), f"{name}() result has {len(res)} fields, not {len(fields)}"
    for i, field in enumerate(fields):
        assert hasattr(res, field), f"{name}() result has no field {field!r}"
        assert res[i] is getattr(res, field), f"{name}() field {field!r} not at position {i}"


def result_type(*dtypes):
    return mx.result_type(*dtypes)


def raises(f) -> None:
    try:
        f()
    except Exception:
        return
    raise AssertionError("did not raise for invalid input")


# ---------------------------------------------------------------- the checks


def check_cholesky(ns, x, kw):  # test_cholesky
    res = ns.linalg.cholesky(x, **kw)
    assert res.dtype == x.dtype and tuple(res.shape) == tuple(x.shape)
    check_stacks(lambda a: ns.linalg.cholesky(a, **kw), x, res=res, dims=2)
    tri = ns.triu(res) if kw.get("upper", False) else ns.tril(res)
    assert_exactly_equal(res, tri)


@st.composite
def cases_cross(draw):
    shape1, shape2 = draw(broadcastable_shapes(2, min_dims=1))
    min_ndim = min(len(shape1), len(shape2))
    axis = draw(st.integers(-min_ndim, -1))
    kw = {"axis": axis} if draw(st.booleans()) else {}
    axis = kw.get("axis", -1)
    if draw(st.booleans()):
        shape1, shape2 = list(shape1), list(shape2)
        shape1[axis] = shape2[axis] = 3
    d1, d2 = draw(mutual_dtypes(REALS))
    return draw(np_arrays(d1, tuple(shape1))), draw(np_arrays(d2, tuple(shape2))), kw


def check_cross(ns, x1, x2, kw):  # test_cross
    axis = kw.get("axis", -1)
    if not (x1.shape[axis] == x2.shape[axis] == 3):
        raises(lambda: ns.linalg.cross(x1, x2, **kw))
        return
    res = ns.linalg.cross(x1, x2, **kw)
    assert res.dtype == result_type(x1.dtype, x2.dtype)
    assert tuple(res.shape) == np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))

    def exact_cross(a, b):
        return ns.asarray(
            [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]],
            dtype=res.dtype,
        )

    m1 = ns.moveaxis(x1, axis, -1)
    m2 = ns.moveaxis(x2, axis, -1)
    res_moved = ns.moveaxis(res, axis, -1)
    check_stacks(
        ns.linalg.cross, m1, m2, res=res_moved, dims=1, matrix_dims=[1, 1], true_val=exact_cross
    )


def check_det(ns, x):  # test_det
    res = ns.linalg.det(x)
    assert res.dtype == x.dtype and tuple(res.shape) == tuple(x.shape[:-2])
    check_stacks(ns.linalg.det, x, res=res, dims=0)


def check_diagonal(ns, x, kw):  # test_diagonal
    res = ns.linalg.diagonal(x, **kw)
    assert res.dtype == x.dtype
    n, m = x.shape[-2:]
    offset = kw.get("offset", 0)
    if offset < 0:
        size = min(n, m, max(n + offset, 0))
    elif offset == 0:
        size = min(n, m)
    else:
        size = min(n, m, max(m - offset, 0))
    assert tuple(res.shape) == (*x.shape[:-2], size)

    def true_diag(a):
        if offset >= 0:
            items = [a[i, i + offset] for i in range(size)]
        else:
            items = [a[i - offset, i] for i in range(size)]
        return ns.asarray(items, dtype=x.dtype) if items else ns.zeros((0,), dtype=x.dtype)

    check_stacks(lambda a: ns.linalg.diagonal(a, **kw), x, res=res, dims=1, true_val=true_diag)


def check_eigh(ns, x):  # test_eigh
    res = ns.linalg.eigh(x)
    check_namedtuple(res, ["eigenvalues", "eigenvectors"], "eigh")
    w, v = res.eigenvalues, res.eigenvectors
    assert w.dtype == real_dtype(x.dtype) and tuple(w.shape) == tuple(x.shape[:-1])
    assert v.dtype == x.dtype and tuple(v.shape) == tuple(x.shape)
    check_stacks(lambda a: ns.linalg.eigh(a).eigenvalues, x, res=w, dims=1)
    check_stacks(lambda a: ns.linalg.eigh(a).eigenvectors, x, res=v, dims=2)


def check_eigvalsh(ns, x):  # test_eigvalsh
    res = ns.linalg.eigvalsh(x)
    assert res.dtype == real_dtype(x.dtype) and tuple(res.shape) == tuple(x.shape[:-1])
    check_stacks(ns.linalg.eigvalsh, x, res=res, dims=1)


def check_inv(ns, x):  # test_inv
    res = ns.linalg.inv(x)
    assert res.dtype == x.dtype and tuple(res.shape) == tuple(x.shape)
    check_stacks(ns.linalg.inv, x, res=res, dims=2)


@st.composite
def cases_matmul(draw):
    d1, d2 = draw(mutual_dtypes(REALS))
    shape1, shape2 = draw(broadcastable_shapes(2, min_dims=0))
    if draw(st.booleans()) and len(shape1) and len(shape2):
        # Make most draws valid: share the contracted dimension.
        shape2 = list(shape2)
        shape2[0 if len(shape2) == 1 else -2] = shape1[-1]
        if len(shape2) > 2 and len(shape1) > 2:
            shape2 = list(np.broadcast_shapes(tuple(shape1[:-2]), tuple(shape2[:-2]))) + shape2[-2:]
    return draw(np_arrays(d1, tuple(shape1))), draw(np_arrays(d2, tuple(shape2)))


def check_matmul(ns, x1, x2, namespace="linalg"):  # test_matmul, test_linalg_matmul
    matmul = ns.linalg.matmul if namespace == "linalg" else ns.matmul
    s1, s2 = tuple(x1.shape), tuple(x2.shape)
    invalid = (
        s1 == ()
        or s2 == ()
        or (len(s1) == len(s2) == 1 and s1 != s2)
        or (len(s1) == 1 and len(s2) >= 2 and s1[0] != s2[-2])
        or (len(s2) == 1 and len(s1) >= 2 and s2[0] != s1[-1])
        or (len(s1) >= 2 and len(s2) >= 2 and s1[-1] != s2[-2])
    )
    if not invalid and len(s1) >= 2 and len(s2) >= 2:
        try:
            np.broadcast_shapes(s1[:-2], s2[:-2])
        except ValueError:
            invalid = True
    if invalid:
        raises(lambda: matmul(x1, x2))
        return
    res = matmul(x1, x2)
    assert res.dtype == result_type(x1.dtype, x2.dtype)
    if len(s1) == len(s2) == 1:
        assert tuple(res.shape) == ()
    elif len(s1) == 1:
        assert tuple(res.shape) == s2[:-2] + s2[-1:]
        check_stacks(matmul, x1, x2, res=res, dims=1, matrix_dims=[1, 2])
    elif len(s2) == 1:
        assert tuple(res.shape) == s1[:-1]
        check_stacks(matmul, x1, x2, res=res, dims=1, matrix_dims=[2, 1])
    else:
        stack = np.broadcast_shapes(s1[:-2], s2[:-2])
        assert tuple(res.shape) == stack + (s1[-2], s2[-1])
        check_stacks(matmul, x1, x2, res=res, dims=2)


MATRIX_ORDS = [-math.inf, -2, -1, 1, 2, math.inf, "fro", "nuc"]


def check_matrix_norm(ns, x, kw):  # test_matrix_norm
    res = ns.linalg.matrix_norm(x, **kw)
    keepdims = kw.get("keepdims", False)
    expected = tuple(x.shape[:-2]) + ((1, 1) if keepdims else ())
    assert tuple(res.shape) == expected
    assert res.dtype == real_dtype(x.dtype)
    check_stacks(lambda a: ns.linalg.matrix_norm(a, **kw), x, res=res, dims=2 if keepdims else 0)


def check_matrix_power(ns, x, n):  # test_matrix_power
    res = ns.linalg.matrix_power(x, n)
    assert res.dtype == x.dtype and tuple(res.shape) == tuple(x.shape)
    true_val = (lambda a: ns.eye(a.shape[0], dtype=a.dtype)) if n == 0 else None
    check_stacks(lambda a: ns.linalg.matrix_power(a, n), x, res=res, dims=2, true_val=true_val)


def check_matrix_rank(ns, x, kw):  # test_matrix_rank: the call must succeed
    ns.linalg.matrix_rank(x, **kw)


def check_matrix_transpose(ns, x, namespace="linalg"):  # test_(linalg_)matrix_transpose
    f = ns.linalg.matrix_transpose if namespace == "linalg" else ns.matrix_transpose
    res = f(x)
    shape = list(x.shape)
    shape[-1], shape[-2] = shape[-2], shape[-1]
    assert res.dtype == x.dtype and tuple(res.shape) == tuple(shape)

    def true_val(a):
        rows = [[a[i, j] for i in range(a.shape[0])] for j in range(a.shape[1])]
        if not rows or not rows[0]:
            return ns.zeros((a.shape[1], a.shape[0]), dtype=a.dtype)
        return ns.asarray([ns.stack(r) for r in rows], dtype=a.dtype)

    check_stacks(f, x, res=res, dims=2, true_val=true_val)


def check_outer(ns, x1, x2):  # test_outer
    res = ns.linalg.outer(x1, x2)
    shape = (x1.shape[0], x2.shape[0])
    assert res.dtype == result_type(x1.dtype, x2.dtype) and tuple(res.shape) == shape
    if 0 in shape:
        true = ns.zeros(shape, dtype=res.dtype)
    else:
        true = ns.stack(
            [
                ns.stack([(x1[i] * x2[j]).astype(res.dtype) for j in range(shape[1])])
                for i in range(shape[0])
            ]
        )
    assert_exactly_equal(res, true)


def check_pinv(ns, x, kw):  # test_pinv: the call must succeed
    ns.linalg.pinv(x, **kw)


def check_qr(ns, x, kw):  # test_qr
    res = ns.linalg.qr(x, **kw)
    mode = kw.get("mode", "reduced")
    m, n = x.shape[-2:]
    k = min(m, n)
    check_namedtuple(res, ["Q", "R"], "qr")
    q, r = res.Q, res.R
    stack = tuple(x.shape[:-2])
    assert q.dtype == x.dtype and r.dtype == x.dtype
    assert tuple(q.shape) == stack + ((m, m) if mode == "complete" else (m, k))
    assert tuple(r.shape) == stack + ((m, n) if mode == "complete" else (k, n))
    check_stacks(lambda a: ns.linalg.qr(a, **kw).Q, x, res=q, dims=2)
    check_stacks(lambda a: ns.linalg.qr(a, **kw).R, x, res=r, dims=2)
    assert_exactly_equal(r, ns.triu(r))


def check_slogdet(ns, x):  # test_slogdet
    res = ns.linalg.slogdet(x)
    check_namedtuple(res, ["sign", "logabsdet"], "slogdet")
    sign, logabsdet = res
    assert sign.dtype == x.dtype and tuple(sign.shape) == tuple(x.shape[:-2])
    assert logabsdet.dtype == real_dtype(x.dtype)
    assert tuple(logabsdet.shape) == tuple(x.shape[:-2])
    check_stacks(lambda a: ns.linalg.slogdet(a).sign, x, res=sign, dims=0)
    check_stacks(lambda a: ns.linalg.slogdet(a).logabsdet, x, res=logabsdet, dims=0)


@st.composite
def cases_solve(draw):
    d1, d2 = draw(mutual_dtypes(FLOATS))
    stack1, stack2 = draw(broadcastable_shapes(2, min_dims=0, max_dims=2))
    x1 = draw(invertible_matrices(stack=stack1, dtype=d1))
    m = x1.shape[-1]
    if draw(st.booleans()):
        shape2 = (m,)
    else:
        shape2 = stack2 + (m, draw(st.integers(0, 3)))
    return x1, draw(np_arrays(d2, shape2))


def check_solve(ns, x1, x2):  # test_solve
    res = ns.linalg.solve(x1, x2)
    assert res.dtype == result_type(x1.dtype, x2.dtype)
    if x2.ndim == 1:
        expected = tuple(x1.shape[:-2]) + tuple(x2.shape[-1:])
        check_stacks(ns.linalg.solve, x1, x2, res=res, dims=1, matrix_dims=[2, 1])
    else:
        stack = np.broadcast_shapes(tuple(x1.shape[:-2]), tuple(x2.shape[:-2]))
        expected = stack + tuple(x2.shape[-2:])
        check_stacks(ns.linalg.solve, x1, x2, res=res, dims=2)
    assert tuple(res.shape) == expected


def check_svd(ns, x, kw):  # test_svd
    res = ns.linalg.svd(x, **kw)
    full = kw.get("full_matrices", True)
    *stack, m, n = x.shape
    k = min(m, n)
    check_namedtuple(res, ["U", "S", "Vh"], "svd")
    u, s, vh = res
    assert u.dtype == x.dtype and vh.dtype == x.dtype and s.dtype == real_dtype(x.dtype)
    assert tuple(u.shape) == (*stack, m, m if full else k)
    assert tuple(vh.shape) == (*stack, n if full else k, n)
    assert tuple(s.shape) == (*stack, k)
    if k >= 1:
        assert bool(ns.all(s[..., :-1] >= s[..., 1:])), "S not sorted descending"
    check_stacks(lambda a: ns.linalg.svd(a, **kw).U, x, res=u, dims=2)
    check_stacks(lambda a: ns.linalg.svd(a, **kw).S, x, res=s, dims=1)
    check_stacks(lambda a: ns.linalg.svd(a, **kw).Vh, x, res=vh, dims=2)


def check_svdvals(ns, x):  # test_svdvals
    res = ns.linalg.svdvals(x)
    *stack, m, n = x.shape
    assert res.dtype == real_dtype(x.dtype) and tuple(res.shape) == (*stack, min(m, n))
    assert bool(ns.all(res[..., :-1] >= res[..., 1:])), "svdvals not sorted descending"
    check_stacks(ns.linalg.svdvals, x, res=res, dims=1)


@st.composite
def cases_tensordot(draw):
    shape1 = list(draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
    shape2 = list(draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
    if draw(st.booleans()):
        count = draw(st.integers(0, min(len(shape1), len(shape2))))
        kw = {"axes": count}
        pairs = list(zip(range(-count, 0), range(count), strict=True))
    else:
        count = draw(st.integers(0, min(len(shape1), len(shape2))))
        first = draw(st.permutations(range(len(shape1)))).__getitem__(slice(count))
        second = draw(st.permutations(range(len(shape2)))).__getitem__(slice(count))
        kw = {"axes": (tuple(first), tuple(second))}
        pairs = list(zip(first, second, strict=True))
    for i, j in pairs:
        shape2[j] = shape1[i]
    if kw["axes"] == 2 and draw(st.booleans()):
        kw = {}
        assume(len(shape1) >= 2 and len(shape2) >= 2)
    d1, d2 = draw(mutual_dtypes(NUMERIC))
    return draw(np_arrays(d1, tuple(shape1))), draw(np_arrays(d2, tuple(shape2))), kw


def check_tensordot(ns, x1, x2, kw, namespace="linalg"):  # test_(linalg_)tensordot
    f = ns.linalg.tensordot if namespace == "linalg" else ns.tensordot
    res = f(x1, x2, **kw)
    assert res.dtype == result_type(x1.dtype, x2.dtype)
    axes = kw.get("axes", 2)
    if isinstance(axes, int):
        axes = (list(range(x1.ndim - axes, x1.ndim)), list(range(axes)))
    first = [a % x1.ndim for a in axes[0]] if x1.ndim else []
    second = [a % x2.ndim for a in axes[1]] if x2.ndim else []
    free1 = [d for i, d in enumerate(x1.shape) if i not in first]
    free2 = [d for i, d in enumerate(x2.shape) if i not in second]
    assert tuple(res.shape) == tuple(free1 + free2)
    # Stacks: each pair of free indices gives the tensordot of the contracted sub-arrays.
    keep1 = [i for i in range(x1.ndim) if i not in first]
    keep2 = [i for i in range(x2.ndim) if i not in second]
    rank1 = {a: r for r, a in enumerate(sorted(first))}
    rank2 = {a: r for r, a in enumerate(sorted(second))}
    sub_axes = ([rank1[a] for a in first], [rank2[a] for a in second])
    for i1 in itertools.product(*(range(x1.shape[i]) for i in keep1)):
        for i2 in itertools.product(*(range(x2.shape[i]) for i in keep2)):
            k1 = [slice(None)] * x1.ndim
            for axis, value in zip(keep1, i1, strict=True):
                k1[axis] = value
            k2 = [slice(None)] * x2.ndim
            for axis, value in zip(keep2, i2, strict=True):
                k2[axis] = value
            entry = f(x1[tuple(k1)], x2[tuple(k2)], axes=sub_axes)
            assert_equal(res[i1 + i2] if i1 + i2 else res, entry)


def _accumulation_dtype(dtype):
    if dtype in (mx.int8, mx.int16, mx.int32):
        return mx.int32
    if dtype in (mx.uint8, mx.uint16, mx.uint32):
        return mx.uint32
    return dtype


def check_trace(ns, x, kw):  # test_trace
    res = ns.linalg.trace(x, **kw)
    assert res.dtype == _accumulation_dtype(x.dtype), f"trace dtype {res.dtype} for {x.dtype}"
    n, m = x.shape[-2:]
    assert tuple(res.shape) == tuple(x.shape[:-2])
    offset = kw.get("offset", 0)

    def true_trace(a):
        if offset < 0:
            size = min(n, m, max(n + offset, 0))
        elif offset == 0:
            size = min(n, m)
        else:
            size = min(n, m, max(m - offset, 0))
        if offset >= 0:
            items = [a[i, i + offset] for i in range(size)]
        else:
            items = [a[i - offset, i] for i in range(size)]
        diag = ns.stack(items) if items else ns.zeros((0,), dtype=x.dtype)
        return ns.sum(diag, dtype=res.dtype)

    check_stacks(lambda a: ns.linalg.trace(a, **kw), x, res=res, dims=0, true_val=true_trace)


@st.composite
def cases_vecdot(draw):
    d1, d2 = draw(mutual_dtypes(NUMERIC))
    shape1, shape2 = draw(broadcastable_shapes(2, min_dims=1))
    ndim = min(len(shape1), len(shape2))
    kw = {"axis": draw(st.integers(-ndim, -1))} if draw(st.booleans()) else {}
    return draw(np_arrays(d1, shape1)), draw(np_arrays(d2, shape2)), kw


def check_vecdot(ns, x1, x2, kw, namespace="linalg"):  # test_(linalg_)vecdot
    f = ns.linalg.vecdot if namespace == "linalg" else ns.vecdot
    shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    axis = kw.get("axis", -1)
    s1 = (1,) * (len(shape) - x1.ndim) + tuple(x1.shape)
    s2 = (1,) * (len(shape) - x2.ndim) + tuple(x2.shape)
    if s1[axis] != s2[axis]:
        raises(lambda: f(x1, x2, **kw))
        return
    expected = list(shape)
    expected.pop(axis)
    res = f(x1, x2, **kw)
    assert res.dtype == result_type(x1.dtype, x2.dtype)
    assert tuple(res.shape) == tuple(expected)
    m1 = ns.moveaxis(ns.broadcast_to(x1, shape), axis, -1)
    m2 = ns.moveaxis(ns.broadcast_to(x2, shape), axis, -1)
    integer = res.dtype not in _FLOAT_DTYPES
    true_val = (lambda a, b: ns.sum(a * b, dtype=res.dtype)) if integer else None
    check_stacks(f, m1, m2, res=res, dims=0, matrix_dims=[1, 1], true_val=true_val)


@st.composite
def cases_vector_norm(draw):
    dtype = draw(st.sampled_from(FLOATS))
    x = draw(np_arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)))
    kw = {}
    if draw(st.booleans()):
        if x.ndim == 0 or draw(st.booleans()):
            kw["axis"] = None
        elif draw(st.booleans()):
            kw["axis"] = draw(st.integers(-x.ndim, x.ndim - 1))
        else:
            kw["axis"] = tuple(draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True)))
    if draw(st.booleans()):
        kw["keepdims"] = draw(st.booleans())
    if draw(st.booleans()):
        kw["ord"] = draw(
            st.one_of(
                st.sampled_from([2, 1, 0, -1, -2, math.inf, -math.inf]),
                st.integers(-100, 100),
                st.floats(-100, 100),
            )
        )
    return x, kw


def check_vector_norm(ns, x, kw):  # test_vector_norm
    res = ns.linalg.vector_norm(x, **kw)
    axis = kw.get("axis")
    keepdims = kw.get("keepdims", False)
    if axis is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axis, int):
        axes = (axis % x.ndim,)
    else:
        axes = tuple(a % x.ndim for a in axis)
    if keepdims:
        expected = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        expected = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    assert tuple(res.shape) == expected, f"shape {res.shape} != {expected}"
    assert res.dtype == real_dtype(x.dtype)
    rest = {k: v for k, v in kw.items() if k != "axis"}
    moved = ns.permute_dims(x, [i for i in range(x.ndim) if i not in axes] + list(axes))
    kept = tuple(d for i, d in enumerate(res.shape) if i not in axes)
    res_flat = ns.reshape(res, kept) if keepdims else res

    def one(entry):
        out = ns.linalg.vector_norm(entry, **rest)
        return ns.reshape(out, ()) if keepdims else out

    check_stacks(one, moved, res=res_flat, dims=0, matrix_dims=[len(axes)])
