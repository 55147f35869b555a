"""Large-matrix spectral building blocks: QDWH / Newton–Schulz polar, tall-skinny QR,
QDWH-eig and QDWH-SVD, mlx_linalg against its peers, same process, same float32 data.

Polar (square n x n, singular values logspaced over 1..1/cond): ``polar.qdwh`` and
``polar.newton_schulz`` (the latter on cond = 10 input, its use case), against an SVD-based
polar (U Vᵀ, V S Vᵀ) in PyTorch and CuPy, ``jax.scipy.linalg.polar(method="qdwh")``, and
SciPy on the CPU. Tall-skinny QR (M x N): ``tall_skinny.qr`` with CholeskyQR2 and shifted
CholeskyQR3 against ``torch.linalg.qr``, ``cupy.linalg.qr``, ``jnp.linalg.qr`` and MLX's CPU
QR. QDWH-eig (``spectral_dc.eigh``, symmetric Gaussian n x n, Jacobi-kernel base case on the
GPU) against ``torch.linalg.eigh``, ``cupy.linalg.eigh``, ``jnp.linalg.eigh`` and MLX's CPU
eigh; QDWH-SVD (``spectral_dc.svd``, same sizes, singular values graded over 1..1/cond)
against the peers' reduced ``svd``, and on a GPU also QDWH-SVD whose eigensolver of H is the
dispatched two-stage eigh (``qdwh_svd.two_stage_eigh`` as the base of the whole H: no
QDWH-eig splits), the route ``mlx_linalg.svd`` dispatches to from n = 1024 (``qdwh_svd``).
Peers are used when importable. Min of ``--repeat`` runs after two warm-ups, each
synchronized; DESIGN.md's accuracy ratios (float64 NumPy) up to ``--check-max``. On a GPU
the mlx_linalg graphs use ``tall_skinny.KERNELS`` (blocked factorizations, small-matrix
kernels), on the CPU ``tall_skinny.LAPACK``. Writes JSON and a Markdown table naming the machine.

Usage: ``python tools/bench_spectral_blocks.py [--out DIR] [--repeat 5]
[--sizes 256,512,1024,2048,4096,8192] [--tall 65536x64,65536x256,16384x1024]
[--eigh-sizes 256,512,1024,2048,4096] [--cond 1e3] [--check-max 2048]
[--ops polar,tall_qr,eigh,svd] [--skip-peers]``
"""

import argparse
import json
import platform
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms

from mlx_linalg import _precision
from mlx_linalg._gpu import polar, qdwh_svd, spectral_dc, tall_skinny

U32 = float(np.finfo(np.float32).eps) / 2


def _graded(rng, m: int, n: int, cond: float) -> np.ndarray:
    k = min(m, n)
    u, _ = np.linalg.qr(rng.standard_normal((m, k)).astype(np.float32))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)).astype(np.float32))
    return ((u * np.logspace(0, -np.log10(cond), k).astype(np.float32)) @ v.T).astype(np.float32)


def _fro(x: np.ndarray) -> float:
    return float(np.linalg.norm(x))


def polar_ratio(a: np.ndarray, u: np.ndarray, h: np.ndarray) -> float:
    a, u, h = (np.asarray(x, dtype=np.float64) for x in (a, u, h))
    n = max(a.shape)
    back = _fro(a - u @ h) / (n * _fro(a) * U32)
    orth = _fro(u.T @ u - np.eye(u.shape[1])) / (n * U32)
    return max(back, orth)


def qr_ratio(a: np.ndarray, q: np.ndarray, r: np.ndarray) -> float:
    a, q, r = (np.asarray(x, dtype=np.float64) for x in (a, q, r))
    m = a.shape[0]
    return max(
        _fro(a - q @ r) / (m * _fro(a) * U32), _fro(q.T @ q - np.eye(q.shape[1])) / (m * U32)
    )


def eigh_ratio(a: np.ndarray, w: np.ndarray, v: np.ndarray) -> float:
    a, w, v = (np.asarray(x, dtype=np.float64) for x in (a, w, v))
    n = a.shape[0]
    return max(_fro(a - (v * w) @ v.T) / (n * _fro(a) * U32), _fro(v.T @ v - np.eye(n)) / (n * U32))


def svd_ratio(a: np.ndarray, u: np.ndarray, s: np.ndarray, vh: np.ndarray) -> float:
    a, u, s, vh = (np.asarray(x, dtype=np.float64) for x in (a, u, s, vh))
    m, n = a.shape
    return max(
        _fro(a - (u * s) @ vh) / (max(m, n) * _fro(a) * U32),
        _fro(u.T @ u - np.eye(u.shape[1])) / (m * U32),
        _fro(vh @ vh.T - np.eye(vh.shape[0])) / (n * U32),
    )


