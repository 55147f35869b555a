"""One adapter per framework: how it receives the data, runs each op, and synchronizes.

A :class:`Peer` converts the host (NumPy) operands to its own arrays on its device in
:meth:`Peer.prepare`, outside the timed region, and :meth:`Peer.runner` returns a callable that
does one complete run *including* the framework's synchronization, so that the wall clock
measures the finished work:

============  ======================================  =========================================
peer          ops from                                synchronization
============  ======================================  =========================================
mlx_linalg    ``mlx_linalg`` on ``--device``'s stream  ``mx.eval`` of every output
mx.linalg     ``mx.linalg`` on ``mx.cpu`` (its only    ``mx.eval``
              stream for decompositions in MLX 0.32)
numpy         ``numpy.linalg`` (host)                 none (eager)
scipy         ``scipy.linalg``, check_finite=False    none (eager)
torch         ``torch.linalg`` on cpu or cuda         ``torch.cuda.synchronize`` on cuda
cupy          ``cupy.linalg`` (cuda only)             device synchronize
jax           ``jax.numpy.linalg`` under ``jax.jit``  ``jax.block_until_ready``
============  ======================================  =========================================

Peers are compared at equal accuracy: TF32 is switched off for float32 matmuls in PyTorch
(``allow_tf32 = False``, matmul precision "highest") and JAX (``jax_default_matmul_precision``
"float32"); CuPy uses TF32 only when ``CUPY_TF32=1`` is set, which the machine description
records. Only mlx_linalg (``ours``) is the subject; the others are peers.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cases import Case

ALL_PEERS: tuple[str, ...] = ("mlx_linalg", "mx.linalg", "numpy", "scipy", "torch", "cupy", "jax")
OURS = "mlx_linalg"
# The share of MLX's default memory limit that the benchmark lets MLX use on a GPU that the
# other peers share (MLXLinalg._share_gpu); MLX's default limit, read once per process.
MLX_GPU_SHARE = 0.5
_mlx_default_limit: int | None = None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


class Unavailable(RuntimeError):
    """The peer cannot run here (not importable, no such device)."""


class Peer:
    """Base adapter. Subclasses fill ``name``, ``_load`` and ``_ops``.

    Attributes:
        name: the peer's name in tables and JSON.
        device: "cpu" or "gpu", where its arrays live.
    """

    name = ""
    distribution = ""

    def __init__(self, device: str):
        self.device = device
        self._ops: dict[str, Callable[..., Any]] = {}

    def load(self) -> None:
        """Import the framework and build the op table; raise :class:`Unavailable` if not here."""
        raise NotImplementedError

    @property
    def version(self) -> str | None:
        return _version(self.distribution) if self.distribution else None

    def supports(self, case: Case) -> bool:
        return case.op in self._ops and np.dtype(case.dtype).name in self.dtypes()

    def dtypes(self) -> tuple[str, ...]:
        return ("float32", "float64", "complex64")

    def prepare(self, arrays: tuple[np.ndarray, ...]) -> tuple:
        """The operands as this framework's arrays on its device (done outside timing)."""
        return arrays

    def sync(self, outputs: Any) -> Any:
        """Block until ``outputs`` are computed; return them."""
        return outputs

    def runner(self, case: Case, operands: tuple) -> Callable[[], Any]:
        """A callable that runs ``case.op`` once on ``operands`` and synchronizes."""
        op = self._ops[case.op]

        def run() -> Any:
            return self.sync(op(*operands))

        return run

    def to_numpy(self, outputs: Any) -> tuple[np.ndarray, ...]:
        """The outputs as a tuple of NumPy arrays (for the accuracy check)."""
        if isinstance(outputs, (tuple, list)):
            return tuple(np.asarray(o) for o in outputs)
        return (np.asarray(outputs),)

    def release(self) -> None:
        """Give cached device memory back between cases."""

    def held_bytes(self) -> int | None:
        """GPU memory this framework holds (allocated or cached), or None where it has no GPU
        arrays or cannot say; read after :meth:`release`, so that a run that runs out of
        GPU memory shows which framework kept it."""
        return None

    def settings(self) -> dict:
        """Precision-relevant settings, for the machine description."""
        return {}


