"""Signatures of the linalg functions against the Array API 2024.12 standard.

Mirrors the official suite's ``array_api_tests/test_signatures.py`` for the linalg extension
(``test_extension_func_signature``) and the linalg functions of the main namespace
(``test_func_signature``): for every parameter of the standard's signature, positional
parameters sit at the same position, positional-or-keyword ones keep the standard's name and
kind, and keyword-only ones exist as keyword-only (or positional-or-keyword). Extra keyword
parameters (``stream=``) are allowed, as in the official test. Beyond it, defaults must equal
the standard's. The stubs below are the standard's signatures; when array-api-strict is
installed they are cross-checked against it.
"""

import inspect
from inspect import Parameter

import pytest

import mlx_linalg.array_api as xp


# The standard's signatures (2024.12), linalg extension.
def cholesky(x, /, *, upper=False): ...
def cross(x1, x2, /, *, axis=-1): ...
def det(x, /): ...
def diagonal(x, /, *, offset=0): ...
def eigh(x, /): ...
def eigvalsh(x, /): ...
def inv(x, /): ...
def matmul(x1, x2, /): ...
def matrix_norm(x, /, *, keepdims=False, ord="fro"): ...  # noqa: A002
def matrix_power(x, n, /): ...
def matrix_rank(x, /, *, rtol=None): ...
def matrix_transpose(x, /): ...
def outer(x1, x2, /): ...
def pinv(x, /, *, rtol=None): ...
def qr(x, /, *, mode="reduced"): ...
def slogdet(x, /): ...
def solve(x1, x2, /): ...
def svd(x, /, *, full_matrices=True): ...
def svdvals(x, /): ...
def tensordot(x1, x2, /, *, axes=2): ...
def trace(x, /, *, offset=0, dtype=None): ...
def vecdot(x1, x2, /, *, axis=-1): ...
def vector_norm(x, /, *, axis=None, keepdims=False, ord=2): ...  # noqa: A002


LINALG_STUBS = {
    f.__name__: f
    for f in (
        cholesky, cross, det, diagonal, eigh, eigvalsh, inv, matmul, matrix_norm,
        matrix_power, matrix_rank, matrix_transpose, outer, pinv, qr, slogdet, solve, svd,
        svdvals, tensordot, trace, vecdot, vector_norm,
    )
}  # fmt: skip
MAIN_STUBS = {f.__name__: f for f in (matmul, matrix_transpose, tensordot, vecdot)}

_KIND = {
    Parameter.POSITIONAL_ONLY: "positional-only",
    Parameter.POSITIONAL_OR_KEYWORD: "positional-or-keyword",
    Parameter.KEYWORD_ONLY: "keyword-only",
    Parameter.VAR_POSITIONAL: "*args",
    Parameter.VAR_KEYWORD: "**kwargs",
}


