"""The kernel layer: load kernel sources from ``metal/``, compile each once, launch anywhere.

Kernels are written once, as Metal Shading Language bodies for ``mx.fast.metal_kernel``, and
run unchanged on NVIDIA GPUs through ``mx.fast.cuda_kernel`` with ``metal/cuda_compat.h``
defining the Metal vocabulary. Code above this module never branches on Metal vs CUDA.

Contract for a kernel file ``metal/<name>.metal`` (the body of one kernel):

* It starts with a comment block that declares the kernel; the layer parses it, the C++
  check (``tools/metal_check``) compiles against it::

      // @kernel cholesky_small
      // @inputs A:float32
      // @outputs L:float32 info:int32
      // @template NMAX:int UPPER:bool
      // @headers linalg_common.h
      // @check NMAX=8,UPPER=false NMAX=64,UPPER=true

  ``@inputs``/``@outputs``: parameter names and dtypes (float32, int32, uint32, bool),
  in signature order. ``@template``: compile-time ``int``/``bool`` arguments, in order;
  every launch passes all of them. ``@headers``: files of ``metal/`` pasted, in order,
  into the kernel's header after the backend prelude (``metal_prelude.h`` on Metal,
  ``cuda_compat.h`` on CUDA). ``@check``: template values the C++ check instantiates.
* Names a body may use: its inputs and outputs (``const device T*`` / ``device T*``);
  ``<input>_shape`` (int per axis: MLX passes it when the name occurs in the body; not
  ``_strides``/``_ndim``: inputs are made row-contiguous); its template arguments; the
  thread attributes of :data:`ATTRIBUTES` (``uint``/``uint3`` as in Metal); Metal's
  address spaces, ``threadgroup_barrier``/``simdgroup_barrier``, ``simd_*`` reductions and
  shuffles, ``metal::`` math, ``NAN``/``INFINITY``; what its headers define.
* Rules, which hold on both backends only when kept:
  - the grid counts threads, not threadgroups; every body bounds-checks what it indexes
    (CUDA rounds the grid up to whole blocks);
  - threadgroup memory is a static array declared in the body (``threadgroup float
    t[N];``), at most 32 KB in all; a pointer to it is written ``LA_TG float*``, never
    ``threadgroup float*`` (CUDA has no such qualifier on pointers);
  - threadgroup sizes are multiples of 32, and ``simd_*`` functions are called only where
    all 32 lanes of the simdgroup are active (no divergent SIMD-group calls); no reliance
    on lockstep execution: ``simdgroup_barrier``/``threadgroup_barrier`` order memory;
  - helpers in headers are ``LA_INLINE`` functions; no program-scope variables;
  - ``LA_UNROLL`` before a loop with a compile-time trip count unrolls it fully (so
    register arrays indexed by its counter stay in registers) on both backends;
  - no scalar inputs (they are pointers in CUDA, values in Metal): sizes come from
    ``_shape`` or template arguments; the identifier ``inf`` is taken (a CUDA macro);
  - a runtime integer (a column offset, a width) comes in the shape of an empty input
    made by :func:`extents`, not in an array's memory: the shape travels with the launch,
    while a one-element array the host wrote sits in MLX's CUDA managed memory, and the
    first read of it stalled every thread about 10 µs (a page migration) on an H200;
  - outputs are uninitialized unless ``init_value`` is passed: write every element.

Each kernel is compiled once per (name, template arguments) in a thread-safe cache. On a
machine without an MLX GPU backend, :func:`launch` raises a RuntimeError saying so.
"""

import functools
import importlib.resources
import threading
from pathlib import Path
from typing import NamedTuple

import mlx.core as mx
import numpy as np

# Thread attributes that MLX's Metal signature generator adds when a body names them, in
# the order it writes them (mlx/backend/metal/custom_kernel.cpp), with their Metal types.
# cuda_compat.h defines each one for CUDA.
ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("dispatch_quadgroups_per_threadgroup", "uint"),
    ("dispatch_simdgroups_per_threadgroup", "uint"),
    ("dispatch_threads_per_threadgroup", "uint3"),
    ("grid_origin", "uint3"),
    ("grid_size", "uint3"),
    ("quadgroup_index_in_threadgroup", "uint"),
    ("quadgroups_per_threadgroup", "uint"),
    ("simdgroup_index_in_threadgroup", "uint"),
    ("simdgroups_per_threadgroup", "uint"),
    ("thread_execution_width", "uint"),
    ("thread_index_in_quadgroup", "uint"),
    ("thread_index_in_simdgroup", "uint"),
    ("thread_index_in_threadgroup", "uint"),
    ("thread_position_in_grid", "uint3"),
    ("thread_position_in_threadgroup", "uint3"),
    ("threadgroup_position_in_grid", "uint3"),
    ("threadgroups_per_grid", "uint3"),
    ("threads_per_grid", "uint3"),
    ("threads_per_simdgroup", "uint"),
    ("threads_per_threadgroup", "uint3"),
)

