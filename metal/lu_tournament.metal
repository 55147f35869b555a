// @kernel lu_tournament
// @inputs A:float32 Blocks:int32 Dims:int32
// @outputs LU:float32 perm:int32
// @template NB:int
// @headers linalg_common.h
// @check NB=16 NB=5
//
// The second of the two launches of a tournament-pivoting LU of a stack of tall panels
// (CALU: Grigori, Demmel & Xiang, "CALU: a communication optimal LU factorization
// algorithm", SIAM J. Matrix Anal. Appl. 32(4), 2011; here a tree of one level). The
// first launch, the lu_panel kernel on the panel's P row blocks of R rows as one stack,
// chose NB candidate rows in each block by getf2; this one plays the tournament among the
// C = P·NB candidates, getf2 of their rows as they are in A, and finishes the panel: the
// NB winners first (their rows of the candidates' factorization, U and L₁₁), then every
// other row in its original order with its multipliers L₂₁ = A₂₁ U⁻¹.
//
// Contract
//   A      (B, P·R, NB) float32, the panel and, past its M real rows, rows that are never
//          read (the zero padding of the row blocks).
//   Blocks (B·P, R) int32: lu_panel's perm of each block; its first NB entries are the
//          block's candidates, rows p·R + Blocks[b·P + p][k] of A[b] (all below M: a block
//          with at least NB real rows never picks a padding row, which comes after them).
//   Dims   (M, P, R, 0) int32, empty (_kernels.extents): runtime values, NB <= M,
//          P·NB <= CMAX.
//   LU     (B, M, NB): row i is row perm[i] of A eliminated, U on and above the diagonal
//          of the first NB rows, the multipliers of unit-lower L below it. A zero pivot is
//          kept and its column's multipliers are left unscaled (as dgetf2).
//   perm   (B, M) int32: the winners in the order the tournament chose them, then every
//          other row in its original order (row x at NB + x - #{winners before x}).
// Pivots: in the tournament, the first candidate of largest magnitude among current
//   positions j.. of column j (the candidates in block order, as dgetf2/isamax); a NaN
//   never wins. Not LAPACK's pivots (|L₂₁| may exceed 1; CALU's growth bound).
// Launch: grid (B·G·T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32, T >= NB,
//   G = ⌈M / T⌉: threadgroup g of panel b writes the rows of original index g·T ...
//   g·T + T - 1 (one a thread), and group 0 also the winners' rows.
// Algorithm: every threadgroup copies the C candidate rows into threadgroup memory
//   (column-major: a column's rows are consecutive) and factors them by right-looking
//   getf2 (the same operations in every threadgroup, so all agree on the winners); then
//   each thread's row, if it is not a winner, is eliminated by the same operations getf2
//   applies to a row below the pivots (l_j = a_j / u_jj, then a_c -= l_j u_jc for c > j,
//   one fma each). C·NB²-NB³/3 flops per threadgroup, M·NB² in all.
// Memory traffic: the candidates read G times (C·NB floats each), the panel's M rows read
//   once and written once.

constexpr int CMAX = 7680 / (NB + 1);  // candidates that fit 30 KB with their row indices

threadgroup float W[CMAX * NB];  // W[c * CMAX + i]: entry (i, c) of the candidates
threadgroup int rows[CMAX];      // rows[i]: the row of A now at candidate position i
threadgroup float best_v[32];
threadgroup int best_i[32];

const int batch = A_shape[0];
const int mp = A_shape[1];
const int m = Dims_shape[0];
const int nblocks = Dims_shape[1];
const int r = Dims_shape[2];
const int c_count = nblocks * NB;
const int nthreads = (int)threads_per_threadgroup.x;
const int groups = (m + nthreads - 1) / nthreads;
const int b = (int)threadgroup_position_in_grid.x / groups;
const int g = (int)threadgroup_position_in_grid.x - b * groups;
if (b >= batch || c_count > CMAX || m < NB || nthreads < NB) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int nwarps = nthreads / 32;
const device float* a = A + (size_t)b * (size_t)mp * NB;
const device int* chosen = Blocks + (size_t)b * (size_t)nblocks * (size_t)r;

