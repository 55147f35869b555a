"""Stacks of small matrices on the GPU: Householder QR, Jacobi eigh and Jacobi SVD.

One threadgroup factors one matrix held in threadgroup memory (kernels in ``metal/``:
``qr_small``, ``jacobi_eigh``, ``jacobi_svd``; MLX-op references with the same contracts
in ``mlx_linalg._gpu.reference_spectral``). Matrices with at most :data:`SIMD_MAX` rows and
columns go instead to the register kernels ``jacobi_eigh_simd`` and ``jacobi_svd_simd``
(one simdgroup per matrix, lane i holds row i). The functions here follow the
implementation contract of ``mlx_linalg._dispatch``: validated float32 arrays in,
``(outputs, failed)`` out, lazy (no host synchronization), batch axes kept.

Around a launch of the threadgroup-memory kernels: each matrix is scaled by a power of two
so that its largest entry lies in [1, 2) (no overflow or underflow in squared norms;
undone exactly on R, S and the eigenvalues), non-finite matrices are replaced by zeros for
the kernel and their outputs set to NaN afterwards (so a NaN or Inf touches only its own
matrix), and wide SVD inputs are transposed so that the kernel always works on the tall
orientation. The register kernels do all of that themselves (they read the raw input and
write the final layouts), so their path adds no MLX op around the launch.
"""

import mlx.core as mx

from mlx_linalg import _kernels
from mlx_linalg._gpu.reference import nan_where
from mlx_linalg._gpu.scaling import prescale, prescale_lower, times_power_of_two

# Sweep bound of the Jacobi kernels. Measured in float32 with the kernels' ordering and
# threshold: 7-9 sweeps for Gaussian 32x32 and 64x64 matrices, 10-11 for eigh at n = 64,
# 15-20 for 64x64 SVD inputs with singular values graded over 1e0..1e-7.
MAX_SWEEPS = 30

QR_MAX_ROWS = 128
QR_MAX_COLS = 128
# The most simdgroups a stack of qr_small threadgroups is given before they shrink
# (qr_groups): about half of what one H200 holds at once (132 SMs x 64).
QR_SIMDGROUPS = 4096
SVD_MAX_ROWS = 128  # the tall dimension
SVD_MAX_COLS = 64  # the short dimension: one simdgroup per column pair, 1024 threads
EIGH_MAX = 64
# Largest matrix dimension served by the register kernels (jacobi_eigh_simd,
# jacobi_svd_simd: one simdgroup per matrix, a row per lane, so at most 32). Above it, up to
# EIGH_MAX / SVD_MAX_*, the threadgroup-memory kernels run. Lowering it sends small sizes
# back to those (time both at n = 8, 16, 32 to place it).
SIMD_MAX = 32
_TG_FLOATS = _kernels.MAX_THREADGROUP_MEMORY // 4


def _batched(x: mx.array) -> tuple[mx.array, tuple[int, ...]]:
    """``x`` (..., M, N) as (B, M, N) and its batch shape."""
    batch = tuple(x.shape[:-2])
    return x.reshape(-1, *x.shape[-2:]), batch


def _float32_stack(x: mx.array) -> bool:
    return x.dtype == mx.float32 and x.ndim >= 2 and x.size > 0


# ---------------------------------------------------------------------------------------
# Raw launches (scaled, finite (B, M, N) input; the contracts of the kernel files).


