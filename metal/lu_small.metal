// @kernel lu_small
// @inputs A:float32
// @outputs LU:float32 piv:int32 perm:int32
// @template NMAX:int SIMD:bool
// @headers linalg_common.h
// @check NMAX=32,SIMD=false NMAX=32,SIMD=true NMAX=64,SIMD=false
//
// LU factorization with partial pivoting of a stack of small matrices, P A = L U.
//   A     (B, m, n) float32, 1 <= m, n <= NMAX, NMAX = 32 or 64.
//   LU    (B, m, n): U on and above the diagonal, the multipliers of unit-lower L below
//         it (LAPACK getrf's packed form). A zero pivot (singular matrix) is kept, as
//         getrf keeps it; NaN/Inf entries propagate within their own matrix.
//   piv   (B, k) int32, k = min(m, n), 0-based: row j was interchanged with row piv[j].
//   perm  (B, m) int32: row i of P A is row perm[i] of A.
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32 (T = 32 is enough
// when SIMD): one threadgroup per matrix (matrix b = threadgroup_position_in_grid.x).
// Algorithm: right-looking unblocked LU with partial pivoting (LAPACK getf2), about
// m n² - n³/3 flops, two ways with the same arithmetic:
// - SIMD: in the registers of simdgroup 0 (la_lu_simd: lane l holds rows l and l + 32;
//   rows stay in place and only their positions are swapped; the pivot row is broadcast by
//   shuffles; no barriers), then each row written to its final position;
// - else: in threadgroup memory (odd row stride). Step j: simdgroup 0 finds the pivot
//   (la_pivot_row), swaps the rows (whole rows, as getrf does) and scales column j;
//   barrier; simdgroup w updates rows j+1+w, j+1+w+W, ..., lane l columns j+1+l, ...;
//   barrier.
// Memory traffic: m n floats read, m n floats and k + m ints written, all coalesced.

const int batch = A_shape[0];
const int m = A_shape[1];
const int n = A_shape[2];
const uint b = threadgroup_position_in_grid.x;
if (b >= (uint)batch || m > NMAX || n > NMAX) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int nwarps = nthreads / 32;
const int k = metal::min(m, n);
constexpr int R = NMAX / 32;
constexpr int S = NMAX + 1;
threadgroup float tile[NMAX * S];
threadgroup int piv_s[NMAX];
threadgroup int perm_s[NMAX];

const size_t base = (size_t)b * (size_t)(m * n);
for (int e = tid; e < m * n; e += nthreads) {
  const int r = e / n;
  tile[r * S + (e - r * n)] = A[base + e];
}
for (int i = tid; i < m; i += nthreads) {
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
        row[q][c] = i < m && c < n ? tile[i * S + c] : 0.0f;
      }
    }
    la_lu_simd<R, NMAX>(row, cp, m, n, (uint)lane, piv_s);
    simdgroup_barrier(mem_flags::mem_threadgroup);
    LA_UNROLL
    for (int q = 0; q < R; ++q) {
      const int i = lane + 32 * q;
      if (i < m) {
        perm_s[cp[q]] = i;
        LA_UNROLL
        for (int c = 0; c < NMAX; ++c) {
          if (c < n) {
            tile[cp[q] * S + c] = row[q][c];
          }
        }
      }
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
} else {
  for (int j = 0; j < k; ++j) {
    if (warp == 0) {
      const int p = la_pivot_row(tile, S, m, j, (uint)lane);
      if (p != j) {
        for (int c = lane; c < n; c += 32) {
          const float t = tile[j * S + c];
          tile[j * S + c] = tile[p * S + c];
          tile[p * S + c] = t;
        }
      }
      if (lane == 0) {
        piv_s[j] = p;
        const int t = perm_s[j];
        perm_s[j] = perm_s[p];
        perm_s[p] = t;
      }
      simdgroup_barrier(mem_flags::mem_threadgroup);
      const float pivot = tile[j * S + j];
      if (pivot != 0.0f) {
        for (int i = j + 1 + lane; i < m; i += 32) {
          tile[i * S + j] = tile[i * S + j] / pivot;
        }
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int i = j + 1 + warp; i < m; i += nwarps) {
      const float lij = tile[i * S + j];
      for (int c = j + 1 + lane; c < n; c += 32) {
        tile[i * S + c] = metal::fma(-lij, tile[j * S + c], tile[i * S + c]);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
}

for (int e = tid; e < m * n; e += nthreads) {
  const int r = e / n;
  LU[base + e] = tile[r * S + (e - r * n)];
}
for (int j = tid; j < k; j += nthreads) {
  piv[(size_t)b * k + j] = piv_s[j];
}
for (int i = tid; i < m; i += nthreads) {
  perm[(size_t)b * m + i] = perm_s[i];
}
