// @kernel jacobi_svd
// @inputs A:float32
// @outputs Ut:float32 S:float32 Vt:float32 info:int32
// @template M:int N:int L:int FULL:bool WANT_UV:bool MAX_SWEEPS:int
// @headers linalg_common.h jacobi_common.h
// @check M=8,N=5,L=4,FULL=false,WANT_UV=true,MAX_SWEEPS=30 M=64,N=64,L=8,FULL=true,WANT_UV=true,MAX_SWEEPS=30 M=96,N=32,L=16,FULL=true,WANT_UV=false,MAX_SWEEPS=30
//
// One-sided Jacobi SVD of a stack of small tall matrices, one threadgroup per matrix.
//
// Contract
//   A     (B, M, N) row-major, M >= N >= 1, scaled so that its largest entry lies in
//         [1, 2) (the launcher scales by a power of two and masks non-finite matrices).
//   Ut    (B, UC, M), UC = M if FULL else N: row k is left singular vector k.
//   S     (B, N) singular values, descending, >= 0.
//   Vt    (B, N, N): row k is right singular vector k (Vt = Vᵀ = Vh).
//   info  (B,) sweeps made; negative when MAX_SWEEPS ran out first.
//   A = U diag(S) Vᵀ. When WANT_UV is false Ut and Vt are (1,) and only hold a 0.
//   Threadgroup (T, 1, 1), grid (B·T, 1, 1), T = (NP / 2)·L rounded up to a multiple of
//   32: L lanes (a power of two, 4 <= L <= 32, M <= 8·L) per column pair, NP = N rounded
//   up to even. Limits: M <= 128, N <= 64, (M·N + N·N) floats <= 32 KB, and
//   ceil(N / (T / 32)) <= 16 (true for the launcher's L = clamp(2^ceil(log2(M/8)), 4, 32)).
//
// Algorithm
//   Hestenes' one-sided Jacobi (see jacobi_common.h): rotate column pairs of W = A·V
//   until all are orthogonal; then S_k = |w_k|, U_k = w_k / S_k, V accumulated. Sorting:
//   each column's rank among the norms (count of larger ones), then a permuted,
//   coalesced write. Columns whose norm is numerically zero (below 2^-50 of the largest
//   entry) and, when FULL, columns N..M-1 of U are completed by simdgroup 0: for each
//   one it picks the unit vector e_k whose row k of the current U has the least weight,
//   orthogonalizes it twice against all columns so far (modified Gram-Schmidt) and
//   normalizes; the result is orthonormal to working precision.
//   Traffic: A read once; U, S, V written once (U read back only for the completion).

constexpr int S_ROWS = (M + 31) / 32;
constexpr int UC = FULL ? M : N;
constexpr int VN = WANT_UV ? N * N : 1;

threadgroup float At[M * N];
threadgroup float Vs[VN];

const uint b = threadgroup_position_in_grid.x;
const uint nb = (uint)A_shape[0];
if (b >= nb) {
  return;
}
const uint tid = thread_index_in_threadgroup;
const uint lane = thread_index_in_simdgroup;
const uint sg = simdgroup_index_in_threadgroup;
const uint nsg = simdgroups_per_threadgroup;
const uint nthreads = nsg * 32;

if (!WANT_UV && b == 0 && tid == 0) {
  Ut[0] = 0.0f;
  Vt[0] = 0.0f;
}

// Load, transposing (consecutive threads: consecutive rows of one column).
const device float* a = A + (size_t)b * (M * N);
for (uint t = tid; t < (uint)(M * N); t += nthreads) {
  const uint i = t % M;
  const uint j = t / M;
  At[j * M + i] = a[i * N + j];
}
if (WANT_UV) {
  for (uint t = tid; t < (uint)(N * N); t += nthreads) {
    Vs[t] = (t / N == t % N) ? 1.0f : 0.0f;
  }
}
device int* flag = info + b;
if (tid == 0) {
  *flag = 0;
}
threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);

// Rotation threshold sqrt(M)·eps: above the rounding noise of an M-term dot product.
const float tol = metal::sqrt((float)M) * 1.1920929e-7f;
const int sweeps = la_jacobi_sweeps<M, N, L, WANT_UV>(At, Vs, flag, tol, MAX_SWEEPS, tid);