DTYPES: dict[str, mx.Dtype] = {
    "float32": mx.float32,
    "int32": mx.int32,
    "uint32": mx.uint32,
    "bool": mx.bool_,
}
TEMPLATE_KINDS = {"int": int, "bool": bool}

MAX_THREADS_PER_THREADGROUP = 1024
MAX_THREADGROUP_MEMORY = 32 * 1024  # bytes, Apple GPUs
SIMD_WIDTH = 32
MAX_GRID = 2**31 - 1  # MLX passes grid sizes as int

_METAL_PRELUDE = "metal_prelude.h"
_CUDA_PRELUDE = "cuda_compat.h"
_NAME_PREFIX = "mlx_linalg_"


class KernelSpec(NamedTuple):
    """A kernel's declaration, parsed from the comment block at the top of its file.

    Attributes:
        name: kernel name; the body lives in ``metal/<name>.metal``.
        inputs: ``(name, dtype)`` per input, in signature order.
        outputs: ``(name, dtype)`` per output, in signature order.
        template: ``(name, kind)`` per template argument, kind ``"int"`` or ``"bool"``.
        headers: files of ``metal/`` pasted into the header after the backend prelude.
        checks: template instantiations for the C++ check, each a tuple of
            ``(name, value)`` pairs in template order.
        body: the kernel body (the whole file).
    """

    name: str
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]
    template: tuple[tuple[str, str], ...]
    headers: tuple[str, ...]
    checks: tuple[tuple[tuple[str, int | bool], ...], ...]
    body: str


def _metal_dir():
    """Where the kernel sources are: the ``mlx_linalg.metal`` package (an installed wheel or
    an editable install), else ``metal/`` beside the ``mlx_linalg`` source folder."""
    try:
        return importlib.resources.files("mlx_linalg.metal")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "metal"


def read_source(filename: str) -> str:
    """The text of ``metal/<filename>`` (a kernel body or a header)."""
    path = _metal_dir() / filename
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"[mlx_linalg.kernels] no kernel source {filename!r} in {_metal_dir()}"
        ) from None


def kernel_names() -> tuple[str, ...]:
    """Names of every kernel shipped in ``metal/``."""
    return tuple(
        sorted(
            p.name[: -len(".metal")] for p in _metal_dir().iterdir() if p.name.endswith(".metal")
        )
    )


def _parse_pairs(fn: str, field: str, words: list[str], allowed: dict) -> tuple:
    pairs = []
    for word in words:
        name, sep, kind = word.partition(":")
        if not sep or not name.isidentifier() or kind not in allowed:
            raise ValueError(
                f"[mlx_linalg.kernels] {fn}: bad @{field} entry {word!r}; expected "
                f"NAME:TYPE with TYPE one of {sorted(allowed)}"
            )
        pairs.append((name, kind))
    return tuple(pairs)


def _parse_value(fn: str, kind: str, text: str) -> int | bool:
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"[mlx_linalg.kernels] {fn}: bool template value {text!r}")
        return text == "true"
    return int(text)


