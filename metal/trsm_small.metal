// @kernel trsm_small
// @inputs A:float32 Bm:float32
// @outputs X:float32 info:int32
// @template NMAX:int KC:int LOWER:bool TRANS:bool UNIT:bool
// @headers linalg_common.h
// @check NMAX=8,KC=8,LOWER=true,TRANS=false,UNIT=false NMAX=32,KC=32,LOWER=false,TRANS=true,UNIT=true NMAX=64,KC=32,LOWER=true,TRANS=true,UNIT=false
//
// Triangular solve op(A) X = B for a stack of small triangular matrices.
//   A     (B, n, n) float32, 1 <= n <= NMAX <= 64. Only the lower triangle is read when
//         LOWER, else the upper one; with UNIT the diagonal is not read (taken as ones).
//   Bm    (B, n, K) float32, K >= 1.
//   X     (B, n, K): X with op(A) X = B, op(A) = Aᵀ when TRANS, else A. Every entry NaN
//         when a diagonal entry is exactly zero (and not UNIT).
//   info  (B,) int32: 0, or j + 1 for the first zero diagonal entry j.
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32; KC <= 32
// right-hand sides per pass through threadgroup memory.
// Algorithm: substitution (LAPACK trtrs), n² K flops: the triangle is loaded once into
// threadgroup memory; per block of KC columns, one simdgroup per column runs forward
// substitution (op(A) lower) or back substitution (upper) in registers (la_trsv_simd;
// TRANS reads the stored triangle transposed, so Aᵀ is never formed).
// Memory traffic: n(n+1)/2 + n K floats read, n K floats and one int written.

const int batch = A_shape[0];
const int n = A_shape[1];
const int K = Bm_shape[2];
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
constexpr int SR = KC + 1;
constexpr bool FORWARD = LOWER != TRANS;  // op(A) is lower triangular
threadgroup float tile[NMAX * S];
threadgroup float rhs[NMAX * SR];

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
for (int c0 = 0; c0 < K; c0 += KC) {
  const int kc = metal::min(KC, K - c0);
  if (fail == 0) {
    for (int e = tid; e < n * kc; e += nthreads) {
      const int i = e / kc;
      const int c = e - i * kc;
      rhs[i * SR + c] = Bm[xbase + (size_t)i * K + c0 + c];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int c = warp; c < kc; c += nwarps) {
      float x0 = lane < n ? rhs[lane * SR + c] : 0.0f;
      float x1 = lane + 32 < n ? rhs[(lane + 32) * SR + c] : 0.0f;
      la_trsv_simd<FORWARD, TRANS, UNIT>(tile, S, n, x0, x1, (uint)lane);
      if (lane < n) {
        rhs[lane * SR + c] = x0;
      }
      if (lane + 32 < n) {
        rhs[(lane + 32) * SR + c] = x1;
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  for (int e = tid; e < n * kc; e += nthreads) {
    const int i = e / kc;
    const int c = e - i * kc;
    X[xbase + (size_t)i * K + c0 + c] = fail != 0 ? nan_value : rhs[i * SR + c];
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}
if (tid == 0) {
  info[b] = fail;
}