class _MLXBase(Peer):
    distribution = "mlx"

    def _load_mlx(self):
        try:
            import mlx.core as mx
        except ImportError as exc:
            raise Unavailable(f"mlx is not importable: {exc}") from exc
        self.mx = mx
        return mx

    def prepare(self, arrays):
        # An explicit dtype: MLX would otherwise turn float64 NumPy arrays into float32.
        operands = tuple(self.mx.array(a, dtype=getattr(self.mx, a.dtype.name)) for a in arrays)
        self.mx.eval(*operands)
        return operands

    def sync(self, outputs):
        self.mx.eval(outputs)
        return outputs

    def to_numpy(self, outputs):
        if isinstance(outputs, (tuple, list)):
            return tuple(np.array(o) for o in outputs)
        return (np.array(outputs),)

    def release(self):
        self.mx.clear_cache()

    def held_bytes(self):
        # MLX's allocator, shared by mlx_linalg and mx.linalg in one process.
        if self.device != "gpu":
            return None
        return self.mx.get_active_memory() + self.mx.get_cache_memory()


class MLXLinalg(_MLXBase):
    """mlx_linalg, the subject, on the stream of ``--device``."""

    name = OURS
    distribution = "mlx-linalg"

    def load(self):
        mx = self._load_mlx()
        try:
            import mlx_linalg as la
        except ImportError as exc:
            raise Unavailable(f"mlx_linalg is not importable: {exc}") from exc
        if self.device == "gpu" and not mx.is_available(mx.gpu):
            raise Unavailable("MLX has no GPU backend here")
        if self.device == "gpu":
            self._share_gpu(mx)
        stream = mx.gpu if self.device == "gpu" else mx.cpu
        with_stream = functools.partial
        self._ops = {
            "cholesky": with_stream(la.cholesky, stream=stream),
            "lu": with_stream(la.lu_factor, stream=stream),
            "qr": with_stream(la.qr, stream=stream),
            "eigh": with_stream(la.eigh, stream=stream),
            "eigvalsh": with_stream(la.eigvalsh, stream=stream),
            "svd": with_stream(la.svd, stream=stream),
            "svdvals": with_stream(la.svdvals, stream=stream),
            "solve": with_stream(la.solve, stream=stream),
            "inv": with_stream(la.inv, stream=stream),
            "det": with_stream(la.det, stream=stream),
            "matmul": with_stream(la.matmul, stream=stream),
        }

    @staticmethod
    def _share_gpu(mx) -> None:
        """Cap MLX's memory at :data:`MLX_GPU_SHARE` of its default limit, once per process.

        The peers share one GPU in one process. MLX's limit (95% of the device on CUDA)
        bounds its active memory plus its cache of freed buffers, and the large
        factorizations free a buffer of a new size at every step (the trailing matrix
        shrinks), so the cache grows toward the limit within one call: qr at n = 8192 took
        the H100 to 78.4 of 79.6 GiB alone with 4-5 GiB active (docs/benchmarks.md), and
        ran out of memory beside PyTorch's, CuPy's and JAX's contexts. Under the cap MLX
        gives cached buffers back sooner; its time was the same (0.69 against 0.71 s).
        """
        global _mlx_default_limit
        if _mlx_default_limit is None:
            _mlx_default_limit = mx.get_memory_limit()
            mx.set_memory_limit(int(_mlx_default_limit * MLX_GPU_SHARE))

    def settings(self):
        settings = {"stream": self.device, "MLX_ENABLE_TF32": os.environ.get("MLX_ENABLE_TF32")}
        if self.device == "gpu":
            settings["memory_limit_gib"] = round(self.mx.get_memory_limit() / 2**30, 1)
            settings["memory_limit_share"] = MLX_GPU_SHARE
        return settings


class MXLinalg(_MLXBase):
    """MLX's own ``mx.linalg`` on the CPU stream (the only one its decompositions run on)."""

    name = "mx.linalg"

    def load(self):
        mx = self._load_mlx()
        cpu = mx.cpu
        linalg = mx.linalg
        self._ops = {
            "cholesky": functools.partial(linalg.cholesky, stream=cpu),
            "lu": functools.partial(linalg.lu_factor, stream=cpu),
            "qr": functools.partial(linalg.qr, stream=cpu),
            "eigh": functools.partial(linalg.eigh, stream=cpu),
            "eigvalsh": functools.partial(linalg.eigvalsh, stream=cpu),
            "svd": functools.partial(linalg.svd, stream=cpu),
            "svdvals": functools.partial(linalg.svd, compute_uv=False, stream=cpu),
            "solve": functools.partial(linalg.solve, stream=cpu),
            "inv": functools.partial(linalg.inv, stream=cpu),
            "det": functools.partial(linalg.det, stream=cpu),
            "matmul": functools.partial(mx.matmul, stream=cpu),
        }

    def settings(self):
        return {"stream": "cpu"}


class NumPyPeer(Peer):
    name = "numpy"
    distribution = "numpy"

    def load(self):
        linalg = np.linalg
        self._ops = {
            "cholesky": linalg.cholesky,
            "qr": linalg.qr,
            "eigh": linalg.eigh,
            "eigvalsh": linalg.eigvalsh,
            "svd": linalg.svd,
            "svdvals": functools.partial(linalg.svd, compute_uv=False),
            "solve": linalg.solve,
            "inv": linalg.inv,
            "det": linalg.det,
            "matmul": np.matmul,
        }


