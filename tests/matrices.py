"""Test helpers: seeded random matrices and DESIGN.md's accuracy metrics.

A plain module (not conftest) so that tests/gpu/conftest.py cannot shadow it."""

import math

import mlx.core as mx
import numpy as np
import scipy.linalg

# Thresholds from DESIGN.md, in units of the LAPACK-style ratios below.
QR_RATIO = 30
LU_RATIO = 30
CHOLESKY_RATIO = 30
SOLVE_RATIO = 30
INV_RATIO = 30
LSTSQ_RATIO = 30
EIGH_RATIO = 60
SVD_RATIO = 50

DTYPES = [mx.float32, mx.float64, mx.complex64]
NP_DTYPE = {mx.float32: np.float32, mx.float64: np.float64, mx.complex64: np.complex64}


def unit_roundoff(dtype) -> float:
    """u for an MLX or NumPy dtype (complex64 -> float32's)."""
    np_dtype = NP_DTYPE.get(dtype, dtype)
    return float(np.finfo(np_dtype).eps) / 2


def norm(a: np.ndarray) -> np.ndarray:
    """Frobenius norm over the last two axes, in float64."""
    return np.linalg.norm(np.asarray(a, dtype=np.complex128), axis=(-2, -1))


def ratio(residual: np.ndarray, scale: np.ndarray, u: float) -> float:
    """Largest ``‖residual‖ / (scale · u)`` over a batch; 0 where both vanish."""
    r = norm(residual)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), r.shape)
    out = np.where(r == 0, 0.0, r / np.where(scale == 0, np.inf, scale * u))
    return float(np.max(out, initial=0.0))


def ct(a: np.ndarray) -> np.ndarray:
    """Conjugate transpose of the last two axes."""
    return np.conj(np.swapaxes(a, -1, -2))