def signature_problems(func, stub) -> list[str]:
    """What in ``func``'s signature breaks the standard's ``stub`` (empty when compliant)."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return ["signature cannot be inspected"]
    params = list(sig.parameters.values())
    stub_params = list(inspect.signature(stub).parameters.values())
    positional = [p for p in stub_params if p.kind != Parameter.KEYWORD_ONLY]
    problems = []
    for i, want in enumerate(positional):
        if i >= len(params) or params[i].kind not in (
            Parameter.POSITIONAL_ONLY,
            Parameter.POSITIONAL_OR_KEYWORD,
        ):
            problems.append(f"argument {want.name!r} missing at position {i}")
            continue
        got = params[i]
        if want.kind == Parameter.POSITIONAL_OR_KEYWORD:
            if got.name != want.name:
                problems.append(f"argument {i} named {got.name!r}, expected {want.name!r}")
            if got.kind != want.kind:
                problems.append(f"{got.name!r} is {_KIND[got.kind]}, expected {_KIND[want.kind]}")
        if want.default is not Parameter.empty and got.default != want.default:
            problems.append(f"{got.name!r} defaults to {got.default!r}, expected {want.default!r}")
    for want in stub_params[len(positional) :]:
        got = sig.parameters.get(want.name)
        if got is None:
            problems.append(f"keyword argument {want.name!r} missing")
            continue
        if got.kind not in (Parameter.KEYWORD_ONLY, Parameter.POSITIONAL_OR_KEYWORD):
            problems.append(f"{want.name!r} is {_KIND[got.kind]}, expected keyword-only")
        if got.default != want.default:
            problems.append(f"{want.name!r} defaults to {got.default!r}, expected {want.default!r}")
    return problems


@pytest.mark.parametrize("name", sorted(LINALG_STUBS))
def test_extension_func_signature(name):
    assert hasattr(xp.linalg, name), f"linalg is missing {name}()"
    assert signature_problems(getattr(xp.linalg, name), LINALG_STUBS[name]) == []


@pytest.mark.parametrize("name", sorted(MAIN_STUBS))
def test_func_signature(name):
    assert hasattr(xp, name), f"the namespace is missing {name}()"
    assert signature_problems(getattr(xp, name), MAIN_STUBS[name]) == []


@pytest.mark.parametrize("name", sorted(LINALG_STUBS))
def test_stubs_match_array_api_strict(name):
    """The stubs above are the standard: array-api-strict (its reference) agrees."""
    strict = pytest.importorskip("array_api_strict")
    theirs = inspect.signature(getattr(strict.linalg, name))
    ours = inspect.signature(LINALG_STUBS[name])
    assert [(p.name, p.kind, p.default) for p in theirs.parameters.values()] == [
        (p.name, p.kind, p.default) for p in ours.parameters.values()
    ]


def test_checker_rejects_wrong_signatures():
    def qr_positional_mode(x, mode="reduced"): ...
    def qr_renamed(a, /, *, mode="reduced"): ...
    def qr_missing(x, /): ...
    def qr_bad_default(x, /, *, mode="complete"): ...

    def qr_positional_only_mode(x, mode="reduced", /): ...

    # As in the official test, a keyword-only parameter may also be positional-or-keyword.
    assert signature_problems(qr_positional_mode, qr) == []
    assert signature_problems(qr_positional_only_mode, qr) == [
        "'mode' is positional-only, expected keyword-only"
    ]
    assert signature_problems(qr_renamed, qr) == []  # positional-only names are free
    assert signature_problems(qr_missing, qr) == ["keyword argument 'mode' missing"]
    assert signature_problems(qr_bad_default, qr) == [
        "'mode' defaults to 'complete', expected 'reduced'"
    ]
    assert signature_problems(lambda x, y, /: 0, matrix_power) == []
    assert signature_problems(lambda x, /: 0, matrix_power) == [
        "argument 'n' missing at position 1"
    ]


def _documented(func):
    """A Python function with the signature nanobind writes on the docstring's first line
    (MLX's C++ functions cannot be inspected otherwise)."""
    import ast
    import re

    try:
        inspect.signature(func)
        return func
    except (TypeError, ValueError):
        pass
    line = (func.__doc__ or "").strip().splitlines()[0]
    params = re.match(r"^\w+\((.*)\)\s*->", line).group(1)
    tree = ast.parse(f"def f({params}): ...")
    for arg in tree.body[0].args.args + tree.body[0].args.kwonlyargs:
        arg.annotation = None
    namespace: dict = {}
    exec(compile(tree, "<signature>", "exec"), namespace)  # noqa: S102 - parsed, annotations removed
    return namespace["f"]


if __name__ == "__main__":
    import mlx.core as mx

    for label, ns in (("mlx.core", mx), ("mlx_linalg.array_api", xp)):
        ok = 0
        for name, stub in sorted(LINALG_STUBS.items()):
            func = getattr(ns.linalg, name, None)
            problems = ["missing"] if func is None else signature_problems(_documented(func), stub)
            ok += not problems
            if problems:
                print(f"{label:22s} linalg.{name:18s} {problems}")
        print(f"{label}: {ok} of {len(LINALG_STUBS)} linalg signatures comply")