def parse_spec(name: str, body: str) -> KernelSpec:
    """Parse the ``// @field ...`` declaration block of a kernel body.

    Raises:
        ValueError: a field is missing, repeated, malformed, or names the wrong kernel.
    """
    fields: dict[str, list[str]] = {}
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped.startswith("//"):
            if stripped:
                break
            continue
        text = stripped[2:].strip()
        if text.startswith("@"):
            key, _, rest = text[1:].partition(" ")
            if key in fields:
                raise ValueError(f"[mlx_linalg.kernels] {name}: @{key} given twice")
            fields[key] = rest.split()
    for key in ("kernel", "inputs", "outputs"):
        if key not in fields:
            raise ValueError(f"[mlx_linalg.kernels] {name}: missing // @{key} line")
    if fields["kernel"] != [name]:
        raise ValueError(
            f"[mlx_linalg.kernels] {name}: file declares @kernel {' '.join(fields['kernel'])}"
        )
    inputs = _parse_pairs(name, "inputs", fields["inputs"], DTYPES)
    outputs = _parse_pairs(name, "outputs", fields["outputs"], DTYPES)
    template = _parse_pairs(name, "template", fields.get("template", []), TEMPLATE_KINDS)
    kinds = dict(template)
    checks = []
    for word in fields.get("check", []):
        values = dict(item.partition("=")[::2] for item in word.split(","))
        if set(values) != set(kinds):
            raise ValueError(
                f"[mlx_linalg.kernels] {name}: @check {word!r} must set exactly "
                f"{', '.join(kinds) or 'nothing'}"
            )
        checks.append(tuple((t, _parse_value(name, kinds[t], values[t])) for t, _ in template))
    if template and not checks:
        raise ValueError(f"[mlx_linalg.kernels] {name}: a templated kernel needs @check values")
    return KernelSpec(
        name=name,
        inputs=inputs,
        outputs=outputs,
        template=template,
        headers=tuple(fields.get("headers", [])),
        checks=tuple(checks),
        body=body,
    )


_lock = threading.Lock()
_specs: dict[str, KernelSpec] = {}
_compiled: dict[tuple, object] = {}


def spec(name: str) -> KernelSpec:
    """The parsed declaration of kernel ``name`` (read from disk once)."""
    with _lock:
        found = _specs.get(name)
    if found is None:
        found = parse_spec(name, read_source(f"{name}.metal"))
        with _lock:
            found = _specs.setdefault(name, found)
    return found


def backend() -> str | None:
    """``"metal"`` or ``"cuda"``: the GPU backend of this MLX build; None without one."""
    if mx.metal.is_available():
        return "metal"
    if mx.cuda.is_available():
        return "cuda"
    return None


def header(kernel: KernelSpec, which: str) -> str:
    """The header text passed to MLX for ``kernel`` on backend ``which``."""
    prelude = _METAL_PRELUDE if which == "metal" else _CUDA_PRELUDE
    return "\n".join(read_source(h) for h in (prelude, *kernel.headers))


def _build(kernel: KernelSpec, which: str):
    names = dict(
        name=_NAME_PREFIX + kernel.name,
        input_names=[n for n, _ in kernel.inputs],
        output_names=[n for n, _ in kernel.outputs],
        source=kernel.body,
        header=header(kernel, which),
        ensure_row_contiguous=True,
    )
    if which == "metal":
        return mx.fast.metal_kernel(**names)
    return mx.fast.cuda_kernel(**names)


def compiled(name: str, template: tuple[tuple[str, int | bool], ...]):
    """The MLX kernel object for ``name`` with these template arguments, made once.

    MLX compiles the source on the first launch of each template instantiation and keeps
    the binary; this cache makes sure the kernel object (and so that compiled library) is
    created once per (name, template arguments), also when threads race for it.
    """
    key = (name, template)
    with _lock:
        found = _compiled.get(key)
    if found is not None:
        return found
    which = backend()
    if which is None:
        raise RuntimeError(
            "[mlx_linalg.kernels] no GPU backend: this MLX build has neither Metal nor CUDA "
            "(mx.metal.is_available() and mx.cuda.is_available() are False). Run on the CPU "
            "stream, or install mlx with Metal (macOS on Apple silicon) or mlx[cuda13]."
        )
    built = _build(spec(name), which)
    with _lock:
        return _compiled.setdefault(key, built)


def _template_args(kernel: KernelSpec, template: dict) -> tuple[tuple[str, int | bool], ...]:
    if set(template) != {t for t, _ in kernel.template}:
        raise ValueError(
            f"[mlx_linalg.kernels] {kernel.name}: expected template arguments "
            f"{[t for t, _ in kernel.template]}, got {sorted(template)}"
        )
    args = []
    for t, kind in kernel.template:
        value = template[t]
        if TEMPLATE_KINDS[kind] is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"[mlx_linalg.kernels] {kernel.name}: template {t} must be an int")
        if TEMPLATE_KINDS[kind] is bool and not isinstance(value, bool):
            raise TypeError(f"[mlx_linalg.kernels] {kernel.name}: template {t} must be a bool")
        args.append((t, value))
    return tuple(args)