def qr_groups(batch: int, n: int, qc: int) -> int:
    """Simdgroups per threadgroup of ``qr_small`` for ``batch`` matrices of N columns and
    QC columns of Q.

    One per column up to 16 (C = max(N, QC) columns), which is fastest while one matrix's
    latency sets the time; halved while the stack would hold more than
    :data:`QR_SIMDGROUPS` simdgroups, down to C/8: then the GPU's throughput sets it, and
    smaller threadgroups (fewer members per barrier, more matrices per SM) win. Kernel
    times on one H200 (2026-11-29, µs; docs/kernels-spectral.md, "Simdgroups of
    qr_small"): 1000 matrices of 32 x 32 87.0 with 16 simdgroups, 75.2 with 4; 4000: 323.9
    and 223.3; 4000 of 128 x 32 646.0 and 424.0; 100 of 32 x 32 32.0 with 16, 58.8 with 4.
    """
    columns = max(n, qc)
    groups = min(16, columns)
    least = max(1, columns // 8)
    while groups > least and batch * groups > QR_SIMDGROUPS:
        groups = max(least, groups // 2)
    return groups


def qr_small_launch(
    shape: tuple[int, int, int],
    *,
    complete: bool,
    groups: int | None = None,
    height: int | None = None,
) -> dict:
    """Launch arguments (template, grid, threadgroup, output shapes) of ``qr_small`` for a
    (B, R, N) array factored as B·L matrices of ``height`` rows (None: R), L = ⌈R /
    height⌉, rows past R zeros (the kernel's contract); ``groups`` simdgroups per
    threadgroup (None: :func:`qr_groups`'s). Shared with the CPU emulation in tests and
    tools/bench_threadgroups.py."""
    b, rows, n = shape
    m = rows if height is None else height
    stack = b * -(-rows // m)
    qc = m if complete else min(m, n)
    groups = qr_groups(stack, n, qc) if groups is None else groups
    return {
        "template": {"M": m, "N": n, "COMPLETE": bool(complete)},
        "grid": (stack * 32 * groups, 1, 1),
        "threadgroup": (32 * groups, 1, 1),
        "output_shapes": [(stack, qc, m), (stack, qc, n)],
    }


def qr_small(
    a: mx.array, *, complete: bool, height: int | None = None
) -> tuple[mx.array, mx.array]:
    """Launch ``metal/qr_small.metal`` on a (B, R, N) array: ``(Qt, R)`` of its B·⌈R /
    height⌉ matrices of ``height`` rows (None: R), rows past R zeros, as its contract says."""
    launch = qr_small_launch(a.shape, complete=complete, height=height)
    qt, r = _kernels.launch("qr_small", [a], **launch)
    return qt, r


def _jacobi_lanes(m: int) -> int:
    """Lanes per column pair of the Jacobi kernels: a power of two in [4, 32] giving each
    lane at most 8 of the M rows. Fewer lanes per pair mean fewer shuffles per dot product
    and less of the rotation arithmetic, which every lane repeats (measured on the H100 at
    10000x32x32: 4 lanes of 8 rows are faster than 8 of 4)."""
    lanes = 4
    while lanes < 32 and 8 * lanes < m:
        lanes *= 2
    return lanes


def _jacobi_threads(n: int, lanes: int) -> int:
    """Threads per threadgroup of the Jacobi kernels: ``lanes`` per column pair, rounded up
    to whole simdgroups."""
    threads = (n + (n & 1)) // 2 * lanes
    return -(-threads // 32) * 32


def jacobi_svd(
    a: mx.array, *, full: bool, want_uv: bool, max_sweeps: int = MAX_SWEEPS
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """Launch ``metal/jacobi_svd.metal`` on tall ``a`` (B, M, N), M >= N: returns
    ``(Ut, S, Vt, info)`` as its contract says."""
    b, m, n = a.shape
    uc = m if full else n
    lanes = _jacobi_lanes(m)
    threads = _jacobi_threads(n, lanes)
    shapes = [(b, uc, m), (b, n), (b, n, n), (b,)] if want_uv else [(1,), (b, n), (1,), (b,)]
    ut, s, vt, info = _kernels.launch(
        "jacobi_svd",
        [a],
        template={"M": m, "N": n, "L": lanes, "FULL": bool(full), "WANT_UV": bool(want_uv),
                  "MAX_SWEEPS": int(max_sweeps)},
        grid=(b * threads, 1, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=shapes,
    )
    return ut, s, vt, info


def jacobi_eigh(
    a: mx.array, *, want_v: bool, max_sweeps: int = MAX_SWEEPS
) -> tuple[mx.array, mx.array, mx.array]:
    """Launch ``metal/jacobi_eigh.metal`` on ``a`` (B, N, N): returns ``(W, Vt, info)`` as
    its contract says."""
    b, n, _ = a.shape
    lanes = _jacobi_lanes(n)
    threads = _jacobi_threads(n, lanes)
    w, vt, info = _kernels.launch(
        "jacobi_eigh",
        [a],
        template={"N": n, "L": lanes, "WANT_V": bool(want_v), "MAX_SWEEPS": int(max_sweeps)},
        grid=(b * threads, 1, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=[(b, n), (b, n, n) if want_v else (1,), (b,)],
    )
    return w, vt, info


def simd_columns(n: int) -> int:
    """NP of the register kernels (their column slots, also the circle ordering's of
    ``reference_spectral``): the power of two >= n, at least 2."""
    return max(2, 1 << (n - 1).bit_length())


def jacobi_eigh_simd(
    a: mx.array, *, want_v: bool, max_sweeps: int = MAX_SWEEPS
) -> tuple[mx.array, mx.array, mx.array]:
    """Launch ``metal/jacobi_eigh_simd.metal`` on raw ``a`` (B, N, N), N <= 32: returns
    ``(W, V, info)`` as its contract says (final layouts, NaN for non-finite matrices)."""
    b, n, _ = a.shape
    w, v, info = _kernels.launch(
        "jacobi_eigh_simd",
        [a],
        template={"N": n, "NP": simd_columns(n), "WANT_V": bool(want_v),
                  "MAX_SWEEPS": int(max_sweeps)},
        grid=(b * 32, 1, 1),
        threadgroup=(32, 1, 1),
        output_shapes=[(b, n), (b, n, n) if want_v else (1,), (b,)],
    )
    return w, v, info


def jacobi_svd_simd(
    a: mx.array, *, full: bool, want_uv: bool, max_sweeps: int = MAX_SWEEPS
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """Launch ``metal/jacobi_svd_simd.metal`` on raw ``a`` (B, R, C), R, C <= 32 (a wide
    matrix is read transposed in-kernel): returns ``(U, S, Vh, info)`` in the layouts svd
    returns for ``a`` (U (B, R, R or K), S (B, K), Vh (B, K or C, C), K = min(R, C);
    NaN for non-finite matrices), as the kernel's contract says."""
    b, rows, cols = a.shape
    wide = rows < cols
    m, n = max(rows, cols), min(rows, cols)
    uc = m if full else n
    if want_uv:
        shapes = [(b, rows, rows if wide else uc), (b, n), (b, uc if wide else n, cols), (b,)]
    else:
        shapes = [(1,), (b, n), (1,), (b,)]
    u, s, vh, info = _kernels.launch(
        "jacobi_svd_simd",
        [a],
        template={"M": m, "N": n, "NP": simd_columns(n), "FULL": bool(full),
                  "WANT_UV": bool(want_uv), "WIDE": wide, "MAX_SWEEPS": int(max_sweeps)},
        grid=(b * 32, 1, 1),
        threadgroup=(32, 1, 1),
        output_shapes=shapes,
    )
    return u, s, vh, info


# ---------------------------------------------------------------------------------------
# Dispatch predicates and implementations (mlx_linalg._dispatch contract).


def qr_applies(x: mx.array, *, mode: str) -> bool:
    """QR of float32 stacks with M <= 128, N <= 128 and M·N + N floats in 32 KB."""
    if not _float32_stack(x):
        return False
    m, n = x.shape[-2:]
    return m <= QR_MAX_ROWS and n <= QR_MAX_COLS and m * n + n <= _TG_FLOATS


def qr(x: mx.array, *, mode: str) -> tuple[tuple[mx.array, mx.array], None]:
    """Householder QR of a stack of small matrices: ``((Q, R), None)``.

    Args:
        x: (..., M, N) float32, within :func:`qr_applies`.
        mode: ``"reduced"`` (Q (..., M, K), R (..., K, N)) or ``"complete"`` (Q (..., M, M),
            R (..., M, N)).
    """
    a, batch = _batched(x)
    m, n = a.shape[-2:]
    scaled, exponent, finite = prescale(a)
    qt, r = qr_small(scaled, complete=mode == "complete")
    qt = nan_where(~finite, qt)
    r = nan_where(~finite, times_power_of_two(r, exponent))
    q = mx.swapaxes(qt.reshape(*batch, qt.shape[1], m), -1, -2)
    return (q, r.reshape(*batch, r.shape[1], n)), None


def eigh_applies(x: mx.array) -> bool:
    """eigh/eigvalsh of float32 stacks of N x N matrices, N <= 64."""
    return _float32_stack(x) and x.shape[-1] <= EIGH_MAX


def _eigh_scaled(x: mx.array, want_v: bool):
    a, batch = _batched(x)
    n = a.shape[-1]
    scaled, exponent, finite = prescale_lower(a)
    w, vt, _ = jacobi_eigh(scaled, want_v=want_v)
    w = nan_where(~finite, times_power_of_two(w, exponent)).reshape(*batch, n)
    return w, vt, finite, batch


def eigh(x: mx.array) -> tuple[tuple[mx.array, mx.array], None]:
    """Eigenvalues (ascending) and eigenvectors of a stack of small symmetric matrices
    (lower triangle read): ``((w, V), None)``, w (..., N), V (..., N, N)."""
    n = x.shape[-1]
    if n <= SIMD_MAX:
        a, batch = _batched(x)
        w, v, _ = jacobi_eigh_simd(a, want_v=True)
        return (w.reshape(*batch, n), v.reshape(*batch, n, n)), None
    w, vt, finite, batch = _eigh_scaled(x, want_v=True)
    v = mx.swapaxes(nan_where(~finite, vt).reshape(*batch, n, n), -1, -2)
    return (w, v), None


def eigvalsh(x: mx.array) -> tuple[tuple[mx.array], None]:
    """Eigenvalues (ascending) of a stack of small symmetric matrices: ``((w,), None)``."""
    n = x.shape[-1]
    if n <= SIMD_MAX:
        a, batch = _batched(x)
        w, _, _ = jacobi_eigh_simd(a, want_v=False)
        return (w.reshape(*batch, n),), None
    w, _, _, _ = _eigh_scaled(x, want_v=False)
    return (w,), None


def svd_applies(x: mx.array, *, full_matrices: bool = False) -> bool:
    """SVD of float32 stacks whose tall orientation (T x S, T >= S) has T <= 128,
    S <= 64 and T·S + S·S floats in 32 KB."""
    if not _float32_stack(x):
        return False
    tall, short = max(x.shape[-2:]), min(x.shape[-2:])
    return (tall <= SVD_MAX_ROWS and short <= SVD_MAX_COLS
            and tall * short + short * short <= _TG_FLOATS)


def svdvals_applies(x: mx.array) -> bool:
    """svdvals under the same limits as :func:`svd_applies`."""
    return svd_applies(x)


def _svd_scaled(x: mx.array, full: bool, want_uv: bool):
    a, batch = _batched(x)
    m, n = a.shape[-2:]
    scaled, exponent, finite = prescale(a)
    wide = m < n
    ut, s, vt, _ = jacobi_svd(mx.swapaxes(scaled, -1, -2) if wide else scaled,
                              full=full, want_uv=want_uv)
    s = nan_where(~finite, times_power_of_two(s, exponent)).reshape(*batch, min(m, n))
    return ut, s, vt, finite, batch, wide


def svd(x: mx.array, *, full_matrices: bool) -> tuple[tuple[mx.array, ...], None]:
    """SVD of a stack of small matrices: ``((U, S, Vh), None)`` with S descending; U
    (..., M, M) and Vh (..., N, N) when ``full_matrices``, else K = min(M, N) columns/rows.
    """
    m, n = x.shape[-2:]
    if max(m, n) <= SIMD_MAX:
        a, batch = _batched(x)
        u, s, vh, _ = jacobi_svd_simd(a, full=full_matrices, want_uv=True)
        return (u.reshape(*batch, *u.shape[1:]), s.reshape(*batch, min(m, n)),
                vh.reshape(*batch, *vh.shape[1:])), None
    ut, s, vt, finite, batch, wide = _svd_scaled(x, full_matrices, want_uv=True)
    ut = nan_where(~finite, ut)
    vt = nan_where(~finite, vt)
    if wide:
        # The kernel factored xᵀ = U' S V'ᵀ, so x = V' S U'ᵀ: U = V', Vh = U'ᵀ.
        u = mx.swapaxes(vt.reshape(*batch, m, m), -1, -2)
        vh = ut.reshape(*batch, ut.shape[1], n)
    else:
        u = mx.swapaxes(ut.reshape(*batch, ut.shape[1], m), -1, -2)
        vh = vt.reshape(*batch, n, n)
    return (u, s, vh), None


def svdvals(x: mx.array) -> tuple[tuple[mx.array], None]:
    """Singular values (descending) of a stack of small matrices: ``((S,), None)``."""
    if max(x.shape[-2:]) <= SIMD_MAX:
        a, batch = _batched(x)
        _, s, _, _ = jacobi_svd_simd(a, full=False, want_uv=False)
        return (s.reshape(*batch, s.shape[-1]),), None
    _, s, _, _, _, _ = _svd_scaled(x, full=False, want_uv=False)
    return (s,), None