for (int i = tid; i < c_count; i += nthreads) {
  const int p = i / NB;
  rows[i] = p * r + chosen[(size_t)p * r + (i - p * NB)];
}
threadgroup_barrier(mem_flags::mem_threadgroup);
for (int e = tid; e < c_count * NB; e += nthreads) {
  const int i = e / NB;
  const int c = e - i * NB;
  W[c * CMAX + i] = a[(size_t)rows[i] * NB + c];
}
threadgroup_barrier(mem_flags::mem_threadgroup);

// The tournament: getf2 of the candidates.
for (int j = 0; j < NB; ++j) {
  // The first candidate of largest magnitude at positions j.. (la_pivot_score: rows past
  // the end score -1, so every thread reaches the same p).
  float v = -1.0f;
  int idx = c_count;
  for (int i = j + tid; i < c_count; i += nthreads) {
    const float w = la_pivot_score(W[j * CMAX + i]);
    if (w > v) {  // positions ascend within a thread: the first of equals stays
      v = w;
      idx = i;
    }
  }
  la_simd_pivot(v, idx);
  if (lane == 0) {
    best_v[warp] = v;
    best_i[warp] = idx;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  idx = la_pivot_of_simdgroups(best_v, best_i, nwarps);
  const int p = idx < c_count ? idx : j;
  threadgroup_barrier(mem_flags::mem_threadgroup);  // best_v read by all before reuse
  if (p != j && tid < NB) {
    const float top = W[tid * CMAX + j];
    W[tid * CMAX + j] = W[tid * CMAX + p];
    W[tid * CMAX + p] = top;
  }
  if (p != j && tid == 0) {
    const int t = rows[j];
    rows[j] = rows[p];
    rows[p] = t;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const float pivot = W[j * CMAX + j];
  for (int i = j + 1 + tid; i < c_count; i += nthreads) {
    float l = W[j * CMAX + i];
    if (pivot != 0.0f) {
      l = l / pivot;
      W[j * CMAX + i] = l;
    }
    for (int c = j + 1; c < NB; ++c) {
      W[c * CMAX + i] = metal::fma(-l, W[c * CMAX + j], W[c * CMAX + i]);
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}

// This thread's row of the panel, unless it won: eliminated against U (rows 0..NB-1 of W).
device float* lu = LU + (size_t)b * (size_t)m * NB;
device int* pm = perm + (size_t)b * (size_t)m;
const int x = g * nthreads + tid;
if (x < m) {
  bool winner = false;
  int before = 0;
  for (int k = 0; k < NB; ++k) {
    winner = winner || rows[k] == x;
    before += rows[k] < x ? 1 : 0;
  }
  if (!winner) {
    float row[NB];
    for (int c = 0; c < NB; ++c) {
      row[c] = a[(size_t)x * NB + c];
    }
    for (int j = 0; j < NB; ++j) {
      const float pivot = W[j * CMAX + j];
      float l = row[j];
      if (pivot != 0.0f) {
        l = l / pivot;
        row[j] = l;
      }
      for (int c = j + 1; c < NB; ++c) {
        row[c] = metal::fma(-l, W[c * CMAX + j], row[c]);
      }
    }
    const int at = NB + x - before;
    for (int c = 0; c < NB; ++c) {
      lu[(size_t)at * NB + c] = row[c];
    }
    pm[at] = x;
  }
}
if (g == 0) {
  for (int e = tid; e < NB * NB; e += nthreads) {
    const int i = e / NB;
    lu[e] = W[(e - i * NB) * CMAX + i];
  }
  if (tid < NB) {
    pm[tid] = rows[tid];
  }
}