def eye_like(a: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(np.eye(n), a.shape[:-2] + (n, n))


def as64(x) -> np.ndarray:
    """An MLX (or NumPy) array as complex128/float64 NumPy for residual computation."""
    a = np.asarray(x)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def as_mlx(x: np.ndarray, dtype) -> mx.array:
    """A NumPy array as an MLX array of ``dtype`` (float64 kept, which MLX would narrow)."""
    return mx.array(x.astype(NP_DTYPE[dtype]), dtype=dtype)


def replay_pivots(piv: np.ndarray, m: int) -> np.ndarray:
    """The permutation of m rows that LAPACK's 0-based pivots make (row j interchanged with
    row piv[j], in order): row i of P·A is row perm[i] of A."""
    perm = np.arange(m)
    for j, p in enumerate(piv):
        perm[[j, p]] = perm[[p, j]]
    return perm


def random_moves(rng, batch: int, m: int, k: int, block: int) -> np.ndarray:
    """What the blocked LU's steps record for ``blocked_lu.assemble``, at random: (S, B, m)
    int32, S = ceil(k / block), row s a permutation of the m - s·block trailing rows of
    step s, the rest of the row -7 (never read)."""
    steps = -(-k // block)
    moves = np.full((steps, batch, m), -7, dtype=np.int32)
    for s in range(steps):
        for b in range(batch):
            moves[s, b, : m - s * block] = rng.permutation(m - s * block)
    return moves


def random_matrix(rng, shape, dtype=mx.float32, cond=None) -> mx.array:
    """Gaussian matrix stack, or with prescribed 2-norm condition number ``cond``."""
    np_dtype = NP_DTYPE[dtype]
    a = rng.standard_normal(shape)
    if np.issubdtype(np_dtype, np.complexfloating):
        a = a + 1j * rng.standard_normal(shape)
    if cond is not None:
        m, n = shape[-2:]
        k = min(m, n)
        u, _, vh = np.linalg.svd(a, full_matrices=False)
        s = np.logspace(0, -np.log10(cond), k)
        a = (u * s[..., None, :]) @ vh
    return mx.array(a.astype(np_dtype), dtype=dtype)


def random_spd(rng, shape, dtype=mx.float32) -> mx.array:
    """Hermitian positive definite stack with condition number about 10."""
    a = np.asarray(random_matrix(rng, shape, dtype)).astype(np.complex128)
    n = shape[-1]
    spd = a @ ct(a) / n + np.eye(n)
    if dtype != mx.complex64:
        spd = spd.real
    return mx.array(spd.astype(NP_DTYPE[dtype]), dtype=dtype)


def random_hermitian(rng, shape, dtype=mx.float32) -> mx.array:
    a = np.asarray(random_matrix(rng, shape, dtype))
    return mx.array(((a + ct(a)) / 2).astype(NP_DTYPE[dtype]), dtype=dtype)


def graded_stack(rng, batch, m, n, cond) -> np.ndarray:
    """Float64 NumPy (batch, m, n) with singular values logspaced over 1..1/cond and
    Haar-random singular vectors."""
    k = min(m, n)
    out = []
    for _ in range(batch):
        u, _ = np.linalg.qr(rng.standard_normal((m, k)))
        v, _ = np.linalg.qr(rng.standard_normal((n, k)))
        out.append((u * np.logspace(0, -np.log10(cond), k)) @ v.T)
    return np.array(out)


def graded_float32(rng, shape, cond) -> np.ndarray:
    """Float32 :func:`graded_stack` of any shape (..., m, n)."""
    *batch, m, n = shape
    return graded_stack(rng, math.prod(batch), m, n, cond).reshape(shape).astype(np.float32)


def hard_batch(rng, m: int, n: int, *, inf: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Five float32 (m, n) matrices in one batch: rank 3, graded (κ 10²) with a zero
    column, zero, and two graded (κ 10) ones holding a NaN and ``inf``. Returns
    ``(batch, good)``, ``good`` the first three (the finite ones)."""
    good = np.concatenate(
        [
            rng.standard_normal((1, m, 3)) @ rng.standard_normal((1, 3, n)),
            graded_float32(rng, (1, m, n), 1e2),
            np.zeros((1, m, n)),
        ]
    ).astype(np.float32)
    good[1, :, 4] = 0
    bad = graded_float32(rng, (2, m, n), 10.0)
    bad[0, 5, 6] = np.nan
    bad[1, 7, 1] = inf
    return np.concatenate([good, bad]), good


def symmetric_band(rng, batch: int, n: int, band: int) -> np.ndarray:
    """(batch, n, n) float32 symmetric Gaussian matrices of half-bandwidth ``band`` (zero
    outside it)."""
    g = rng.standard_normal((batch, n, n))
    a = (g + np.swapaxes(g, -1, -2)) / 2
    rows, cols = np.indices((n, n))
    a[..., np.abs(rows - cols) > band] = 0
    return a.astype(np.float32)


def symmetric_from_lower(a: np.ndarray) -> np.ndarray:
    """The symmetric matrices whose lower triangles are those of ``a`` (..., N, N): what
    eigh reads."""
    return np.tril(a) + np.swapaxes(np.tril(a, -1), -1, -2)


def gram_error(u: np.ndarray) -> np.ndarray:
    """UᴴU − I over U's columns."""
    return ct(u) @ u - np.eye(u.shape[-1])


def qr_ratio(a: np.ndarray, q: np.ndarray, r: np.ndarray, u: float) -> float:
    """DESIGN.md's QR metric over a batch: max(‖A − QR‖/(m‖A‖u), ‖I − QᴴQ‖/(m u))."""
    m = a.shape[-2]
    return max(ratio(a - q @ r, m * norm(a), u), ratio(gram_error(q), m, u))


def svd_ratios(a, u_factor, s, vh, u: float) -> tuple[float, float, float]:
    """DESIGN.md's SVD ratios over a batch, reduced or full factors:
    ‖A − UΣVᴴ‖/(max(m,n)‖A‖u), ‖I − UᴴU‖/(m u), ‖I − VᴴV‖/(n u)."""
    m, n = a.shape[-2:]
    k = min(m, n)
    product = (u_factor[..., :k] * s[..., None, :]) @ vh[..., :k, :]
    return (
        ratio(a - product, max(m, n) * norm(a), u),
        ratio(gram_error(u_factor), m, u),
        ratio(gram_error(ct(vh)), n, u),
    )


def assert_float32_svd(a, u_factor, s, vh, *, vs_lapack=10.0, floor=1.0, forward=10.0):
    """Check an SVD of the float32 stack ``a`` (..., M, N), reduced or full factors as
    float64 arrays: DESIGN.md's ratios <= SVD_RATIO, each <= ``vs_lapack``·max(float32
    LAPACK's on the same matrices, ``floor``), S descending and nonnegative, and S within
    ``forward``·√max(M, N)·u·σ₁ of SciPy's float64 singular values. Returns those singular
    values (..., K) and that bound (..., 1)."""
    u = float(np.finfo(np.float32).eps) / 2
    m, n = a.shape[-2:]
    a64 = a.astype(np.float64)
    ratios = svd_ratios(a64, u_factor, s, vh, u)
    assert max(ratios) <= SVD_RATIO
    flat = a.reshape(-1, m, n)
    triples = [scipy.linalg.svd(t, full_matrices=False) for t in flat]
    lu, ls, lvh = (np.array([t[i] for t in triples], dtype=np.float64) for i in range(3))
    lapack = svd_ratios(flat.astype(np.float64), lu, ls, lvh, u)
    for ours, theirs in zip(ratios, lapack, strict=True):
        assert ours <= vs_lapack * max(theirs, floor)
    assert np.all(np.diff(s, axis=-1) <= 0) and np.all(s >= 0)
    s_ref = np.linalg.svd(a64, compute_uv=False)
    bound = forward * math.sqrt(max(m, n)) * u * s_ref[..., :1]
    assert np.all(np.abs(s - s_ref) <= bound)
    return s_ref, bound


def tf32(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to TF32's 10-bit mantissa (to nearest), as a TF32 matrix unit
    reads them."""
    bits = np.asarray(x).astype(np.float32).view(np.uint32)
    return ((bits + 0x1000) & 0xFFFFE000).view(np.float32)


def tf32_product(a, b) -> np.ndarray:
    """a @ b in float64 from TF32-rounded operands: an emulated TF32 product."""
    return tf32(np.asarray(a)).astype(np.float64) @ tf32(np.asarray(b)).astype(np.float64)


_MX_MATMUL, _MX_ADDMM = mx.matmul, mx.addmm


def tf32_matmul(x, y, stream=None):
    """``mx.matmul`` as a TF32 matrix unit computes it: float32 operands rounded to TF32,
    exact products (other dtypes unchanged)."""
    if x.dtype != mx.float32 or y.dtype != mx.float32:
        return _MX_MATMUL(x, y, stream=stream)
    return mx.array(tf32_product(x, y).astype(np.float32))


def tf32_addmm(c, x, y, alpha=1.0, beta=1.0, stream=None):
    """``mx.addmm`` as a TF32 matrix unit computes it (see :func:`tf32_matmul`)."""
    if x.dtype != mx.float32 or y.dtype != mx.float32:
        return _MX_ADDMM(c, x, y, alpha=alpha, beta=beta, stream=stream)
    out = beta * np.asarray(c, np.float64) + alpha * tf32_product(x, y)
    return mx.array(out.astype(np.float32))


def emulate_tf32(monkeypatch) -> None:
    """Make the CPU behave as a GPU that multiplies float32 in TF32 (MLX's CUDA default):
    ``mx.matmul`` and ``mx.addmm`` round float32 operands to TF32, and
    ``_precision.reduced_precision`` reports it, so the library splits its products."""
    from mlx_linalg import _precision

    monkeypatch.setattr(_precision, "reduced_precision", lambda stream=None: True)
    monkeypatch.setattr(mx, "matmul", tf32_matmul)
    monkeypatch.setattr(mx, "addmm", tf32_addmm)