def _peers(skip: bool) -> dict:
    peers = {}
    if skip:
        return peers
    try:
        import torch

        if torch.cuda.is_available():
            peers["torch"] = torch
    except ImportError:
        pass
    try:
        import cupy

        peers["cupy"] = cupy
    except ImportError:
        pass
    try:
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
        peers["jax"] = jax
    except ImportError:
        pass
    return peers


def _polar_peers(peers: dict, a: np.ndarray):
    """(name, fn, sync, to_numpy) for each peer's polar decomposition of ``a``."""
    out = []
    if "torch" in peers:
        torch = peers["torch"]
        t = torch.from_numpy(a).cuda()

        def torch_polar():
            w, s, vh = torch.linalg.svd(t, full_matrices=False)
            return w @ vh, (vh.mT * s) @ vh

        out.append(
            (
                "torch (svd)",
                torch_polar,
                lambda o: torch.cuda.synchronize(),
                lambda o: [x.cpu().numpy() for x in o],
            )
        )
    if "cupy" in peers:
        cp = peers["cupy"]
        c = cp.asarray(a)

        def cupy_polar():
            w, s, vh = cp.linalg.svd(c, full_matrices=False)
            return w @ vh, (vh.T * s) @ vh

        out.append(
            (
                "cupy (svd)",
                cupy_polar,
                lambda o: cp.cuda.Device().synchronize(),
                lambda o: [cp.asnumpy(x) for x in o],
            )
        )
    if "jax" in peers:
        jax = peers["jax"]
        j = jax.device_put(a)
        fn = jax.jit(lambda x: jax.scipy.linalg.polar(x, method="qdwh"))
        out.append(
            (
                "jax (qdwh)",
                lambda: fn(j),
                lambda o: jax.block_until_ready(o),
                lambda o: [np.asarray(x) for x in o],
            )
        )
    return out


def _linalg_peers(peers: dict, a: np.ndarray, name: str):
    """The peers' ``linalg.<name>`` (qr, eigh) on ``a``, each on its GPU."""
    out = []
    if "torch" in peers:
        torch = peers["torch"]
        t = torch.from_numpy(a).cuda()
        fn = getattr(torch.linalg, name)
        out.append(
            (
                "torch",
                lambda: fn(t),
                lambda o: torch.cuda.synchronize(),
                lambda o: [x.cpu().numpy() for x in o],
            )
        )
    if "cupy" in peers:
        cp = peers["cupy"]
        c = cp.asarray(a)
        cfn = getattr(cp.linalg, name)
        out.append(
            (
                "cupy",
                lambda: cfn(c),
                lambda o: cp.cuda.Device().synchronize(),
                lambda o: [cp.asnumpy(x) for x in o],
            )
        )
    if "jax" in peers:
        jax = peers["jax"]
        j = jax.device_put(a)
        jfn = jax.jit(getattr(jax.numpy.linalg, name))
        out.append(
            (
                "jax",
                lambda: jfn(j),
                lambda o: jax.block_until_ready(o),
                lambda o: [np.asarray(x) for x in o],
            )
        )
    return out


def _svd_peers(peers: dict, a: np.ndarray):
    out = []
    if "torch" in peers:
        torch = peers["torch"]
        t = torch.from_numpy(a).cuda()
        out.append(
            (
                "torch",
                lambda: torch.linalg.svd(t, full_matrices=False),
                lambda o: torch.cuda.synchronize(),
                lambda o: [x.cpu().numpy() for x in o],
            )
        )
    if "cupy" in peers:
        cp = peers["cupy"]
        c = cp.asarray(a)
        out.append(
            (
                "cupy",
                lambda: cp.linalg.svd(c, full_matrices=False),
                lambda o: cp.cuda.Device().synchronize(),
                lambda o: [cp.asnumpy(x) for x in o],
            )
        )
    if "jax" in peers:
        jax = peers["jax"]
        j = jax.device_put(a)
        fn = jax.jit(lambda x: jax.numpy.linalg.svd(x, full_matrices=False))
        out.append(
            (
                "jax",
                lambda: fn(j),
                lambda o: jax.block_until_ready(o),
                lambda o: [np.asarray(x) for x in o],
            )
        )
    return out


def _row(rows: list, **row) -> None:
    rows.append(row)
    print(json.dumps(row), flush=True)


