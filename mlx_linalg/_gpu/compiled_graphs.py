"""The blocked graphs traced once per input shape and replayed: ``mx.compile`` as a cache.

A blocked factorization is a Python loop that emits thousands of MLX ops (about 3 500 for a
solve at n = 4096), and building that graph costs host time for every op before the GPU
runs it. ``mx.compile`` traces the function once per input shape and dtype and replays the
traced graph on later calls, so a repeated call skips the Python loop (and MLX fuses
neighbouring elementwise ops on the way). Measured on an H100 (float32, one matrix,
2026-11-27, ``tools/bench_compiled.py``; docs/kernels-blocked.md, "Compiled graphs"): the
dispatched ops 1.15 to 1.9x faster than their eager graphs (solve at n = 4096 125 -> 93 ms,
qr 214 -> 138, cholesky 27 -> 20), results bit for bit the same, peak memory the same.

Tracing costs more than one eager call (MLX's graph passes: solve at 4096 335 against 125
ms, qr at 8192 2.6 against 0.79 s), and MLX compiles each new fused elementwise kernel with
NVRTC (seconds per kernel, cached on disk under ``MLX_PTX_CACHE_DIR``, by default the
temporary directory). So the first call of a shape runs eagerly and the second traces: a
one-off call pays nothing, a loop pays one trace.

The rules of ``blocked_rules`` wrap their implementations with :func:`cached`. What makes
this safe:

* The graphs never read a value on the host (tested under ``mx.compile`` in the blocked
  tests), so the trace is the graph that eager evaluation runs.
* One ``mx.compile`` object per (implementation, keywords, context): keywords such as
  ``upper`` or ``mode`` change the graph, a traced graph keeps the stream its ops were built
  on, and refinement's factorization (``_precision.reduced_products``) has no split
  products. ``mx.compile`` itself keys on the input shapes and dtypes.
* Python scalars that change with the step or the order must not meet an array in an
  elementwise op: ``mx.compile`` inlines scalar operands into a fused kernel's source, so
  each step would compile a kernel of its own (a first call at n = 4096 took 125 s of
  NVRTC that way). ``tests/test_compiled_graphs.py`` checks that a second matrix order
  compiles no new fused kernel.
* MLX's one-time detection of reduced-precision products evaluates a probe product, so it
  runs before any trace (:func:`_context`).
* Called while the user's ``mx.compile`` or ``mx.grad`` traces, a compiled function is
  traced through like any other (tested).

``ENABLED = False`` builds every graph eagerly (for measurements); :func:`clear` drops the
traced graphs.
"""

import functools
import threading
from collections.abc import Callable

import mlx.core as mx

from mlx_linalg import _precision

ENABLED = True
# Traced input signatures kept per graph: a trace holds its graph's nodes (thousands for a
# large factorization) on the host, so a program cycling through many shapes starts a
# fresh mx.compile object (and lets MLX drop the old one's traces) past this many.
MAX_TRACED = 32
_caches: list[dict] = []  # every cached() wrapper's graphs, for clear()


def cached(impl: Callable[..., tuple]) -> Callable[..., tuple]:
    """``impl`` (the dispatch contract: arrays and keywords in, ``(outputs, failed)`` out)
    run through one ``mx.compile`` per keyword set and :func:`_context`, from the second
    call of each input shape on.

    ``outputs`` may be an array or a tuple of arrays and ``failed`` an array or None, as
    ``impl`` returns them; keywords that cannot be a dictionary key run ``impl`` eagerly.
    """
    graphs: dict = {}

    @functools.wraps(impl)
    def run(*arrays: mx.array, **keywords) -> tuple:
        if not ENABLED:
            return impl(*arrays, **keywords)
        try:
            key = (tuple(sorted(keywords.items())), *_context())
            graph = graphs.get(key)
        except TypeError:  # an unhashable keyword value
            return impl(*arrays, **keywords)
        if graph is None:
            graph = graphs[key] = _Graph(impl, keywords)
        return graph(arrays)

    _caches.append(graphs)
    run.graphs = graphs  # key -> _Graph, for inspection
    return run


def clear() -> None:
    """Drop every traced graph (after changing a module-level setting that the graphs read
    when they are traced, such as a block size)."""
    for graphs in _caches:
        graphs.clear()


def _context() -> tuple:
    """What besides the keywords shapes a graph: the default stream (``repr``: an
    ``mx.Stream`` compares by value but hashes by identity) and whether float32 products
    are split (TF32 detected, outside ``_precision.reduced_products``). ``needs_split``
    probes the device the first time, an evaluation, so it runs here, never in a trace."""
    return repr(mx.default_stream(mx.default_device())), _precision.needs_split()


class _Graph:
    """One compiled form of ``impl`` with fixed keywords, used from the second call of each
    input signature on (the first runs ``impl`` eagerly). A compiled function returns a
    flat list of arrays, so the output structure (a lone array or a tuple; ``failed`` None
    or not) is recorded when a signature is traced and rebuilt on every replay."""

    def __init__(self, impl: Callable[..., tuple], keywords: dict):
        self.impl, self.keywords = impl, keywords
        self.seen: set = set()
        self.structures: dict = {}
        self.compiled = mx.compile(self._flat)
        # One thread at a time traces or replays (builds the lazy outputs; evaluation is
        # not held): MLX's compile cache is shared state.
        self.lock = threading.RLock()

    def _flat(self, *arrays: mx.array) -> list:
        outputs, failed = self.impl(*arrays, **self.keywords)
        single = isinstance(outputs, mx.array)
        self.structures[_signature(arrays)] = (single, failed is None)
        flat = [outputs] if single else list(outputs)
        return flat if failed is None else [*flat, failed]

    def __call__(self, arrays: tuple) -> tuple:
        signature = _signature(arrays)
        if signature not in self.seen:
            self.seen.add(signature)
            return self.impl(*arrays, **self.keywords)
        with self.lock:
            if signature not in self.structures and len(self.structures) >= MAX_TRACED:
                self.structures.clear()
                self.compiled = mx.compile(self._flat)
            flat = self.compiled(*arrays)
            single, no_failed = self.structures[signature]
        outputs, failed = (flat, None) if no_failed else (flat[:-1], flat[-1])
        return (outputs[0] if single else tuple(outputs)), failed


def _signature(arrays: tuple) -> tuple:
    """What ``mx.compile`` retraces for: the inputs' shapes and dtypes."""
    return tuple((x.shape, x.dtype) for x in arrays)
