"""Where the GPU SVD route's time and error go (``mlx_linalg/_gpu/qdwh_svd.py``, issue #8).

For one Gaussian n x n float32 matrix per order (seed 0), on the GPU:

- one QR-based QDWH iteration (weights for the default bound ε/16 and for 10⁻⁵) and one
  Cholesky-based one (bound 0.05), on X₀ = A/(1.5‖A‖₂): min of 3 runs after a warm-up;
- the whole polar decomposition (``polar.qdwh`` with ``tall_skinny.KERNELS``), the two-stage
  eigh of its H and the dispatched SVD (``qdwh_svd.svd``): one run after a warm-up;
- their errors in units of n·u (u = 2⁻²⁴), the pieces of conformance's SVD ratio:
  ‖A − U_p H‖_F/(n‖A‖_F u), ‖I − U_pᵀU_p‖_F/(n u), H's asymmetry, eigh's residual and
  ‖I − VᵀV‖_F, the SVD's backward error and the orthogonality of U and V, and that of
  U_p V formed in float64 on the host (before the route's CholeskyQR2 of U).

Needs an MLX GPU backend. Usage: ``python tools/svd_route_breakdown.py 1024 4096``.
"""

import argparse

import mlx.core as mx
import numpy as np
from bench_timing import best_ms, mlx_sync

from mlx_linalg._gpu import polar, qdwh_svd, tall_skinny, two_stage

U32 = 2.0**-24
KERNELS = tall_skinny.KERNELS


def _timed(build, repeat: int):
    """``(best ms, outputs)`` of ``repeat`` synchronized runs of ``build`` after one warm-up."""
    return best_ms(build, mlx_sync, repeat, warmup=1)


def _fro(x: np.ndarray) -> float:
    return float(np.linalg.norm(x))


def _orthogonality(q: np.ndarray) -> float:
    return _fro(np.eye(q.shape[-1]) - q.T @ q)


def _host(x: mx.array) -> np.ndarray:
    return np.asarray(x[0]).astype(np.float64)


def iteration_times(x0: mx.array, n: int) -> None:
    """One QR-based and one Cholesky-based QDWH iteration on X₀."""
    for bound in (2 * U32 * polar.L_FLOOR_FACTOR, 1e-5, 0.05):
        wa, wb, wc, _ = polar.qdwh_weights(bound)
        if wc > polar.QR_WHEN_C_ABOVE:
            ms, _ = _timed(lambda wa=wa, wb=wb, wc=wc: polar._qr_step(KERNELS, x0, wa, wb, wc), 3)
            kind = "QR-based"
        else:
            ms, _ = _timed(
                lambda wa=wa, wb=wb, wc=wc: polar._cholesky_step(KERNELS, x0, wa, wb, wc)[0], 3
            )
            kind = "Cholesky-based"
        print(f"n={n} bound {bound:.2g}: one {kind} iteration {ms:.1f} ms", flush=True)


def breakdown(n: int) -> None:
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    x = mx.array(a)[None]
    x0 = x / float(1.5 * np.linalg.norm(a, 2))
    mx.eval(x0)
    iteration_times(x0, n)
    unit = n * U32
    a64 = a.astype(np.float64)
    ms, (u_p, h_device, info) = _timed(lambda: polar.qdwh(x, KERNELS), 1)
    u_p, h = _host(u_p), _host(h_device)
    print(
        f"n={n} polar {ms:.1f} ms (info {np.asarray(info).tolist()}): backward "
        f"{_fro(a64 - u_p @ h) / (unit * _fro(a64)):.2f}, orth(U_p) "
        f"{_orthogonality(u_p) / unit:.2f}, asymmetry(H) {_fro(h - h.T) / (unit * _fro(h)):.2f}",
        flush=True,
    )
    ms, ((w, v), _) = _timed(lambda: two_stage.eigh_scaled(h_device), 1)
    w, v = _host(w), _host(v)
    print(
        f"n={n} two-stage eigh of H {ms:.1f} ms: residual "
        f"{_fro(h - (v * w) @ v.T) / (unit * _fro(h)):.2f}, orth(V) {_orthogonality(v) / unit:.2f}",
        flush=True,
    )
    print(f"n={n} U_p V in float64: orth {_orthogonality(u_p @ v) / unit:.2f}", flush=True)
    ms, ((u, s, vh), _) = _timed(lambda: qdwh_svd.svd(x, full_matrices=False), 1)
    u, s, vh = _host(u), _host(s), _host(vh)
    print(
        f"n={n} svd {ms:.1f} ms: backward {_fro(a64 - (u * s) @ vh) / (unit * _fro(a64)):.2f}, "
        f"orth(U) {_orthogonality(u) / unit:.2f}, orth(V) {_orthogonality(vh.T) / unit:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="+", help="orders n")
    args = parser.parse_args()
    mx.set_default_device(mx.gpu)
    for n in args.sizes:
        breakdown(n)


if __name__ == "__main__":
    main()