def extents(*values: int) -> mx.array:
    """An empty int32 array of shape ``(*values, 0)``: non-negative integers for a kernel,
    which reads them as ``<input>_shape[i]``, passed with the launch like a template
    argument but without a compilation per value, and never read from memory (built from
    host data: no op to evaluate, no launch)."""
    return mx.array(np.zeros((*values, 0), dtype=np.int32))


def launch(
    name: str,
    inputs: list[mx.array],
    *,
    template: dict,
    grid: tuple[int, int, int],
    threadgroup: tuple[int, int, int],
    output_shapes: list[tuple[int, ...]],
    init_value: float | None = None,
    stream=None,
) -> list[mx.array]:
    """Launch kernel ``name`` on the GPU; lazy, like any MLX op.

    Args:
        name: kernel name (``metal/<name>.metal``).
        inputs: arrays in the declared order and dtypes.
        template: every declared template argument, by name.
        grid: threads (not threadgroups) along x, y, z.
        threadgroup: threads per threadgroup; the product a multiple of 32, at most 1024.
        output_shapes: one shape per declared output; dtypes come from the declaration.
        init_value: fill the outputs with this before the kernel runs (else uninitialized).
        stream: MLX stream or device; when None, the default stream if the default device
            is a GPU (so `with mx.stream(...)` applies), else the GPU's default stream.

    Returns:
        The outputs, in declared order.

    Raises:
        RuntimeError: no GPU backend in this MLX build.
        ValueError, TypeError: a launch that breaks the kernel's declaration.
    """
    function, args, output_dtypes = _checked(
        name,
        tuple(x.dtype for x in inputs),
        tuple((t, type(v), v) for t, v in template.items()),
        tuple(grid),
        tuple(threadgroup),
        len(output_shapes),
    )
    return function(
        inputs=inputs,
        template=args,
        grid=grid,
        threadgroup=threadgroup,
        output_shapes=output_shapes,
        output_dtypes=output_dtypes,
        init_value=init_value,
        stream=stream if stream is not None else _default_gpu_stream(),
    )


@functools.lru_cache(maxsize=4096)
def _checked(
    name: str,
    dtypes: tuple,
    template: tuple,
    grid: tuple[int, ...],
    threadgroup: tuple[int, ...],
    outputs: int,
) -> tuple:
    """A launch checked against the declaration, once per distinct launch (the checks cost
    microseconds per call, a tenth of a small batch's whole time on a GPU): ``(kernel
    object, template list, output dtypes)``. ``template`` holds (name, type, value)
    triples, so that True and 1 are different launches."""
    kernel = spec(name)
    if len(dtypes) != len(kernel.inputs) or outputs != len(kernel.outputs):
        raise ValueError(
            f"[mlx_linalg.kernels] {name}: expected {len(kernel.inputs)} inputs and "
            f"{len(kernel.outputs)} outputs, got {len(dtypes)} and {outputs}"
        )
    for got, (arg, dtype) in zip(dtypes, kernel.inputs, strict=True):
        if got != DTYPES[dtype]:
            raise TypeError(f"[mlx_linalg.kernels] {name}: input {arg} must be {dtype}, got {got}")
    threads = threadgroup[0] * threadgroup[1] * threadgroup[2]
    if threads % SIMD_WIDTH or not 0 < threads <= MAX_THREADS_PER_THREADGROUP:
        raise ValueError(
            f"[mlx_linalg.kernels] {name}: threadgroup {threadgroup} must hold a multiple of "
            f"{SIMD_WIDTH} threads, at most {MAX_THREADS_PER_THREADGROUP}"
        )
    if any(not 0 < g <= MAX_GRID for g in grid):
        raise ValueError(f"[mlx_linalg.kernels] {name}: grid {grid} out of range")
    args = _template_args(kernel, {t: v for t, _, v in template})
    return compiled(name, args), list(args), [DTYPES[d] for _, d in kernel.outputs]


def _default_gpu_stream() -> mx.Device | None:
    """None (MLX's default stream, e.g. one set by ``mx.stream``) when the default device is a
    GPU, else the GPU's default stream."""
    return None if mx.default_device().type == mx.DeviceType.gpu else mx.gpu