def bench_polar(args, peers, factor, rows) -> None:
    for n in (int(v) for v in args.sizes.split(",")):
        check = n <= args.check_max
        for method, cond in (("qdwh", args.cond), ("newton_schulz", 10.0)):
            a = _graded(np.random.default_rng(n), n, n, cond)
            x = mx.array(a)
            mx.eval(x)
            if method == "qdwh":
                fn = lambda x=x: polar.qdwh(x, factor)  # noqa: E731
            else:
                fn = lambda x=x: polar.newton_schulz(x)  # noqa: E731
            ms, out = best_ms(fn, mx.eval, args.repeat)
            _row(
                rows,
                op="polar",
                impl=f"mlx_linalg {method}",
                shape=f"{n}x{n}",
                cond=cond,
                ms=round(ms, 3),
                iterations=int(np.max(np.abs(np.asarray(out[2])))),
                ratio=round(polar_ratio(a, out[0], out[1]), 3) if check else None,
            )
        a = _graded(np.random.default_rng(n), n, n, args.cond)
        for name, fn, sync, to_np in _polar_peers(peers, a):
            ms, out = best_ms(fn, sync, args.repeat)
            res = to_np(out)
            _row(
                rows,
                op="polar",
                impl=name,
                shape=f"{n}x{n}",
                cond=args.cond,
                ms=round(ms, 3),
                ratio=round(polar_ratio(a, *res), 3) if check else None,
            )
        if n <= args.scipy_max:
            import scipy.linalg

            ms, out = best_ms(lambda a=a: scipy.linalg.polar(a), lambda o: None, 1)
            _row(
                rows,
                op="polar",
                impl="scipy (cpu, svd)",
                shape=f"{n}x{n}",
                cond=args.cond,
                ms=round(ms, 3),
                ratio=round(polar_ratio(a, *out), 3) if check else None,
            )


def bench_tall(args, peers, factor, rows) -> None:
    for case in args.tall.split(","):
        m, n = (int(v) for v in case.split("x"))
        a = _graded(np.random.default_rng(m + n), m, n, 1e2)
        check = n <= args.check_max
        x = mx.array(a)
        mx.eval(x)
        for method in tall_skinny.METHODS:

            def fn(x=x, method=method):
                return tall_skinny.qr(x, factor, method=method, fallback="nan")

            ms, out = best_ms(fn, mx.eval, args.repeat)
            _row(
                rows,
                op="tall_qr",
                impl=f"mlx_linalg {method}",
                shape=f"{m}x{n}",
                cond=1e2,
                ms=round(ms, 3),
                fell_back=int(np.sum(np.asarray(out[2]))),
                ratio=round(qr_ratio(a, out[0], out[1]), 3) if check else None,
            )
        for name, fn, sync, to_np in _linalg_peers(peers, a, "qr"):
            ms, out = best_ms(fn, sync, args.repeat)
            _row(
                rows,
                op="tall_qr",
                impl=name,
                shape=f"{m}x{n}",
                cond=1e2,
                ms=round(ms, 3),
                ratio=round(qr_ratio(a, *to_np(out)), 3) if check else None,
            )
        ms, out = best_ms(lambda x=x: mx.linalg.qr(x, stream=mx.cpu), mx.eval, 1)
        _row(
            rows,
            op="tall_qr",
            impl="mx.linalg.qr (cpu)",
            shape=f"{m}x{n}",
            cond=1e2,
            ms=round(ms, 3),
            ratio=round(qr_ratio(a, *out), 3) if check else None,
        )


def bench_eigh(args, peers, factor, base, rows) -> None:
    for n in (int(v) for v in args.eigh_sizes.split(",")):
        g = np.random.default_rng(n).standard_normal((n, n)).astype(np.float32)
        a = (g + g.T) / 2
        check = n <= args.check_max
        x = mx.array(a)
        mx.eval(x)
        stats: dict = {}
        ms, out = best_ms(
            lambda x=x, stats=stats: spectral_dc.eigh(x, factor, base=base, stats=stats),
            mx.eval,
            args.repeat,
        )
        _row(
            rows,
            op="eigh",
            impl="mlx_linalg qdwh-eig",
            shape=f"{n}x{n}",
            cond=0.0,
            ms=round(ms, 3),
            splits=stats["splits"],
            ratio=round(eigh_ratio(a, *out), 3) if check else None,
        )
        for name, fn, sync, to_np in _linalg_peers(peers, a, "eigh"):
            ms, out = best_ms(fn, sync, args.repeat)
            _row(
                rows,
                op="eigh",
                impl=name,
                shape=f"{n}x{n}",
                cond=0.0,
                ms=round(ms, 3),
                ratio=round(eigh_ratio(a, *to_np(out)), 3) if check else None,
            )
        if n <= args.scipy_max:
            ms, out = best_ms(lambda x=x: mx.linalg.eigh(x, stream=mx.cpu), mx.eval, 1)
            _row(
                rows,
                op="eigh",
                impl="mx.linalg.eigh (cpu)",
                shape=f"{n}x{n}",
                cond=0.0,
                ms=round(ms, 3),
                ratio=round(eigh_ratio(a, *out), 3) if check else None,
            )


