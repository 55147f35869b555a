// @kernel lu_panel
// @inputs A:float32
// @outputs LU:float32 piv:int32 perm:int32
// @template NBMAX:int
// @check NBMAX=64 NBMAX=128 NBMAX=256
//
// LU factorization with partial pivoting of a stack of tall panels, P A = L U, one
// threadgroup per panel, the panel in device memory (M x NB floats exceed threadgroup
// memory for tall panels).
//   A     (B, M, NB) float32, M >= 1, 1 <= NB <= NBMAX (NBMAX = 64, 128 or 256).
//   LU    (B, M, NB): row i is row i of the eliminated P A: U on and above the diagonal,
//         the multipliers of unit-lower L below it (LAPACK getrf's packed form). A zero
//         pivot is kept and its column's multipliers are left unscaled (as dgetf2); NaN
//         and Inf entries propagate within their own panel.
//   piv   (B, k) int32, k = min(M, NB), 0-based: row j was interchanged with row piv[j]
//         (LAPACK's ipiv minus one).
//   perm  (B, M) int32: row i of P A is row perm[i] of A (the permutation the
//         interchanges produce: the pivot rows in the order chosen, then the rest).
// Pivot choice: the first entry of largest magnitude among current positions j..M-1 of
// column j, exactly as dgetf2/isamax and la_pivot_row; a NaN never wins (it scores below
// every number), so every thread agrees on the pivot.
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32 (256-1024), T >= NB: panel
// b = threadgroup_position_in_grid.x.
// Algorithm: right-looking unblocked LU with partial pivoting (LAPACK dgetf2; Golub & Van
// Loan 4th ed. Alg. 3.4.1 with §3.4.7), M NB² - NB³/3 flops. Per column j, three barriers:
//   1. the pivot: every thread holds its best (score, row) candidate of column j (from the
//      previous column's update, or a scan for column 0); a SIMD-group reduction by
//      shuffles, one entry per simdgroup in threadgroup memory, barrier, and every thread
//      reduces those entries (so all agree on p);
//   2. rows j and p swap (whole rows, as getrf), thread 0 swaps perm and writes piv[j],
//      the pivot row is copied to threadgroup memory; barrier;
//   3. rows below j divide their column-j entry by the pivot (not when it is zero); barrier;
//   4. the trailing (M-j-1) x (NB-j-1) block gets the rank-1 update a_ic -= l_ij u_jc,
//      thread (g, c) of T / (NB-j-1) groups updating column c of every G-th row
//      (consecutive threads, consecutive columns); the threads of column j+1 keep the
//      best of its new entries, the candidates of step 1 for the next column, so no
//      pass scans the column again.
// Barriers order device memory within the threadgroup (mem_device); no grid-wide
// synchronization is needed, since a panel belongs to one threadgroup. The separate scan
// of each column (one more pass and barrier) and an update over the entries in row-major
// order (a 64-bit index division per entry) took 225 us per 4096 x 16 panel on an H100;
// the pivots and factors are the same bit for bit.
// Memory traffic: M NB floats read from A; per column the trailing block is read and
// written once (about M NB²/2 floats each way in all, mostly cached), column j read and
// written once more; perm and piv written once per step.

const int batch = A_shape[0];
const int m = A_shape[1];
const int nb = A_shape[2];
const uint b = threadgroup_position_in_grid.x;
if (b >= (uint)batch || nb > NBMAX || m < 1 || nb < 1 || nb > (int)threads_per_threadgroup.x) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int nwarps = nthreads / 32;
const int k = metal::min(m, nb);
threadgroup float best_v[32];
threadgroup int best_i[32];
threadgroup float urow[NBMAX];

const size_t base = (size_t)b * (size_t)m * (size_t)nb;
device float* P = LU + base;
device int* pm = perm + (size_t)b * (size_t)m;
const size_t total = (size_t)m * (size_t)nb;
for (size_t e = (size_t)tid; e < total; e += (size_t)nthreads) {
  P[e] = A[base + e];
}
for (int i = tid; i < m; i += nthreads) {
  pm[i] = i;
}
threadgroup_barrier(mem_flags::mem_device);

// Candidates of column 0. Rows past the end score -1, NaN entries -0.5: both lose to any
// number, and comparisons never involve a NaN, so every thread reaches the same p.
float v = -1.0f;
int idx = m;
for (int i = tid; i < m; i += nthreads) {
  float w = metal::abs(P[(size_t)i * nb]);
  w = w >= 0.0f ? w : -0.5f;
  if (w > v) {  // rows ascend within a thread: the first of equals stays
    v = w;
    idx = i;
  }
}

for (int j = 0; j < k; ++j) {
  // 1. The pivot: the best of every thread's candidate.
  for (ushort off = 16; off > 0; off >>= 1) {
    const float ov = simd_shuffle_xor(v, off);
    const int oi = simd_shuffle_xor(idx, off);
    if (ov > v || (ov == v && oi < idx)) {
      v = ov;
      idx = oi;
    }
  }
  if (lane == 0) {
    best_v[warp] = v;
    best_i[warp] = idx;
  }
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
  v = best_v[0];
  idx = best_i[0];
  for (int w = 1; w < nwarps; ++w) {
    const float ov = best_v[w];
    const int oi = best_i[w];
    if (ov > v || (ov == v && oi < idx)) {
      v = ov;
      idx = oi;
    }
  }
  const int p = idx < m ? idx : j;

  // 2. Interchange rows j and p; keep the pivot row (row j of U) in threadgroup memory.
  for (int c = tid; c < nb; c += nthreads) {
    const float top = P[(size_t)j * nb + c];
    const float low = P[(size_t)p * nb + c];
    if (p != j) {
      P[(size_t)j * nb + c] = low;
      P[(size_t)p * nb + c] = top;
    }
    urow[c] = low;
  }
  if (tid == 0) {
    piv[(size_t)b * k + j] = p;
    const int t = pm[j];
    pm[j] = pm[p];
    pm[p] = t;
  }
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);

  // 3. Multipliers: column j below the diagonal divided by the pivot (kept when zero).
  const float pivot = urow[j];
  if (pivot != 0.0f) {
    for (int i = j + 1 + tid; i < m; i += nthreads) {
      P[(size_t)i * nb + j] = P[(size_t)i * nb + j] / pivot;
    }
  }
  threadgroup_barrier(mem_flags::mem_device);

  // 4. Rank-1 update of the trailing block, and the candidates of column j + 1 (rows
  // j+1..): thread (g, c) of G = T / width groups updates column c of rows j+1+g,
  // j+1+g+G, ... (consecutive threads, consecutive columns; no index division per entry).
  v = -1.0f;
  idx = m;
  const int width = nb - j - 1;
  if (width > 0) {
    const int groups = nthreads / width;  // >= 1: width < NBMAX <= nthreads
    const int g = tid / width;
    const int c = j + 1 + (tid - g * width);
    if (g < groups) {
      const float ujc = urow[c];
      for (int i = j + 1 + g; i < m; i += groups) {
        const size_t at = (size_t)i * nb + c;
        const float updated = metal::fma(-P[(size_t)i * nb + j], ujc, P[at]);
        P[at] = updated;
        if (c == j + 1) {  // rows ascend within a thread: the first of equals stays
          float w = metal::abs(updated);
          w = w >= 0.0f ? w : -0.5f;
          if (w > v) {
            v = w;
            idx = i;
          }
        }
      }
    }
  }
}
