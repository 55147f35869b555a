// @kernel cholesky_small
// @inputs A:float32
// @outputs L:float32 failed:bool
// @template NMAX:int UPPER:bool
// @headers linalg_common.h cholesky_tile.h
// @check NMAX=64,UPPER=false NMAX=64,UPPER=true NMAX=32,UPPER=false
//
// Cholesky factors of a stack of small symmetric positive-definite matrices, one
// threadgroup per matrix, blocked by panels of PW = 8 columns.
//   A       (B, n, n) float32, 1 <= n <= NMAX, NMAX = 32 or 64. Only the lower triangle is
//           read (the upper one when UPPER).
//   L       (B, n, n): the lower factor L with A = L Lᵀ and zeros above the diagonal, or,
//           when UPPER, U = Lᵀ with A = Uᵀ U. Every entry NaN for a matrix whose pivot at
//           some column is not positive and finite (not positive definite, or NaN/Inf).
//   failed  (B,) bool: whether some pivot failed (so that no comparison op follows the
//           kernel: the caller needs only the mask, and one more launch costs ~5 us).
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32 (measured on an
// H100: 32 for n <= 32, 64 above; more threads only help the first trailing updates).
// Algorithm: right-looking blocked Cholesky with 8-column potf2 panels in threadgroup
// memory (la_cholesky_tile, cholesky_tile.h: the algorithm, its order of operations and
// its measured panel width), n³/3 flops, the lower triangle in threadgroup memory (odd row
// stride).
// Memory traffic: n² floats read, n² floats and one bool written.

constexpr int RF = 16;
constexpr int S = NMAX + 1;
threadgroup float tile[NMAX * S];
threadgroup int failed_at[1];

const int batch = A_shape[0];
const int n = A_shape[1];
const uint b = threadgroup_position_in_grid.x;
if (b >= (uint)batch || n > NMAX) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;

// Coalesced loads, RF rows in flight per thread (a load loop that waits for each load
// before the next took a large part of the kernel's time): thread t reads columns
// t, t + T, ... of rows r0 .. r0 + RF - 1.
const size_t base = (size_t)b * (size_t)(n * n);
for (int r0 = 0; r0 < n; r0 += RF) {
  for (int c = tid; c < n; c += nthreads) {
    float v[RF];
    LA_UNROLL
    for (int u = 0; u < RF; ++u) {
      v[u] = r0 + u < n ? A[base + (size_t)(r0 + u) * n + c] : 0.0f;
    }
    LA_UNROLL
    for (int u = 0; u < RF; ++u) {
      const int r = r0 + u;
      if (UPPER ? r <= c : (c <= r && r < n)) {
        tile[UPPER ? c * S + r : r * S + c] = v[u];
      }
    }
  }
}
if (tid == 0) {
  failed_at[0] = 0;
}
threadgroup_barrier(mem_flags::mem_threadgroup);

const int fail = la_cholesky_tile<NMAX, S>(tile, n, tid, nthreads, lane, warp, failed_at);
const float nan_value = la_nan();
for (int r = 0; r < n; ++r) {
  for (int c = tid; c < n; c += nthreads) {
    const int p = UPPER ? c : r;
    const int q = UPPER ? r : c;
    const float v = q <= p ? tile[p * S + q] : 0.0f;
    L[base + (size_t)r * n + c] = fail != 0 ? nan_value : v;
  }
}
if (tid == 0) {
  failed[b] = fail != 0;
}
