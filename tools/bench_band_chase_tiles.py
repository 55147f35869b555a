"""Stage 2 on one SM against stage 2 on many (issue #8): ``band_chase``'s one-threadgroup
kernel and ``band_chase_tiles``' sequenced tiles, on one GPU, float32.

For each n of ``--sizes``: a symmetric Gaussian band matrix of half-width 32 (the route's
band); the chase keeping its reflectors (``want_q``, eigh's) and not (eigvalsh's), by the
one-threadgroup kernel and by tiles of each ``--tiles`` shape (sweeps x ticks); whether
the tiled band, tridiagonal matrix and reflectors equal the kernel's bit for bit; the
launches and tile slots of each schedule and the host time to build it. With ``--eigh``,
also the dispatched ``mlx_linalg.eigh`` and ``eigvalsh`` with the tiled chase from
``--tiled-from`` on and with the one-threadgroup kernel everywhere, beside
``torch.linalg.eigh`` (cuSOLVER) when PyTorch with CUDA is importable.

Timing: the minimum over ``--reps`` runs after one warm-up, to ``mx.synchronize()``.
Writes ``band_chase_tiles.json`` to ``--out`` after every row.

Usage: ``python tools/bench_band_chase_tiles.py --out DIR [--sizes 2048,4096,8192]
[--tiles 8x12,4x8] [--reps 3] [--eigh 4096,8192] [--tiled-from 4096]``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, cuda_torch, machine, mx_sync, release_memory

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mlx_linalg  # noqa: E402
from mlx_linalg._gpu import band_chase, band_chase_tiles  # noqa: E402

BAND = 32


def _band_matrix(rng, n: int) -> mx.array:
    g = rng.standard_normal((n, n)).astype(np.float32)
    a = (g + g.T) / 2
    a = np.tril(np.triu(a, -BAND), BAND)
    return mx.array(a[None])


def _chase(a: mx.array, want_q: bool, tiles: tuple[int, int] | None) -> list[mx.array]:
    """(work or d, e, reflectors) of the chase: the one-threadgroup kernel when ``tiles`` is
    None, else the tiled chase with that tile shape."""
    if tiles is None:
        launch = band_chase.band_to_tridiagonal_launch(a.shape, BAND, want_q=want_q)
        d, e, work, kept = mlx_linalg._kernels.launch("band_to_tridiagonal", [a], **launch)
        return [work, kept] if want_q else [work]
    default = band_chase_tiles.TILE_SWEEPS, band_chase_tiles.TILE_TICKS
    band_chase_tiles.TILE_SWEEPS, band_chase_tiles.TILE_TICKS = tiles
    try:
        work, kept = band_chase_tiles.chase(band_chase_tiles.packed_band(a, BAND), BAND, want_q)
    finally:
        band_chase_tiles.TILE_SWEEPS, band_chase_tiles.TILE_TICKS = default
    return [work, kept] if want_q else [work]


def chase_rows(n: int, shapes: list[tuple[int, int]], reps: int, rng) -> list[dict]:
    a = _band_matrix(rng, n)
    mx.eval(a)
    rows = []
    for want_q in (True, False):
        reference = _chase(a, want_q, None)
        mx.eval(reference)
        one_ms, _ = best_ms(lambda q=want_q: _chase(a, q, None), mx_sync, reps, warmup=1)
        rows.append({"n": n, "want_q": want_q, "tiles": "one threadgroup", "ms": one_ms})
        print(rows[-1], flush=True)
        for shape in shapes:
            start = time.perf_counter()
            schedule = band_chase_tiles.tile_schedule(n, BAND, *shape)
            built_ms = (time.perf_counter() - start) * 1e3
            tiled = _chase(a, want_q, shape)
            mx.eval(tiled)
            same = all(
                bool(mx.array_equal(x, y).item()) for x, y in zip(tiled, reference, strict=True)
            )
            ms, _ = best_ms(lambda q=want_q, s=shape: _chase(a, q, s), mx_sync, reps, warmup=1)
            rows.append(
                {
                    "n": n,
                    "want_q": want_q,
                    "tiles": f"{shape[0]}x{shape[1]}",
                    "ms": ms,
                    "launches": int(schedule.tiles.shape[0]),
                    "slots": int(schedule.tiles.shape[1]),
                    "schedule_ms": built_ms,
                    "bit_for_bit": same,
                }
            )
            print(rows[-1], flush=True)
    return rows


def eigh_rows(n: int, tiled_from: int, reps: int, rng) -> list[dict]:
    g = rng.standard_normal((n, n)).astype(np.float32)
    a = mx.array((g + g.T) / 2)
    rows = []
    default = band_chase.TILED_FROM
    for label, threshold in (("tiled", tiled_from), ("one threadgroup", 1 << 40)):
        band_chase.TILED_FROM = threshold
        for op in (mlx_linalg.eigh, mlx_linalg.eigvalsh):
            ms, out = best_ms(lambda f=op: f(a), mx_sync, reps, warmup=1)
            row = {"n": n, "op": op.__name__, "stage 2": label, "ms": ms}
            if op is mlx_linalg.eigh and n <= 4096:
                # Frobenius norms: upper bounds of the 2-norm metrics, cheap on the host
                w, z = (np.array(x, dtype=np.float64) for x in out)
                a64 = np.array(a, dtype=np.float64)
                nu = n * np.finfo(np.float32).eps / 2
                residual = np.linalg.norm(a64 @ z - z * w) / (nu * np.max(np.abs(w)))
                row["residual_F_nu_norm"] = float(residual)
                row["orthogonality_F_nu"] = float(np.linalg.norm(z.T @ z - np.eye(n)) / nu)
            rows.append(row)
            print(row, flush=True)
    band_chase.TILED_FROM = default
    torch = cuda_torch()
    if torch is not None:
        release_memory(torch)  # MLX's cache of freed buffers, else PyTorch may run out
        t = torch.tensor(np.array(a), device="cuda")
        for op in (torch.linalg.eigh, torch.linalg.eigvalsh):
            ms, _ = best_ms(lambda f=op: f(t), lambda _: torch.cuda.synchronize(), reps, warmup=1)
            rows.append({"n": n, "op": f"torch.{op.__name__}", "ms": ms})
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", default="2048,4096,8192")
    parser.add_argument("--tiles", default="8x12")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--eigh", default="")
    parser.add_argument("--tiled-from", type=int, default=band_chase.TILED_FROM)
    args = parser.parse_args(argv)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.tiles.split(",") if s]
    rng = np.random.default_rng(0)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(False, cuda_torch()), "chase": [], "eigh": []}

    def write() -> None:
        (args.out / "band_chase_tiles.json").write_text(json.dumps(report, indent=1))

    for n in [int(s) for s in args.sizes.split(",") if s]:
        report["chase"] += chase_rows(n, shapes, args.reps, rng)
        write()
    for n in [int(s) for s in args.eigh.split(",") if s]:
        report["eigh"] += eigh_rows(n, args.tiled_from, args.reps, rng)
        write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
