// @kernel trsm_small
// @inputs A:float32 Bm:float32
// @outputs X:float32 info:int32
// @template NMAX:int LOWER:bool TRANS:bool UNIT:bool ROWS:bool
// @headers linalg_common.h
// @check NMAX=8,LOWER=true,TRANS=false,UNIT=false,ROWS=false NMAX=32,LOWER=false,TRANS=true,UNIT=true,ROWS=false NMAX=32,LOWER=true,TRANS=false,UNIT=false,ROWS=false NMAX=64,LOWER=true,TRANS=true,UNIT=false,ROWS=false NMAX=64,LOWER=false,TRANS=false,UNIT=false,ROWS=false NMAX=64,LOWER=true,TRANS=false,UNIT=false,ROWS=true
//
// Triangular solve op(A) X = B for a stack of small triangular matrices.
//   A     (B, n, n) float32, 1 <= n <= NMAX <= 64. Only the lower triangle is read when
//         LOWER, else the upper one; with UNIT the diagonal is not read (taken as ones).
//   Bm    (B, n, K) float32, K >= 1; with ROWS (B, K, n): the right-hand sides are its rows.
//   X     (B, n, K): X with op(A) X = B, op(A) = Aᵀ when TRANS, else A. With ROWS (B, K, n):
//         X op(A)ᵀ = Bm, i.e. each row solved as a column. Every entry NaN when a diagonal
//         entry is exactly zero (and not UNIT).
//   info  (B,) int32: 0, or j + 1 for the first zero diagonal entry j.
// Launch: grid (B * ceil(K / TASK) * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32:
// threadgroup g solves right-hand sides [TASK t, TASK (t + 1)) of matrix g / tasks,
// t = g mod tasks (tasks = ceil(K / TASK)), so a wide B fills the GPU without being split
// into a batch of copies; each task loads the triangle itself. T = 32 suffices; up to
// XW = 2 simdgroups share the task's chunks of 32 right-hand sides.
// Algorithm: substitution (LAPACK trtrs), n² K flops: the triangle is loaded once into
// threadgroup memory; lane c of a simdgroup owns column c0 + c (chunks c0 of 32 columns)
// in its own column of threadgroup memory (stride 32: no bank conflicts): a coalesced
// load (ROWS: each lane reads its own row), forward substitution (op(A) lower) or back
// substitution (upper) by la_trsv_lane (blocks of 8 rows in registers, FMAs whose factor
// every lane reads from the same threadgroup word; TRANS reads the stored triangle
// transposed, so Aᵀ is never formed), and a store in the input's layout. Each column is
// solved on its own, so the results do not depend on the task split.
// Memory traffic: n(n+1)/2 per task + n K floats read, n K floats and one int written.

constexpr int TASK = 64;
const int batch = A_shape[0];
const int n = A_shape[1];
const int K = ROWS ? Bm_shape[1] : Bm_shape[2];
const int tasks = (K + TASK - 1) / TASK;
const uint group = threadgroup_position_in_grid.x;
const uint b = group / (uint)tasks;
const int task = (int)(group - b * (uint)tasks);
if (b >= (uint)batch || n > NMAX) {
  return;
}
const int col_first = TASK * task;
const int col_last = metal::min(K, col_first + TASK);
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int nwarps = nthreads / 32;
// Row stride NMAX: the substitution reads the triangle by broadcasts and the diagonal check
// with stride NMAX + 1, so no padding is needed, and NMAX = 64 fits two substituting
// simdgroups in 32 KB.
constexpr int S = NMAX;
constexpr bool FORWARD = LOWER != TRANS;  // op(A) is lower triangular
threadgroup float tile[NMAX * S];
// Right-hand-side columns live in threadgroup memory, one per lane (x[32 i + lane] = row i):
// XW simdgroups substitute, NMAX * 32 floats each.
constexpr int XW = 2;
threadgroup float xs[XW * NMAX * 32];

const size_t base = (size_t)b * (size_t)(n * n);
for (int e = tid; e < n * n; e += nthreads) {
  const int r = e / n;
  const int c = e - r * n;
  if (LOWER ? c <= r : c >= r) {
    tile[r * S + c] = A[base + e];
  }
}
threadgroup_barrier(mem_flags::mem_threadgroup);

// Every simdgroup finds the first zero on the diagonal itself: no extra barrier.
int fail = 0;
if (!UNIT) {
  const int d0 = lane < n && tile[lane * S + lane] == 0.0f ? lane + 1 : n + 1;
  const int d1 = lane + 32 < n && tile[(lane + 32) * S + lane + 32] == 0.0f ? lane + 33 : n + 1;
  const int first = simd_min(metal::min(d0, d1));
  fail = first <= n ? first : 0;
}

const float nan_value = la_nan();
const size_t xbase = (size_t)b * (size_t)n * (size_t)K;
const int nsub = metal::min(nwarps, XW);
// No SIMD-group call follows: lanes past column K simply skip their work.
if (warp < nsub) {
  LA_TG float* x = xs + warp * (NMAX * 32) + lane;
  for (int c0 = col_first + 32 * warp; c0 < col_last; c0 += 32 * nsub) {
    const int col = c0 + lane;
    if (col < col_last) {
      if (fail == 0) {
        for (int i = 0; i < n; ++i) {
          x[i * 32] = Bm[xbase + (ROWS ? (size_t)col * n + i : (size_t)i * K + col)];
        }
        la_trsv_lane<FORWARD, TRANS, UNIT>(tile, S, n, x);
      }
      for (int i = 0; i < n; ++i) {
        X[xbase + (ROWS ? (size_t)col * n + i : (size_t)i * K + col)] =
            fail != 0 ? nan_value : x[i * 32];
      }
    }
  }
}
if (tid == 0 && task == 0) {
  info[b] = fail;
}
