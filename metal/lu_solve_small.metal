// @kernel lu_solve_small
// @inputs LU:float32 piv:int32 Bm:float32
// @outputs X:float32 info:int32
// @template NMAX:int TRANS:bool
// @headers linalg_common.h
// @check NMAX=8,TRANS=false NMAX=32,TRANS=true NMAX=32,TRANS=false NMAX=64,TRANS=false NMAX=64,TRANS=true
//
// Solve A X = B (or Aᵀ X = B when TRANS) given the packed LU factorization of A.
//   LU    (B, n, n) float32, 1 <= n <= NMAX <= 64, as lu_small.metal writes it: U on and
//         above the diagonal, unit-lower L's multipliers below.
//   piv   (B, n) int32, 0-based row interchanges (row j swapped with piv[j], in order).
//   Bm    (B, n, K) float32.
//   X     (B, n, K); every entry NaN when U has an exact zero on its diagonal (singular) or
//         a pivot index is outside [0, n).
//   info  (B,) int32: 0; j + 1 for the first zero on U's diagonal; -1 for a bad pivot.
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32. T = 32 suffices
// for any K; up to XW simdgroups share the chunks of 32 right-hand sides.
// Algorithm: LAPACK getrs. Thread 0 turns the interchanges into a gather (n steps in
// threadgroup memory). Lane c of a simdgroup owns right-hand-side column c0 + c (chunks c0
// of 32 columns) in its own column of threadgroup memory (stride 32: no bank conflicts).
// A X = B: x = U⁻¹ L⁻¹ P b with P b gathered on load. Aᵀ X = B: x = P (L⁻ᵀ U⁻ᵀ b) with the
// permutation applied as a gather on store. Substitutions by la_trsv_lane (blocks of 8
// rows in registers, FMAs whose factor every lane reads from the same threadgroup word),
// the triangles read transposed for Aᵀ; loads and stores coalesced.
// Memory traffic: n² + n + n K floats/ints read, n K floats and one int written.

const int batch = LU_shape[0];
const int n = LU_shape[1];
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
threadgroup float tile[NMAX * S];
// Right-hand-side columns live in threadgroup memory, one per lane (x[32 i + lane] = row i):
// XW simdgroups substitute, NMAX * 32 floats each (XW = 1 keeps NMAX = 64 under 32 KB).
constexpr int XW = NMAX > 32 ? 1 : 2;
threadgroup float xs[XW * NMAX * 32];
threadgroup int gather[NMAX];
threadgroup int status[1];

const size_t base = (size_t)b * (size_t)(n * n);
for (int e = tid; e < n * n; e += nthreads) {
  const int r = e / n;
  tile[r * S + (e - r * n)] = LU[base + e];
}
if (tid == 0) {
  // gather[i] = source row of entry i after applying the interchanges in order (A X = B)
  // or in reverse order (Aᵀ X = B, applied to the solution).
  int bad = 0;
  for (int i = 0; i < n; ++i) {
    gather[i] = i;
  }
  for (int t = 0; t < n; ++t) {
    const int j = TRANS ? n - 1 - t : t;
    const int p = piv[(size_t)b * n + j];
    if (p < 0 || p >= n) {
      bad = 1;
    } else {
      const int g = gather[j];
      gather[j] = gather[p];
      gather[p] = g;
    }
  }
  status[0] = bad != 0 ? -1 : 0;
}
threadgroup_barrier(mem_flags::mem_threadgroup);
if (tid == 0 && status[0] == 0) {
  for (int j = 0; j < n; ++j) {
    if (tile[j * S + j] == 0.0f) {
      status[0] = j + 1;
      break;
    }
  }
}
threadgroup_barrier(mem_flags::mem_threadgroup);

const int fail = status[0];
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
          x[i * 32] = Bm[xbase + (size_t)(TRANS ? i : gather[i]) * K + col];
        }
        if (TRANS) {
          la_trsv_lane<true, true, false>(tile, S, n, x);
          la_trsv_lane<false, true, true>(tile, S, n, x);
        } else {
          la_trsv_lane<true, false, true>(tile, S, n, x);
          la_trsv_lane<false, false, false>(tile, S, n, x);
        }
      }
      for (int i = 0; i < n; ++i) {
        const int src = TRANS ? gather[i] : i;
        X[xbase + (size_t)i * K + col] = fail != 0 ? nan_value : x[src * 32];
      }
    }
  }
}
if (tid == 0) {
  info[b] = fail;
}