// Singular values, unsorted, into S (scratch for the ranking). The L-lane segment g
// handles columns g and g + nseg (nseg >= NP / 2, so that is all of them).
const int g = (int)(tid / L);
const int sl = (int)(tid % L);
const int nseg = (int)(nthreads / L);
const float tiny = 8.8817842e-16f;  // 2^-50
device float* s_out = S + (size_t)b * N;
device float* u_out = Ut + (size_t)b * (WANT_UV ? UC * M : 0);
device float* v_out = Vt + (size_t)b * (WANT_UV ? N * N : 0);
for (int h = 0; h < 2; ++h) {
  const int i = g + h * nseg;
  const bool ok = i < N;
  float ss = 0.0f;
  if (ok) {
    for (int row = sl; row < M; row += L) {
      const float x = At[i * M + row];
      ss = metal::fma(x, x, ss);
    }
  }
  ss = la_segment_sum<L>(ss);
  if (ok && sl == 0) {
    s_out[i] = metal::sqrt(ss);
  }
}
threadgroup_barrier(mem_flags::mem_device);
// Ranks (descending) and the permuted writes of U = W / S and V (rows of Ut and Vt).
float sigma[2];
int rank[2];
for (int h = 0; h < 2; ++h) {
  const int i = g + h * nseg;
  const bool ok = i < N;
  sigma[h] = ok ? s_out[i] : 0.0f;
  rank[h] = la_rank<true, L>(s_out, N, sigma[h], i, ok, sl);
  if (WANT_UV && ok) {
    const float inv = sigma[h] > tiny ? 1.0f / sigma[h] : 0.0f;
    for (int row = sl; row < M; row += L) {
      u_out[rank[h] * M + row] = At[i * M + row] * inv;
    }
    for (int row = sl; row < N; row += L) {
      v_out[rank[h] * N + row] = Vs[i * N + row];
    }
  }
}
threadgroup_barrier(mem_flags::mem_device);
for (int h = 0; h < 2; ++h) {
  if (g + h * nseg < N && sl == 0) {
    s_out[rank[h]] = sigma[h];
  }
}

if (WANT_UV) {
  threadgroup_barrier(mem_flags::mem_device);
  if (sg == 0) {
    // Number of numerically nonzero singular values (S is sorted now).
    int good = 0;
    for (int j = (int)lane; j < N; j += 32) {
      good += s_out[j] > tiny ? 1 : 0;
    }
    good = simd_sum(good);
    if (good < UC) {
      float weight[S_ROWS];
      for (int s = 0; s < S_ROWS; ++s) {
        const int row = (int)lane + 32 * s;
        float w = 0.0f;
        for (int c = 0; c < good; ++c) {
          const float u = row < M ? u_out[c * M + row] : 0.0f;
          w = metal::fma(u, u, w);
        }
        weight[s] = row < M ? w : INFINITY;
      }
      for (int j = good; j < UC; ++j) {
        // The row of least weight in the columns so far (lowest index on ties).
        float best = weight[0];
        int best_row = (int)lane;
        for (int s = 1; s < S_ROWS; ++s) {
          if (weight[s] < best) {
            best = weight[s];
            best_row = (int)lane + 32 * s;
          }
        }
        const float least = simd_min(best);
        const int k = simd_min(best == least ? best_row : 1 << 30);
        float x[S_ROWS];
        for (int s = 0; s < S_ROWS; ++s) {
          x[s] = ((int)lane + 32 * s) == k ? 1.0f : 0.0f;
        }
        for (int pass = 0; pass < 2; ++pass) {
          for (int c = 0; c < j; ++c) {
            float d = 0.0f;
            float u[S_ROWS];
            for (int s = 0; s < S_ROWS; ++s) {
              const int row = (int)lane + 32 * s;
              u[s] = row < M ? u_out[c * M + row] : 0.0f;
              d = metal::fma(u[s], x[s], d);
            }
            d = simd_sum(d);
            for (int s = 0; s < S_ROWS; ++s) {
              x[s] = metal::fma(-d, u[s], x[s]);
            }
          }
        }
        float nn = 0.0f;
        for (int s = 0; s < S_ROWS; ++s) {
          nn = metal::fma(x[s], x[s], nn);
        }
        const float inv = 1.0f / metal::sqrt(simd_sum(nn));
        for (int s = 0; s < S_ROWS; ++s) {
          const int row = (int)lane + 32 * s;
          x[s] *= inv;
          if (row < M) {
            u_out[j * M + row] = x[s];
            weight[s] = metal::fma(x[s], x[s], weight[s]);
          }
        }
        simdgroup_barrier(mem_flags::mem_device);
      }
    }
  }
}
if (tid == 0) {
  *flag = sweeps;
}
