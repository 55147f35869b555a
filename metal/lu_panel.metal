// @kernel lu_panel
// @inputs A:float32 Cols:int32
// @outputs LU:float32 piv:int32 perm:int32 work:float32
// @template NBMAX:int
// @headers linalg_common.h
// @check NBMAX=64 NBMAX=128 NBMAX=256
//
// LU factorization with partial pivoting of a stack of tall panels, P A = L U, one
// threadgroup per panel, the panel in device memory (M x NB floats exceed threadgroup
// memory for tall panels).
//   A     (B, M, NA) float32 holding the panels as its first NB columns, NB <= NA (a
//         panel read in place from a wider matrix: no copy of the column slice), M >= 1,
//         1 <= NB <= NBMAX (NBMAX = 64, 128 or 256), M NA < 2^31.
//   Cols  (NB, 0) int32, empty (_kernels.extents): NB, read from its shape.
//   LU    (B, M, NB): row i is row i of the eliminated P A: U on and above the diagonal,
//         the multipliers of unit-lower L below it (LAPACK getrf's packed form). A zero
//         pivot is kept and its column's multipliers are left unscaled (as dgetf2); NaN
//         and Inf entries propagate within their own panel.
//   piv   (B, k) int32, k = min(M, NB), 0-based: row j was interchanged with row piv[j]
//         (LAPACK's ipiv minus one).
//   perm  (B, M) int32: row i of P A is row perm[i] of A (the permutation the
//         interchanges produce: the pivot rows in the order chosen, then the rest).
//   work  (B, NB, M): scratch, the panel column by column while it is eliminated (the
//         caller discards it).
// Pivot choice: the first entry of largest magnitude among current positions j..M-1 of
// column j, exactly as dgetf2/isamax and la_pivot_row; a NaN never wins (it scores below
// every number), so every thread agrees on the pivot.
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32 (256-1024), T >= NB: panel
// b = threadgroup_position_in_grid.x.
// Algorithm: right-looking unblocked LU with partial pivoting (LAPACK dgetf2; Golub & Van
// Loan 4th ed. Alg. 3.4.1 with §3.4.7), M NB² - NB³/3 flops, on a column-major copy of the
// panel in `work` (so a SIMD-group's loads and stores of a column are 32 consecutive
// floats). Thread t owns rows t, t + T, t + 2T, ... Per column j, two barriers:
//   1. the pivot: every thread holds its best (score, row) candidate of column j (from the
//      previous column's update, or a scan for column 0); a SIMD-group reduction by
//      shuffles, one entry per simdgroup in threadgroup memory, barrier, and every thread
//      reduces those entries (so all agree on p);
//   2. rows j and p swap (whole rows, as getrf), thread 0 swaps perm and writes piv[j],
//      the pivot row is copied to threadgroup memory; barrier;
//   3. each thread, for each of its rows i > j: the multiplier l_ij = a_ij / pivot (kept
//      unscaled when the pivot is zero), then the rank-1 update a_ic -= l_ij u_jc of its
//      columns c > j, CHUNK columns at a time (every load of a chunk before its stores),
//      keeping the best new entry of column j + 1: the candidates of step 1 for the next
//      column, so no pass scans the column again.
// Finally every thread writes its rows of LU from `work`. The same operations per entry as
// the row-major version it replaced (one fma per update, the multiplier stored before
// use), so the pivots and factors are the same bit for bit. Timed on an H100 (one panel
// per launch, synchronized), the row-major version took 160 us for 512 x 16 and 370 us
// for 4096 x 16: a SIMD-group's accesses then spanned parts of several 64-byte rows, and
// the multipliers were read back from memory by every thread of a row.
// Barriers order device memory within the threadgroup (mem_device); no grid-wide
// synchronization is needed, since a panel belongs to one threadgroup.
// Memory traffic: M NB floats read from A and written to LU; per column the trailing
// block is read and written once in `work` (about M NB²/2 floats each way in all, mostly
// cached); perm and piv written once per step.

const int batch = A_shape[0];
const int m = A_shape[1];
const int na = A_shape[2];
const int nb = Cols_shape[0];
const uint b = threadgroup_position_in_grid.x;
if (b >= (uint)batch || nb > NBMAX || nb > na || m < 1 || nb < 1 ||
    nb > (int)threads_per_threadgroup.x) {
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
device float* W = work + base;  // W[c * m + i] = entry (i, c): 32-bit offsets below 2^31
device int* pm = perm + (size_t)b * (size_t)m;
const int total = m * nb;
const device float* panel = A + (size_t)b * (size_t)m * (size_t)na;
for (int e = tid; e < total; e += nthreads) {
  const int i = e / nb;
  const int c = e - i * nb;
  W[c * m + i] = panel[(size_t)i * (size_t)na + (size_t)c];
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
  const float w = la_pivot_score(W[i]);
  if (w > v) {  // rows ascend within a thread: the first of equals stays
    v = w;
    idx = i;
  }
}

constexpr int CHUNK = 4;
for (int j = 0; j < k; ++j) {
  // 1. The pivot: the best of every thread's candidate.
  la_simd_pivot(v, idx);
  if (lane == 0) {
    best_v[warp] = v;
    best_i[warp] = idx;
  }
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
  idx = la_pivot_of_simdgroups(best_v, best_i, nwarps);
  const int p = idx < m ? idx : j;

  // 2. Interchange rows j and p; keep the pivot row (row j of U) in threadgroup memory.
  for (int c = tid; c < nb; c += nthreads) {
    const float top = W[c * m + j];
    const float low = W[c * m + p];
    if (p != j) {
      W[c * m + j] = low;
      W[c * m + p] = top;
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

  // 3. Each row of this thread below j: its multiplier, then its rank-1 update, and the
  // candidates of column j + 1.
  const float pivot = urow[j];
  v = -1.0f;
  idx = m;
  int first = tid;
  while (first <= j) {
    first += nthreads;
  }
  for (int i = first; i < m; i += nthreads) {
    float l = W[j * m + i];
    if (pivot != 0.0f) {
      l = l / pivot;
      W[j * m + i] = l;
    }
    for (int c0 = j + 1; c0 < nb; c0 += CHUNK) {
      float x[CHUNK];
      LA_UNROLL
      for (int r = 0; r < CHUNK; ++r) {
        x[r] = c0 + r < nb ? W[(c0 + r) * m + i] : 0.0f;
      }
      LA_UNROLL
      for (int r = 0; r < CHUNK; ++r) {
        if (c0 + r < nb) {
          x[r] = metal::fma(-l, urow[c0 + r], x[r]);
          W[(c0 + r) * m + i] = x[r];
        }
      }
      if (c0 == j + 1) {  // rows ascend within a thread: the first of equals stays
        const float w = la_pivot_score(x[0]);
        if (w > v) {
          v = w;
          idx = i;
        }
      }
    }
  }
}

// The factors back in row-major order.
threadgroup_barrier(mem_flags::mem_device);
device float* P = LU + base;
for (int e = tid; e < total; e += nthreads) {
  const int i = e / nb;
  P[e] = W[(e - i * nb) * m + i];
}
