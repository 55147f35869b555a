"""Gradients, JVPs and vmap for every dispatched op, whatever implementation runs it.

``_dispatch.run`` hands the implementation it picked to :func:`call`, which runs it inside an
``mx.custom_function`` carrying three rules:

- **vjp**: one rule per op in ``VJP_RULES`` (formulas in the rule docstrings and
  ``docs/gradients.md``), written in MLX operations plus dispatched ops, so the backward pass
  of a GPU op runs on the GPU and is itself differentiable;
- **jvp**: the transpose of the vjp (the vjp is linear in the cotangent, so differentiating it
  with ``mx.vjp`` gives ``J t``);
- **vmap**: implementations are natively batched, so the vmapped axis moves to the front and
  the op runs once on the whole stack.

The CPU (LAPACK) implementations are eager: they read their inputs on the host. Inside
``mx.compile`` or ``mx.vmap`` tracing that raises MLX's "eval during function transformations"
error; the forward then builds the op lazily from MLX's own CPU kernels
(``mlx_linalg._autodiff_traced``) instead, so traced code still computes the right values.

The ``failed`` mask of the dispatch contract travels as one extra, non-differentiable output.
Keywords (mode, lower, trans, ...) are static and closed over, never traced.
"""

import mlx.core as mx

from mlx_linalg import _autodiff_rules as rules
from mlx_linalg import _autodiff_traced as traced
from mlx_linalg._tracing import is_tracing_error


def call(op: str, impl, stream: object, arrays: tuple, keywords: dict) -> tuple:
    """Run ``impl(*arrays, **keywords)`` with gradients: returns ``(outputs, failed)``.

    Args:
        op: the dispatched op name (a key of ``rules.VJP_RULES``).
        impl: the implementation ``_dispatch`` picked (dispatch contract).
        stream: the caller's ``stream=`` argument; the backward pass runs there too.
        arrays: the validated MLX input arrays.
        keywords: the op's static keywords.

    Returns:
        ``(outputs, failed)`` as the dispatch contract describes; ``outputs`` is a tuple.
    """
    failed_was_none: list[bool] = []

    def forward(*xs):
        outputs, failed = _run_forward(op, impl, xs, keywords)
        failed_was_none.append(failed is None)
        if failed is None:
            failed = mx.zeros(xs[0].shape[:-2], dtype=mx.bool_)
        return (*outputs, failed)

    fn = mx.custom_function(forward)

    @fn.vjp
    def vjp(primals, cotangents, outputs):
        return rules.vjp(op, stream, keywords, _as_tuple(primals), cotangents[:-1], outputs[:-1])

    @fn.jvp
    def jvp(primals, tangents):
        primals = _as_tuple(primals)
        outputs = forward(*primals)
        return rules.jvp(op, stream, keywords, primals, _as_tuple(tangents), outputs[:-1]) + (
            mx.zeros_like(outputs[-1]),
        )

    @fn.vmap
    def vmap(inputs, axes):
        stacked = _stack(inputs, axes)
        outputs, failed = call(op, impl, stream, stacked, keywords)
        if failed is None:
            failed = mx.zeros(stacked[0].shape[:-2], dtype=mx.bool_)
        return (*outputs, failed), (0,) * (len(outputs) + 1)

    results = fn(*arrays)
    outputs, failed = tuple(results[:-1]), results[-1]
    return outputs, (None if failed_was_none and failed_was_none[0] else failed)


def _run_forward(op: str, impl, arrays: tuple, keywords: dict) -> tuple:
    """The implementation's ``(outputs, failed)``; the lazy MLX form while being traced."""
    try:
        outputs, failed = impl(*arrays, **keywords)
    except ValueError as error:
        if not is_tracing_error(error):
            raise
        outputs, failed = traced.run(op, *arrays, **keywords)
    return _as_tuple(outputs), failed


def _stack(inputs, axes) -> tuple:
    """vmap's inputs with the mapped axis first; unmapped inputs broadcast along it."""
    inputs, axes = _as_tuple(inputs), _as_tuple(axes)
    size = next(x.shape[ax] for x, ax in zip(inputs, axes, strict=True) if ax is not None)
    return tuple(
        mx.broadcast_to(x[None], (size, *x.shape)) if ax is None else mx.moveaxis(x, ax, 0)
        for x, ax in zip(inputs, axes, strict=True)
    )


def _as_tuple(x) -> tuple:
    """MLX passes a lone argument bare and several as a tuple; always give a tuple."""
    return tuple(x) if isinstance(x, tuple | list) else (x,)