def bench_svd(args, peers, factor, base, rows) -> None:
    gpu = mx.default_device() == mx.gpu
    for n in (int(v) for v in args.eigh_sizes.split(",")):
        a = _graded(np.random.default_rng(n + 1), n, n, args.cond)
        check = n <= args.check_max
        x = mx.array(a)
        mx.eval(x)
        routes = [("mlx_linalg qdwh-svd", base, spectral_dc.BASE_SIZE)]
        if gpu:
            routes.append(("mlx_linalg qdwh + two-stage eigh", qdwh_svd.two_stage_eigh, n))
        ours = [
            (
                name,
                lambda x=x, b=route_base, s=base_size: spectral_dc.svd(
                    x, factor, base=b, base_size=s
                ),
                mx.eval,
                lambda out: out,
            )
            for name, route_base, base_size in routes
        ]
        for name, fn, sync, to_np in ours + _svd_peers(peers, a):
            ms, out = best_ms(fn, sync, args.repeat)
            _row(
                rows,
                op="svd",
                impl=name,
                shape=f"{n}x{n}",
                cond=args.cond,
                ms=round(ms, 3),
                ratio=round(svd_ratio(a, *to_np(out)), 3) if check else None,
            )
        if n <= args.scipy_max:
            ms, out = best_ms(lambda x=x: mx.linalg.svd(x, stream=mx.cpu), mx.eval, 1)
            u, s, vh = out
            _row(
                rows,
                op="svd",
                impl="mx.linalg.svd (cpu)",
                shape=f"{n}x{n}",
                cond=args.cond,
                ms=round(ms, 3),
                ratio=round(svd_ratio(a, u, s, vh), 3) if check else None,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/results")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="256,512,1024,2048,4096,8192")
    parser.add_argument("--tall", default="65536x64,65536x256,16384x1024")
    parser.add_argument("--eigh-sizes", default="256,512,1024,2048,4096")
    parser.add_argument("--cond", type=float, default=1e3)
    parser.add_argument("--check-max", type=int, default=2048)
    parser.add_argument("--scipy-max", type=int, default=1024)
    parser.add_argument("--ops", default="polar,tall_qr,eigh,svd")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    gpu = mx.is_available(mx.gpu)
    if gpu:
        mx.set_default_device(mx.gpu)
    factor = tall_skinny.KERNELS if gpu else tall_skinny.LAPACK
    base = spectral_dc.kernel_eigh if gpu else spectral_dc.lapack_eigh
    peers = _peers(args.skip_peers)
    machine = {
        "platform": platform.platform(),
        "mlx": mx.__version__,
        "device": str(mx.default_device()),
        "reduced_precision_matmul": _precision.reduced_precision(),
        "peers": sorted(peers),
    }
    if "torch" in peers:
        machine["gpu"] = peers["torch"].cuda.get_device_name()
        machine["torch"] = peers["torch"].__version__
    print(json.dumps(machine), flush=True)
    rows: list = []
    ops = args.ops.split(",")
    if "polar" in ops:
        bench_polar(args, peers, factor, rows)
    if "tall_qr" in ops:
        bench_tall(args, peers, factor, rows)
    if "eigh" in ops:
        bench_eigh(args, peers, factor, base, rows)
    if "svd" in ops:
        bench_svd(args, peers, factor, base, rows)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_spectral_blocks.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2)
    )
    lines = [
        f"Machine: {machine.get('gpu', machine['device'])}, MLX {machine['mlx']}, "
        f"reduced-precision matmul: {machine['reduced_precision_matmul']}; float32, "
        f"min of {args.repeat} runs.",
        "",
        "| op | shape | cond | implementation | ms | ratio | iterations / fell back / splits |",
        "|" + " --- |" * 7,
    ]
    for r in rows:
        extra = r.get("iterations", r.get("fell_back", r.get("splits", "-")))
        lines.append(
            f"| {r['op']} | {r['shape']} | {r['cond']:g} | {r['impl']} | {r['ms']} | "
            f"{r['ratio'] if r['ratio'] is not None else '-'} | {extra} |"
        )
    (out_dir / "bench_spectral_blocks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
