// @kernel cholesky_simd
// @inputs A:float32
// @outputs L:float32 failed:bool
// @template NMAX:int UPPER:bool
// @headers linalg_common.h
// @check NMAX=32,UPPER=false NMAX=64,UPPER=true
//
// Cholesky factors of a stack of small symmetric positive-definite matrices, one
// simdgroup per matrix with the matrix in registers.
//   A       (B, n, n) float32, 1 <= n <= NMAX, NMAX = 32 or 64. Only the lower triangle is
//           read (the upper one when UPPER).
//   L       (B, n, n): the lower factor L with A = L Lᵀ and zeros above the diagonal, or,
//           when UPPER, U = Lᵀ with A = Uᵀ U. Every entry NaN for a matrix whose pivot at
//           some column is not positive and finite (not positive definite, or NaN/Inf).
//   failed  (B,) bool: that matrix's factorization failed.
// Launch: grid (B * 32, 1, 1), threadgroup (32, 1, 1): one threadgroup of one simdgroup
// per matrix (matrix b = threadgroup_position_in_grid.x).
// Algorithm: right-looking Cholesky (LAPACK potf2), n³/3 flops, in registers: lane l
// holds rows l and l + 32 (NMAX = 64) of the lower triangle. Step j: the pivot comes from
// lane j by a shuffle; each lane scales its entry of column j; then for each later column
// k the multiplier l_kj is shuffled from lane k and every lane with a row i >= k updates
// a_ik. All loops over columns are unrolled, so the rows stay in registers; no barriers.
// Threadgroup memory only stages the load and the store (coalesced global traffic).
// Memory traffic: n² floats read, n² floats and one bool written.

const int batch = A_shape[0];
const int n = A_shape[1];
const uint b = threadgroup_position_in_grid.x;
if (b >= (uint)batch || n > NMAX) {
  return;
}
const int lane = (int)thread_index_in_simdgroup;
constexpr int R = NMAX / 32;
constexpr int S = NMAX + 1;
threadgroup float tile[NMAX * S];

const size_t base = (size_t)b * (size_t)(n * n);
for (int e = lane; e < n * n; e += 32) {
  const int r = e / n;
  const int c = e - r * n;
  const float v = A[base + e];
  if (UPPER) {
    if (r <= c) {
      tile[c * S + r] = v;
    }
  } else if (c <= r) {
    tile[r * S + c] = v;
  }
}
threadgroup_barrier(mem_flags::mem_threadgroup);

float row[R][NMAX];
LA_UNROLL
for (int q = 0; q < R; ++q) {
  const int i = lane + 32 * q;
  LA_UNROLL
  for (int k = 0; k < NMAX; ++k) {
    row[q][k] = (i < n && k <= i) ? tile[i * S + k] : 0.0f;
  }
}

int fail = 0;
LA_UNROLL
for (int j = 0; j < NMAX; ++j) {
  if (j < n && fail == 0) {  // uniform: n and fail are the same in every lane
    const float d = simd_shuffle(row[j / 32][j], (ushort)(j % 32));
    if (!(d > 0.0f) || !metal::isfinite(d)) {
      fail = j + 1;
    } else {
      const float r = metal::sqrt(d);
      const float rinv = 1.0f / r;
      float l[R];
      LA_UNROLL
      for (int q = 0; q < R; ++q) {
        const int i = lane + 32 * q;
        l[q] = row[q][j] * rinv;
        row[q][j] = i == j ? r : (i > j ? l[q] : row[q][j]);
      }
      LA_UNROLL
      for (int k = j + 1; k < NMAX; ++k) {
        if (k < n) {
          const float lk = simd_shuffle(l[k / 32], (ushort)(k % 32));
          LA_UNROLL
          for (int q = 0; q < R; ++q) {
            if (lane + 32 * q >= k) {
              row[q][k] = metal::fma(-l[q], lk, row[q][k]);
            }
          }
        }
      }
    }
  }
}

threadgroup_barrier(mem_flags::mem_threadgroup);
LA_UNROLL
for (int q = 0; q < R; ++q) {
  const int i = lane + 32 * q;
  if (i < n) {
    LA_UNROLL
    for (int k = 0; k < NMAX; ++k) {
      tile[i * S + k] = k <= i ? row[q][k] : 0.0f;
    }
  }
}
threadgroup_barrier(mem_flags::mem_threadgroup);
const float nan_value = la_nan();
for (int e = lane; e < n * n; e += 32) {
  const int r = e / n;
  const int c = e - r * n;
  const float v = UPPER ? tile[c * S + r] : tile[r * S + c];
  L[base + e] = fail != 0 ? nan_value : v;
}
if (lane == 0) {
  failed[b] = fail != 0;
}