class SciPyPeer(Peer):
    name = "scipy"
    distribution = "scipy"

    def load(self):
        try:
            import scipy.linalg as sl
        except ImportError as exc:
            raise Unavailable(f"scipy is not importable: {exc}") from exc
        fast = {"check_finite": False}
        self._ops = {
            "cholesky": functools.partial(sl.cholesky, lower=True, **fast),
            "lu": functools.partial(sl.lu_factor, **fast),
            "qr": functools.partial(sl.qr, mode="economic", **fast),
            "eigh": functools.partial(sl.eigh, **fast),
            "eigvalsh": functools.partial(sl.eigh, eigvals_only=True, **fast),
            "svd": functools.partial(sl.svd, **fast),
            "svdvals": functools.partial(sl.svd, compute_uv=False, **fast),
            "solve": functools.partial(sl.solve, **fast),
            "inv": functools.partial(sl.inv, **fast),
            "det": functools.partial(sl.det, **fast),
        }


class TorchPeer(Peer):
    name = "torch"
    distribution = "torch"

    def load(self):
        try:
            import torch
        except ImportError as exc:
            raise Unavailable(f"torch is not importable: {exc}") from exc
        if self.device == "gpu" and not torch.cuda.is_available():
            raise Unavailable("torch has no CUDA device here")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        self.torch = torch
        self.target = torch.device("cuda" if self.device == "gpu" else "cpu")
        linalg = torch.linalg
        self._ops = {
            "cholesky": linalg.cholesky,
            "lu": linalg.lu_factor,
            "qr": linalg.qr,
            "eigh": linalg.eigh,
            "eigvalsh": linalg.eigvalsh,
            "svd": linalg.svd,
            "svdvals": linalg.svdvals,
            "solve": linalg.solve,
            "inv": linalg.inv,
            "det": linalg.det,
            "matmul": torch.matmul,
        }

    def prepare(self, arrays):
        operands = tuple(self.torch.from_numpy(np.array(a)).to(self.target) for a in arrays)
        self.sync(operands)
        return operands

    def sync(self, outputs):
        if self.target.type == "cuda":
            self.torch.cuda.synchronize()
        return outputs

    def to_numpy(self, outputs):
        if isinstance(outputs, (tuple, list)):
            return tuple(o.cpu().numpy() for o in outputs)
        return (outputs.cpu().numpy(),)

    def release(self):
        if self.target.type == "cuda":
            self.torch.cuda.empty_cache()

    def held_bytes(self):
        return self.torch.cuda.memory_reserved(self.target) if self.target.type == "cuda" else None

    def settings(self):
        return {
            "device": str(self.target),
            "allow_tf32": bool(self.torch.backends.cuda.matmul.allow_tf32),
            "float32_matmul_precision": self.torch.get_float32_matmul_precision(),
            "num_threads": self.torch.get_num_threads(),
        }


class CuPyPeer(Peer):
    name = "cupy"
    distribution = ""

    def load(self):
        if self.device != "gpu":
            raise Unavailable("cupy runs on CUDA devices only (use --device gpu)")
        try:
            import cupy
            import cupyx.scipy.linalg as cl
        except ImportError as exc:
            raise Unavailable(f"cupy is not importable: {exc}") from exc
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise Unavailable(f"cupy finds no CUDA device: {exc}") from exc
        self.cp = cupy
        linalg = cupy.linalg
        self._ops = {
            "cholesky": linalg.cholesky,
            "lu": cl.lu_factor,
            "qr": linalg.qr,
            "eigh": linalg.eigh,
            "eigvalsh": linalg.eigvalsh,
            "svd": linalg.svd,
            "svdvals": functools.partial(linalg.svd, compute_uv=False),
            "solve": linalg.solve,
            "inv": linalg.inv,
            "det": linalg.det,
            "matmul": cupy.matmul,
        }

    @property
    def version(self):
        return getattr(getattr(self, "cp", None), "__version__", None)

    def prepare(self, arrays):
        operands = tuple(self.cp.asarray(a) for a in arrays)
        self.sync(operands)
        return operands

    def sync(self, outputs):
        self.cp.cuda.Device().synchronize()
        return outputs

    def to_numpy(self, outputs):
        if isinstance(outputs, (tuple, list)):
            return tuple(self.cp.asnumpy(o) for o in outputs)
        return (self.cp.asnumpy(outputs),)

    def release(self):
        self.cp.get_default_memory_pool().free_all_blocks()

    def held_bytes(self):
        return self.cp.get_default_memory_pool().total_bytes()

    def settings(self):
        return {"CUPY_TF32": os.environ.get("CUPY_TF32")}


