// @kernel cholesky_panel
// @inputs A:float32 width:int32
// @outputs L:float32 failed:bool
// @template NMAX:int
// @headers linalg_common.h cholesky_tile.h
// @check NMAX=64 NMAX=32
//
// One leaf of the blocked Cholesky factorization: the first W columns of a stack of tall
// matrices whose top W x W block is symmetric positive definite, factored and solved in one
// launch (LAPACK potrf's diagonal-block potf2 and the trsm below it).
//   A       (B, m, k) float32, W <= m, W <= k, W <= NMAX, NMAX = 32 or 64. Only the first W
//           columns are read, of the top W rows only the lower triangle.
//   width   (W, 0) int32, empty (_kernels.extents): W >= 1, read from its shape.
//   L       (B, m, W): rows [0, W) the lower Cholesky factor L11 of the top block
//           (A11 = L11 L11ᵀ, zeros above the diagonal); rows [W, m) L21 = A21 L11⁻ᵀ. Every
//           entry NaN for a matrix whose top block has a pivot that is not positive and
//           finite (not positive definite, or NaN/Inf).
//   failed  (B,) bool: whether the top block's factorization failed.
// Launch: grid (B * G * T, 1, 1), threadgroup (T, 1, 1), T = 32 for W <= 32, 64 above
// (cholesky_small's measured choice), G = 1 + ceil((m - W) / 32): threadgroup g of matrix
// g / G factors the top block; g mod G = 0 writes L11 and failed, g mod G = r > 0 solves
// rows W + 32 (r - 1) .. W + 32 r - 1 of L21, one row per lane of simdgroup 0.
// Algorithm: every threadgroup loads A11's lower triangle into threadgroup memory and
// factors it with la_cholesky_tile (cholesky_tile.h; W³/3 flops each, which at W = 64 is
// less than one launch's cost), so no threadgroup waits for another; a lane, which loaded
// its row of A21 into registers before the factorization, then solves L11 x = (that row)ᵀ
// by forward substitution (la_trsv_lane, linalg_common.h).
// The same operations in the same order as cholesky_small followed by trsm_small with
// ROWS (both use these helpers), so the result equals theirs bit for bit.
// Memory traffic: per threadgroup W²/2 floats read for A11 and, for r > 0, 32 W floats of
// A21 read and written; W² floats and one bool written by r = 0.

constexpr int RF = 16;
constexpr int S = NMAX + 1;
threadgroup float tile[NMAX * S];
threadgroup float xs[NMAX * 32];
threadgroup int failed_at[1];

const int batch = A_shape[0];
const int m = A_shape[1];
const int k = A_shape[2];
const int W = width_shape[0];
const int groups = 1 + (m - W + 31) / 32;
const uint group = threadgroup_position_in_grid.x;
const uint b = group / (uint)groups;
const int part = (int)(group - b * (uint)groups);
if (b >= (uint)batch || W < 1 || W > NMAX || W > m || W > k) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;

const size_t base = (size_t)b * (size_t)m * (size_t)k;
// This lane's row of A21, loaded first so that its memory latency passes during A11's load
// and factorization: NMAX registers, every load in flight at once (the row's entries lie
// in cache lines no other lane reads).
const int row = W + 32 * (part - 1) + lane;
const bool solves = part > 0 && warp == 0 && row < m;
float a21[NMAX];
if (solves) {
  const size_t at = base + (size_t)row * k;
  LA_UNROLL
  for (int j = 0; j < NMAX; ++j) {
    a21[j] = j < W ? A[at + j] : 0.0f;
  }
}
// A11's lower triangle, coalesced: thread t reads columns t, t + T, ... of RF rows at once.
for (int r0 = 0; r0 < W; r0 += RF) {
  for (int c = tid; c < W; c += nthreads) {
    float v[RF];
    LA_UNROLL
    for (int u = 0; u < RF; ++u) {
      v[u] = r0 + u < W ? A[base + (size_t)(r0 + u) * k + c] : 0.0f;
    }
    LA_UNROLL
    for (int u = 0; u < RF; ++u) {
      const int r = r0 + u;
      if (c <= r && r < W) {
        tile[r * S + c] = v[u];
      }
    }
  }
}
if (tid == 0) {
  failed_at[0] = 0;
}
threadgroup_barrier(mem_flags::mem_threadgroup);

const int fail = la_cholesky_tile<NMAX, S>(tile, W, tid, nthreads, lane, warp, failed_at);
const float nan_value = la_nan();
const size_t lbase = (size_t)b * (size_t)m * (size_t)W;
if (part == 0) {
  for (int r = 0; r < W; ++r) {
    for (int c = tid; c < W; c += nthreads) {
      L[lbase + (size_t)r * W + c] = fail != 0 ? nan_value : (c <= r ? tile[r * S + c] : 0.0f);
    }
  }
  if (tid == 0) {
    failed[b] = fail != 0;
  }
} else if (solves) {
  // No SIMD-group call follows: a lane past the last row simply skips its work.
  LA_TG float* x = xs + lane;
  if (fail == 0) {
    LA_UNROLL
    for (int j = 0; j < NMAX; ++j) {
      if (j < W) {
        x[j * 32] = a21[j];
      }
    }
    la_trsv_lane<true, false, false>(tile, S, W, x);
  }
  for (int j = 0; j < W; ++j) {
    L[lbase + (size_t)row * W + j] = fail != 0 ? nan_value : x[j * 32];
  }
}
