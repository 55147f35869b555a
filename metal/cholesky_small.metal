// @kernel cholesky_small
// @inputs A:float32
// @outputs L:float32 info:int32
// @template NMAX:int UPPER:bool
// @headers linalg_common.h
// @check NMAX=8,UPPER=false NMAX=32,UPPER=true NMAX=64,UPPER=false
//
// Cholesky factors of a stack of small symmetric positive-definite matrices.
//   A     (B, n, n) float32, 1 <= n <= NMAX <= 64. Only the lower triangle is read (the
//         upper one when UPPER).
//   L     (B, n, n): the lower factor L with A = L Lᵀ and zeros above the diagonal, or, when
//         UPPER, U = Lᵀ with A = Uᵀ U. Every entry NaN for a matrix whose pivot at some
//         column is not positive and finite (not positive definite, or NaN/Inf input).
//   info  (B,) int32: 0, or j + 1 for the first such column j.
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32: one threadgroup
// per matrix (matrix b = threadgroup_position_in_grid.x).
// Algorithm: right-looking unblocked Cholesky (LAPACK potf2), n³/3 flops, on the matrix
// held in threadgroup memory with an odd row stride (no bank conflicts on columns).
// Step j: every thread reads the pivot d = a_jj; simdgroup w updates rows i = j+1+w,
// j+1+w+W, ...; lane l updates columns k = j+1+l, ... <= i of its row:
// a_ik -= l_ij l_kj with l_ij = a_ij / sqrt(d), and lane 0 stores l_ij in the unused upper
// triangle (row j), so one barrier per column suffices: nothing read in step j is written.
// Memory traffic: n² floats read (coalesced), n² floats and one int written.

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
const int nwarps = nthreads / 32;
constexpr int S = NMAX + 1;
threadgroup float tile[NMAX * S];

const size_t base = (size_t)b * (size_t)(n * n);
for (int e = tid; e < n * n; e += nthreads) {
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

int fail = 0;
for (int j = 0; j < n; ++j) {
  const float d = tile[j * S + j];
  if (!(d > 0.0f) || !metal::isfinite(d)) {
    fail = j + 1;  // the same for every thread: all read the same d
    break;
  }
  const float rinv = 1.0f / metal::sqrt(d);
  for (int i = j + 1 + warp; i < n; i += nwarps) {
    const float lij = tile[i * S + j] * rinv;
    if (lane == 0) {
      tile[j * S + i] = lij;
    }
    for (int k = j + 1 + lane; k <= i; k += 32) {
      tile[i * S + k] = metal::fma(-lij, tile[k * S + j] * rinv, tile[i * S + k]);
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}

// L[p][q] (p > q) sits at tile[q * S + p]; the diagonal holds the pivots d.
const float nan_value = la_nan();
for (int e = tid; e < n * n; e += nthreads) {
  const int r = e / n;
  const int c = e - r * n;
  const int p = UPPER ? c : r;
  const int q = UPPER ? r : c;
  float v = 0.0f;
  if (p == q) {
    v = metal::sqrt(tile[p * S + p]);
  } else if (p > q) {
    v = tile[q * S + p];
  }
  L[base + e] = fail != 0 ? nan_value : v;
}
if (tid == 0) {
  info[b] = fail;
}