class JAXPeer(Peer):
    name = "jax"
    distribution = "jax"

    def load(self):
        # JAX would otherwise take 75% of the GPU's memory at start, starving the other peers.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        try:
            import jax
            import jax.numpy as jnp
        except ImportError as exc:
            raise Unavailable(f"jax is not importable: {exc}") from exc
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_default_matmul_precision", "float32")
        platform = "gpu" if self.device == "gpu" else "cpu"
        try:
            self.target = jax.devices(platform)[0]
        except RuntimeError as exc:
            raise Unavailable(f"jax has no {platform} device: {exc}") from exc
        self.jax = jax
        linalg = jnp.linalg
        self._ops = {
            name: jax.jit(fn)
            for name, fn in {
                "cholesky": linalg.cholesky,
                "lu": lambda a: jax.lax.linalg.lu(a)[:2],
                "qr": linalg.qr,
                "eigh": linalg.eigh,
                "eigvalsh": linalg.eigvalsh,
                "svd": linalg.svd,
                "svdvals": functools.partial(linalg.svd, compute_uv=False),
                "solve": linalg.solve,
                "inv": linalg.inv,
                "det": linalg.det,
                "matmul": jnp.matmul,
            }.items()
        }

    def prepare(self, arrays):
        operands = tuple(self.jax.device_put(a, self.target) for a in arrays)
        return self.sync(operands)

    def sync(self, outputs):
        return self.jax.block_until_ready(outputs)

    def to_numpy(self, outputs):
        if isinstance(outputs, (tuple, list)):
            return tuple(np.asarray(o) for o in outputs)
        return (np.asarray(outputs),)

    def held_bytes(self):
        stats = self.target.memory_stats() if self.target.platform == "gpu" else None
        if not stats:
            return None
        # XLA's BFC arena reports what it reserved; its cudaMallocAsync pool, pool_bytes.
        for key in ("bytes_reserved", "pool_bytes", "bytes_in_use"):
            if key in stats:
                return int(stats[key])
        return None

    def settings(self):
        return {
            "device": str(self.target),
            "default_matmul_precision": self.jax.config.jax_default_matmul_precision,
            "jaxlib": _version("jaxlib"),
        }


PEER_CLASSES: dict[str, type[Peer]] = {
    cls.name: cls
    for cls in (MLXLinalg, MXLinalg, NumPyPeer, SciPyPeer, TorchPeer, CuPyPeer, JAXPeer)
}


def load_peers(names: list[str], device: str) -> tuple[dict[str, Peer], dict[str, str]]:
    """Load the named peers for ``device``: returns ``(loaded, skipped)``.

    ``skipped`` maps each peer that cannot run here to the reason (not importable, no device).
    """
    loaded: dict[str, Peer] = {}
    skipped: dict[str, str] = {}
    for name in names:
        if name not in PEER_CLASSES:
            raise ValueError(
                f"[benchmarks] unknown peer {name!r}; known: {', '.join(PEER_CLASSES)}"
            )
        peer = PEER_CLASSES[name](device)
        try:
            peer.load()
        except Unavailable as exc:
            skipped[name] = str(exc)
            continue
        loaded[name] = peer
    return loaded, skipped


def limit_threads(threads: int, peers: dict[str, Peer]) -> dict:
    """Cap the CPU threads of the BLAS libraries (threadpoolctl) and of PyTorch at ``threads``.

    Call :func:`thread_environment` before the peers load so that JAX's XLA and OpenMP pick
    the cap up too. Returns a description for the report; the cap lasts for the process.
    """
    applied: dict = {"threads": threads}
    try:
        import threadpoolctl
    except ImportError:
        applied["blas"] = "not capped: threadpoolctl is not installed"
    else:
        _LIMITS.append(threadpoolctl.threadpool_limits(limits=threads))
        applied["blas"] = [
            f"{Path(p['filepath']).name}: {p['num_threads']}"
            for p in threadpoolctl.threadpool_info()
        ]
    if "torch" in peers:
        peers["torch"].torch.set_num_threads(threads)
        applied["torch"] = threads
    return applied


def thread_environment(threads: int) -> None:
    """Environment variables that cap OpenMP and XLA CPU threads (before their import)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    flags = os.environ.get("XLA_FLAGS", "")
    multi = "false" if threads == 1 else "true"
    os.environ["XLA_FLAGS"] = (
        f"{flags} --xla_cpu_multi_thread_eigen={multi} intra_op_parallelism_threads={threads}"
    ).strip()


_LIMITS: list = []
