"""Run a Metal kernel body of mlx_linalg on the CPU, for tests without a GPU.

The body is compiled as C++ against ``emulate.h`` (the Metal vocabulary, defined for the
host: a host thread per GPU thread, real barriers, SIMD-group shuffles through a
per-simdgroup exchange buffer) inside the signature MLX's Metal generator would write, and
run one threadgroup at a time. It checks what a compile check cannot: the algorithm, the
barriers and the SIMD-group traffic, with Metal's semantics rather than a GPU's timing.
It does not check performance, memory-model subtleties beyond barrier ordering, or the
Metal compiler itself.

``run(name, inputs, template=..., grid=..., threadgroup=..., output_shapes=...)`` mirrors
``mlx_linalg._kernels.launch`` with NumPy arrays in and out.
"""

import atexit
import functools
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mlx_linalg import _kernels  # noqa: E402

HEADER = Path(__file__).resolve().parent / "emulate.h"
C_TYPES = {"float32": "float", "int32": "int", "uint32": "uint", "bool": "bool"}
NP_TYPES = {"float32": np.float32, "int32": np.int32, "uint32": np.uint32, "bool": np.bool_}
ATTRIBUTE_VALUES = {
    "thread_position_in_grid": "uint3{b * T + tid, 0, 0}",
    "threadgroup_position_in_grid": "uint3{b, 0, 0}",
    "thread_position_in_threadgroup": "uint3{tid, 0, 0}",
    "threads_per_threadgroup": "uint3{T, 1, 1}",
    "threadgroups_per_grid": "uint3{G, 1, 1}",
    "threads_per_grid": "uint3{G * T, 1, 1}",
    "thread_index_in_threadgroup": "tid",
    "thread_index_in_simdgroup": "tid % 32",
    "simdgroup_index_in_threadgroup": "tid / 32",
    "simdgroups_per_threadgroup": "T / 32",
    "threads_per_simdgroup": "32u",
    "thread_execution_width": "32u",
}


def _value(v: int | bool) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def source(spec, template: tuple, inputs: list[np.ndarray], output_shapes: list) -> str:
    """The C++ program that runs ``spec`` on inputs read from files named on its command line."""
    params, args, decls = [], [], []
    for k, ((name, dtype), x) in enumerate(zip(spec.inputs, inputs, strict=True)):
        params.append(f"const {C_TYPES[dtype]}* {name}")
        decls.append(f"auto in{k} = std::make_unique<{C_TYPES[dtype]}[]>({max(x.size, 1)});")
        args.append(f"in{k}.get()")
        if f"{name}_shape" in spec.body:
            shape = ", ".join(str(d) for d in x.shape) or "0"
            decls.append(f"static const int {name}_shape_data[] = {{{shape}}};")
            params.append(f"const int* {name}_shape")
            args.append(f"{name}_shape_data")
    for k, ((name, dtype), shape) in enumerate(zip(spec.outputs, output_shapes, strict=True)):
        params.append(f"{C_TYPES[dtype]}* {name}")
        size = max(int(np.prod(shape)), 1)
        decls.append(f"auto out{k} = std::make_unique<{C_TYPES[dtype]}[]>({size});")
        args.append(f"out{k}.get()")
    for name, kind in _kernels.ATTRIBUTES:
        if name in spec.body:
            if name not in ATTRIBUTE_VALUES:
                raise ValueError(f"emulate: attribute {name} is not emulated")
            params.append(f"{kind} {name}")
            args.append(ATTRIBUTE_VALUES[name])
    tparams = ", ".join(f"{kind} {name}" for name, kind in spec.template)
    targs = ", ".join(_value(v) for _, v in template)
    headers = "\n".join(_kernels.read_source(h) for h in spec.headers)
    reads = "\n".join(
        f"  read(argv[{3 + k}], in{k}.get(), {x.nbytes});" for k, x in enumerate(inputs)
    )
    writes = "\n".join(
        f"  write(argv[{3 + len(inputs) + k}], out{k}.get(), "
        f"{int(np.prod(shape))} * sizeof(out{k}[0]));"
        for k, shape in enumerate(output_shapes)
    )
    call = f"kernel{'<' + targs + '>' if tparams else ''}({', '.join(args)})"
    return f"""#include "{HEADER}"
{headers}
{"template <" + tparams + ">" if tparams else ""}
void kernel({", ".join(params)}) {{
{spec.body}
}}

static void read(const char* path, void* data, size_t bytes) {{
  FILE* f = std::fopen(path, "rb");
  if (!f || std::fread(data, 1, bytes, f) != bytes) std::exit(3);
  std::fclose(f);
}}
static void write(const char* path, const void* data, size_t bytes) {{
  FILE* f = std::fopen(path, "wb");
  if (!f || std::fwrite(data, 1, bytes, f) != bytes) std::exit(4);
  std::fclose(f);
}}

int main(int argc, char** argv) {{
  const uint G = (uint)std::atoi(argv[1]);
  const uint T = (uint)std::atoi(argv[2]);
  {" ".join(decls)}
{reads}
  for (uint b = 0; b < G; ++b) {{
    emu::group = std::make_unique<std::barrier<>>(T);
    emu::simd.clear();
    for (uint w = 0; w < T / 32; ++w) emu::simd.push_back(std::make_unique<std::barrier<>>(32));
    std::vector<emu::host_thread> threads;
    for (uint tid = 0; tid < T; ++tid) {{
      threads.emplace_back([&, tid] {{
        emu::lane = tid % 32;
        emu::warp = tid / 32;
        {call};
        emu::simd[tid / 32]->arrive_and_drop();
        emu::group->arrive_and_drop();
      }});
    }}
    for (auto& t : threads) t.join();
  }}
{writes}
  return 0;
}}
"""


