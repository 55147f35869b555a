"""The official Array API test suite's linalg tests, held against ``mlx_linalg.array_api``.

Each test mirrors one test of data-apis/array-api-tests ``array_api_tests/test_linalg.py``
(named the same), check for check (see tests/test_array_api_checks.py), with float32/complex64 as
the floating dtypes and every integer dtype where the official test draws numeric dtypes.

``python tests/test_array_api_linalg.py`` runs the same checks against MLX's own namespace
(``mlx.core`` with ``mx.linalg``) and against ``mlx_linalg.array_api`` and prints how many
pass; docs/array-api.md reports the numbers.
"""

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import test_array_api_checks as c  # noqa: E402

import mlx_linalg.array_api as xp  # noqa: E402

# Derandomized: the same examples on every run, so CI is reproducible.
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _kwargs(**strategies):
    """The suite's ``kwargs``: each keyword present or absent, drawn when present."""
    return st.fixed_dictionaries({}, optional=strategies)


def _mx(*arrays):
    return tuple(c.to_mx(a) for a in arrays)


@st.composite
def _rank_case(draw):
    x = draw(c.finite_matrices())
    return x, draw(_kwargs(rtol=c.rtols(tuple(x.shape[:-2]))))


@st.composite
def _power_case(draw):
    n = draw(st.integers(-100, 100))
    if n < 0:
        x = draw(c.invertible_matrices())
    else:
        x = draw(c.np_arrays(draw(st.sampled_from(c.FLOATS)), draw(c.square_shapes)))
    return x, n


@st.composite
def _two_1d(draw):
    d1, d2 = draw(c.mutual_dtypes(c.REALS))
    n1, n2 = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    return draw(c.np_arrays(d1, (n1,))), draw(c.np_arrays(d2, (n2,)))


@st.composite
def _scalar_matrix(draw):
    return draw(c.np_arrays(draw(st.sampled_from(c.SCALAR)), draw(c.matrix_shapes)))


@st.composite
def _numeric_matrix(draw):
    return draw(c.np_arrays(draw(st.sampled_from(c.NUMERIC)), draw(c.matrix_shapes)))


@st.composite
def _float_square(draw):
    return draw(c.np_arrays(draw(st.sampled_from(c.FLOATS)), draw(c.square_shapes)))


@st.composite
def _float_matrix(draw):
    return draw(c.np_arrays(draw(st.sampled_from(c.FLOATS)), draw(c.matrix_shapes)))


OFFSETS = st.integers(-c.MAX_ARRAY_SIZE, c.MAX_ARRAY_SIZE)

