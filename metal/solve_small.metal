// @kernel solve_small
// @inputs A:float32 Bm:float32
// @outputs X:float32 info:int32
// @template NMAX:int EYE:bool SIMD:bool
// @headers linalg_common.h
// @check NMAX=32,EYE=true,SIMD=false NMAX=32,EYE=false,SIMD=true NMAX=32,EYE=true,SIMD=true NMAX=64,EYE=false,SIMD=false NMAX=64,EYE=true,SIMD=false
//
// Solve A X = B for a stack of small square matrices, fused: LU with partial pivoting in
// threadgroup memory or registers, then both triangular solves, one lane per right-hand side.
//   A     (B, n, n) float32, 1 <= n <= NMAX, NMAX = 32 or 64.
//   Bm    (B, n, K) float32, the right-hand sides, K >= 1. When EYE, the right-hand side
//         is the identity (K = n; X = A⁻¹) and Bm is not read: pass A for it.
//   X     (B, n, K): the solution; every entry NaN when a pivot is exactly zero (singular).
//   info  (B,) int32: 0, or j + 1 for the first zero pivot j.
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32; SIMD needs
// n <= 32. T = 32 suffices for any n and K; more simdgroups share the trailing updates of
// the threadgroup LU, and up to XW of them the chunks of 32 right-hand sides.
// Algorithm: getf2 as in lu_small.metal (SIMD: in the registers of simdgroup 0, the factors
// then written to threadgroup memory by position; else in threadgroup memory, pivot search,
// swap and scaling by simdgroup 0, trailing update by all), tracking the row permutation;
// then lane c of a simdgroup owns right-hand-side column c0 + c (chunks c0 of 32 columns)
// in its own column of threadgroup memory (stride 32: no bank conflicts): it loads the
// permuted column P b (for each row, consecutive lanes read consecutive addresses:
// coalesced), solves L y = P b and U x = y (la_trsv_lane: blocks of 8 rows in registers,
// FMAs whose factor every lane reads from the same threadgroup word) and stores x
// coalesced. No shuffles and no barriers after the LU.
// Memory traffic: n² + n K floats read (none of Bm when EYE), n K floats and one int
// written.

const int batch = A_shape[0];
const int n = A_shape[1];
const int K = EYE ? n : Bm_shape[2];
const uint b = threadgroup_position_in_grid.x;
if (b >= (uint)batch || n > NMAX) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int nwarps = nthreads / 32;
constexpr int R = NMAX / 32;
constexpr int S = NMAX + 1;
threadgroup float tile[NMAX * S];
// Right-hand-side columns live in threadgroup memory, one per lane (x[32 i + lane] = row i):
// XW simdgroups substitute, NMAX * 32 floats each (XW = 1 keeps NMAX = 64 under 32 KB).
constexpr int XW = NMAX > 32 ? 1 : 2;
threadgroup float xs[XW * NMAX * 32];
threadgroup int perm_s[NMAX];
threadgroup int piv_s[NMAX];
threadgroup int zero_pivot[1];

const size_t base = (size_t)b * (size_t)(n * n);
for (int e = tid; e < n * n; e += nthreads) {
  const int r = e / n;
  tile[r * S + (e - r * n)] = A[base + e];
}
threadgroup_barrier(mem_flags::mem_threadgroup);

if (tid == 0) {
  zero_pivot[0] = 0;
}
for (int i = tid; i < n; i += nthreads) {
  perm_s[i] = i;
}
threadgroup_barrier(mem_flags::mem_threadgroup);
if (SIMD) {
  if (warp == 0) {
    float row[R][NMAX];
    int cp[R];
    LA_UNROLL
    for (int q = 0; q < R; ++q) {
      const int i = lane + 32 * q;
      cp[q] = i;
      LA_UNROLL
      for (int c = 0; c < NMAX; ++c) {
        row[q][c] = i < n && c < n ? tile[i * S + c] : 0.0f;
      }
    }
    const int zero = la_lu_simd<R, NMAX>(row, cp, n, n, (uint)lane, piv_s);
    simdgroup_barrier(mem_flags::mem_threadgroup);
    LA_UNROLL
    for (int q = 0; q < R; ++q) {
      const int i = lane + 32 * q;
      if (i < n) {
        perm_s[cp[q]] = i;
        LA_UNROLL
        for (int c = 0; c < NMAX; ++c) {
          if (c < n) {
            tile[cp[q] * S + c] = row[q][c];
          }
        }
      }
    }
    if (lane == 0) {
      zero_pivot[0] = zero;
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
} else {
  for (int j = 0; j < n; ++j) {
    if (warp == 0) {
      const int p = la_pivot_row(tile, S, n, j, (uint)lane);
      if (p != j) {
        for (int c = lane; c < n; c += 32) {
          const float t = tile[j * S + c];
          tile[j * S + c] = tile[p * S + c];
          tile[p * S + c] = t;
        }
      }
      if (lane == 0) {
        const int t = perm_s[j];
        perm_s[j] = perm_s[p];
        perm_s[p] = t;
      }
      simdgroup_barrier(mem_flags::mem_threadgroup);
      const float pivot = tile[j * S + j];
      if (pivot != 0.0f) {
        for (int i = j + 1 + lane; i < n; i += 32) {
          tile[i * S + j] = tile[i * S + j] / pivot;
        }
      } else if (lane == 0 && zero_pivot[0] == 0) {
        zero_pivot[0] = j + 1;
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int i = j + 1 + warp; i < n; i += nwarps) {
      const float lij = tile[i * S + j];
      for (int c = j + 1 + lane; c < n; c += 32) {
        tile[i * S + c] = metal::fma(-lij, tile[j * S + c], tile[i * S + c]);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
}

const int fail = zero_pivot[0];
const float nan_value = la_nan();
const size_t xbase = (size_t)b * (size_t)n * (size_t)K;
const int nsub = metal::min(nwarps, XW);
// No SIMD-group call follows: lanes past column K simply skip their work.
if (warp < nsub) {
  LA_TG float* x = xs + warp * (NMAX * 32) + lane;
  for (int c0 = 32 * warp; c0 < K; c0 += 32 * nsub) {
    const int col = c0 + lane;
    if (col < K) {
      if (fail == 0) {
        for (int i = 0; i < n; ++i) {
          const int src = perm_s[i];
          x[i * 32] = EYE ? (src == col ? 1.0f : 0.0f) : Bm[xbase + (size_t)src * K + col];
        }
        la_trsv_lane<true, false, true>(tile, S, n, x);
        la_trsv_lane<false, false, false>(tile, S, n, x);
      }
      for (int i = 0; i < n; ++i) {
        X[xbase + (size_t)i * K + col] = fail != 0 ? nan_value : x[i * 32];
      }
    }
  }
}
if (tid == 0) {
  info[b] = fail;
}