_built: dict[str, Path] = {}


@functools.cache
def _build_folder() -> Path:
    """A folder for this process's compiled programs, removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="emulate-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _binary(name: str, program: str) -> Path:
    """The program compiled, once per process for each distinct source (a kernel's launches
    with the same shapes and template arguments share one binary)."""
    key = hashlib.sha256(program.encode()).hexdigest()[:24]
    if key not in _built:
        binary = _build_folder() / key
        binary.with_suffix(".cpp").write_text(program)
        built = subprocess.run(
            ["g++", "-std=c++20", "-O1", "-pthread", "-w", "-o", str(binary), f"{binary}.cpp"],
            capture_output=True,
            text=True,
        )
        if built.returncode:
            raise RuntimeError(f"emulate: {name} did not compile:\n{built.stderr[-4000:]}")
        _built[key] = binary
    return _built[key]


def run(
    name: str,
    inputs: list[np.ndarray],
    *,
    template: dict,
    grid: tuple[int, int, int],
    threadgroup: tuple[int, int, int],
    output_shapes: list[tuple[int, ...]],
    timeout: float = 120,
) -> list[np.ndarray]:
    """Run kernel ``name`` on the CPU: the outputs as NumPy arrays, in declared order."""
    spec = _kernels.spec(name)
    inputs = [
        np.ascontiguousarray(x, dtype=NP_TYPES[d])
        for x, (_, d) in zip(inputs, spec.inputs, strict=True)
    ]
    args = _kernels._template_args(spec, template)
    threads = threadgroup[0] * threadgroup[1] * threadgroup[2]
    if threads % 32 or grid[0] % threads or grid[1:] != (1, 1) or threadgroup[1:] != (1, 1):
        raise ValueError("emulate: 1-D launches of whole threadgroups of 32k threads only")
    binary = _binary(name, source(spec, args, inputs, output_shapes))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files_in = [tmp / f"in{k}" for k in range(len(inputs))]
        files_out = [tmp / f"out{k}" for k in range(len(output_shapes))]
        for x, path in zip(inputs, files_in, strict=True):
            x.tofile(path)
        subprocess.run(
            [
                str(binary),
                str(grid[0] // threads),
                str(threads),
                *map(str, files_in),
                *map(str, files_out),
            ],
            check=True,
            timeout=timeout,
        )
        return [
            np.fromfile(path, dtype=NP_TYPES[d]).reshape(shape)
            for path, (_, d), shape in zip(files_out, spec.outputs, output_shapes, strict=True)
        ]