# official test name -> (strategy of one case, runner(ns, case))
CASES = {
    "test_cholesky": (
        st.tuples(c.positive_definite_matrices(), _kwargs(upper=st.booleans())),
        lambda ns, case: c.check_cholesky(ns, *_mx(case[0]), case[1]),
    ),
    "test_cross": (
        c.cases_cross(),
        lambda ns, case: c.check_cross(ns, *_mx(case[0], case[1]), case[2]),
    ),
    "test_det": (_float_square(), lambda ns, x: c.check_det(ns, *_mx(x))),
    "test_diagonal": (
        st.tuples(_scalar_matrix(), _kwargs(offset=OFFSETS)),
        lambda ns, case: c.check_diagonal(ns, *_mx(case[0]), case[1]),
    ),
    "test_eigh": (c.symmetric_matrices(), lambda ns, x: c.check_eigh(ns, *_mx(x))),
    "test_eigvalsh": (c.symmetric_matrices(), lambda ns, x: c.check_eigvalsh(ns, *_mx(x))),
    "test_inv": (c.invertible_matrices(), lambda ns, x: c.check_inv(ns, *_mx(x))),
    "test_linalg_matmul": (
        c.cases_matmul(),
        lambda ns, case: c.check_matmul(ns, *_mx(*case), namespace="linalg"),
    ),
    "test_matmul": (
        c.cases_matmul(),
        lambda ns, case: c.check_matmul(ns, *_mx(*case), namespace="top"),
    ),
    "test_matrix_norm": (
        st.tuples(
            c.finite_matrices(),
            _kwargs(keepdims=st.booleans(), ord=st.sampled_from(c.MATRIX_ORDS)),
        ),
        lambda ns, case: c.check_matrix_norm(ns, *_mx(case[0]), case[1]),
    ),
    "test_matrix_power": (
        _power_case(),
        lambda ns, case: c.check_matrix_power(ns, *_mx(case[0]), case[1]),
    ),
    "test_matrix_rank": (
        _rank_case(),
        lambda ns, case: c.check_matrix_rank(ns, *_mx(case[0]), case[1]),
    ),
    "test_linalg_matrix_transpose": (
        _scalar_matrix(),
        lambda ns, x: c.check_matrix_transpose(ns, *_mx(x), namespace="linalg"),
    ),
    "test_matrix_transpose": (
        _scalar_matrix(),
        lambda ns, x: c.check_matrix_transpose(ns, *_mx(x), namespace="top"),
    ),
    "test_outer": (_two_1d(), lambda ns, case: c.check_outer(ns, *_mx(*case))),
    "test_pinv": (
        _rank_case(),
        lambda ns, case: c.check_pinv(ns, *_mx(case[0]), case[1]),
    ),
    "test_qr": (
        st.tuples(_float_matrix(), _kwargs(mode=st.sampled_from(["reduced", "complete"]))),
        lambda ns, case: c.check_qr(ns, *_mx(case[0]), case[1]),
    ),
    "test_slogdet": (_float_square(), lambda ns, x: c.check_slogdet(ns, *_mx(x))),
    "test_solve": (c.cases_solve(), lambda ns, case: c.check_solve(ns, *_mx(*case))),
    "test_svd": (
        st.tuples(c.finite_matrices(), _kwargs(full_matrices=st.booleans())),
        lambda ns, case: c.check_svd(ns, *_mx(case[0]), case[1]),
    ),
    "test_svdvals": (c.finite_matrices(), lambda ns, x: c.check_svdvals(ns, *_mx(x))),
    "test_linalg_tensordot": (
        c.cases_tensordot(),
        lambda ns, case: c.check_tensordot(ns, *_mx(case[0], case[1]), case[2]),
    ),
    "test_tensordot": (
        c.cases_tensordot(),
        lambda ns, case: c.check_tensordot(ns, *_mx(case[0], case[1]), case[2], namespace="top"),
    ),
    "test_trace": (
        st.tuples(_numeric_matrix(), _kwargs(offset=OFFSETS)),
        lambda ns, case: c.check_trace(ns, *_mx(case[0]), case[1]),
    ),
    "test_linalg_vecdot": (
        c.cases_vecdot(),
        lambda ns, case: c.check_vecdot(ns, *_mx(case[0], case[1]), case[2]),
    ),
    "test_vecdot": (
        c.cases_vecdot(),
        lambda ns, case: c.check_vecdot(ns, *_mx(case[0], case[1]), case[2], namespace="top"),
    ),
    "test_vector_norm": (
        c.cases_vector_norm(),
        lambda ns, case: c.check_vector_norm(ns, *_mx(case[0]), case[1]),
    ),
}


def _run(name: str, ns, max_examples: int = 25) -> None:
    strategy, runner = CASES[name]

    @settings(SETTINGS, max_examples=max_examples)
    @given(strategy)
    def run(case):
        runner(ns, case)

    run()


@pytest.mark.parametrize("name", sorted(CASES))
def test_official_linalg_check(name):
    _run(name, xp)


def test_cross_rejects_a_broadcast_axis():
    """The invalid-shape branch of the official test_cross, on the case it can draw."""
    c.check_cross(xp, xp.ones((2, 3)), xp.ones((2, 1)), {})


def test_checks_catch_a_wrong_namespace():
    """The checks fail for a namespace whose qr returns a plain tuple and a full R."""

    class Wrong:
        def __getattr__(self, attr):
            return getattr(xp, attr)

    class WrongLinalg:
        def __getattr__(self, attr):
            return getattr(xp.linalg, attr)

        @staticmethod
        def qr(x, /, *, mode="reduced"):
            q, r = xp.linalg.qr(x, mode=mode)
            return (q, r + 1)

    wrong = Wrong()
    wrong.linalg = WrongLinalg()
    with pytest.raises(AssertionError, match="namedtuple"):
        _run("test_qr", wrong, max_examples=5)


def _measure(max_examples: int) -> dict[str, dict[str, bool]]:
    import mlx.core as mx

    results: dict[str, dict[str, bool]] = {}
    for label, ns in (("mlx.core", mx), ("mlx_linalg.array_api", xp)):
        results[label] = {}
        for name in sorted(CASES):
            try:
                _run(name, ns, max_examples=max_examples)
                results[label][name] = True
            except Exception as exc:  # noqa: BLE001 - any failure counts against the namespace
                results[label][name] = False
                print(f"{label:22s} {name:30s} FAIL {type(exc).__name__}: {str(exc)[:90]!r}")
    return results


if __name__ == "__main__":
    outcome = _measure(int(sys.argv[1]) if len(sys.argv) > 1 else 25)
    names = sorted(CASES)
    print("\n| official test | mlx.core | mlx_linalg.array_api |\n| --- | --- | --- |")
    for name in names:
        row = ["pass" if outcome[k][name] else "fail" for k in outcome]
        print(f"| {name} | {row[0]} | {row[1]} |")
    for label, res in outcome.items():
        print(f"{label}: {sum(res.values())} of {len(names)} pass")
