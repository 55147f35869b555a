// @kernel qr_small
// @inputs A:float32
// @outputs Qt:float32 R:float32
// @template M:int N:int COMPLETE:bool
// @check M=8,N=5,COMPLETE=false M=64,N=64,COMPLETE=true M=128,N=32,COMPLETE=false
//
// Householder QR of a stack of small matrices, one threadgroup per matrix.
//
// Contract
//   A   (B, R, N) row-major, finite (the launcher masks non-finite matrices afterwards):
//       L = ⌈R / M⌉ matrices of M rows each, rows l·M ... l·M + M - 1 of A[b] for matrix
//       b·L + l, rows past R read as zeros (a TSQR panel's leaves, or a tree level's
//       stacked R factors, without a padded copy); R = M: the B matrices themselves.
//   Qt  (B·L, QC, M): row c is column c of Q, QC = M if COMPLETE else K = min(M, N).
//   R   (B·L, RR, N) row-major upper triangular, RR = M if COMPLETE else K; exact zeros
//       below the diagonal.
//   A = Q R with Q = H_0 H_1 ... H_{K-1}, H_k = I - tau_k v_k v_kᵀ, v_k[k] = 1 and
//   v_k[i] = 0 for i < k (LAPACK sgeqrf/slarfg conventions: R[k][k] = -sign(a_kk)·‖x‖,
//   tau_k = 0 when the part below the diagonal is already zero).
//   Grid (B·L·32·G, 1, 1), threadgroup (32·G, 1, 1), G simdgroups (1 <= G <= 32).
//   Limits: M <= 128 (4 rows per lane), M·N + N floats of threadgroup memory <= 32 KB.
//
// Work split
//   The matrix lives column-major in threadgroup memory (column j contiguous: lane l of a
//   simdgroup touches rows l, l+32, ...: no bank conflicts). Column j belongs to
//   simdgroup j mod G for the whole factorization. Step k: each simdgroup applies H_k to
//   its columns j > k (one simd_sum for vᵀa_j, one fma per row); the owner of column k+1
//   then immediately forms reflector k+1 from the registers it just updated (look-ahead),
//   so each step costs one threadgroup barrier. Q is accumulated backwards,
//   Q e_c = H_0 (H_1 (... H_c e_c)), each column in the registers of its simdgroup with no
//   barrier at all (the reflectors are read-only by then), and written once, coalesced.
//   Traffic: A read once from device memory, Q and R written once.

constexpr int K = M < N ? M : N;
constexpr int S = (M + 31) / 32;
constexpr int QC = COMPLETE ? M : K;
constexpr int RR = COMPLETE ? M : K;

threadgroup float At[M * N];
threadgroup float tau[N];

const uint b = threadgroup_position_in_grid.x;
const uint rows = (uint)A_shape[1];
const uint leaves = (rows + M - 1) / M;
if (b >= (uint)A_shape[0] * leaves) {
  return;
}
const uint tid = thread_index_in_threadgroup;
const uint lane = thread_index_in_simdgroup;
const uint sg = simdgroup_index_in_threadgroup;
const uint nsg = simdgroups_per_threadgroup;
const uint nthreads = nsg * 32;

// Load, transposing: consecutive threads take consecutive rows of one column, so the
// threadgroup stores are contiguous; the strided device loads hit the same cache lines.
const uint first = (b % leaves) * M;  // this matrix's first row in A[b / L]
const device float* a = A + ((size_t)(b / leaves) * rows + first) * N;
for (uint t = tid; t < (uint)(M * N); t += nthreads) {
  const uint i = t % M;
  const uint j = t / M;
  At[j * M + i] = first + i < rows ? a[i * N + j] : 0.0f;
}
threadgroup_barrier(mem_flags::mem_threadgroup);

// Reflector 0, formed by the owner of column 0 (simdgroup 0).
if (sg == 0) {
  float x[S];
  for (int s = 0; s < S; ++s) {
    const int row = (int)lane + 32 * s;
    x[s] = row < M ? At[row] : 0.0f;
  }
  float alpha_part = 0.0f;
  float below_max = 0.0f;
  for (int s = 0; s < S; ++s) {
    const int row = (int)lane + 32 * s;
    alpha_part += row == 0 ? x[s] : 0.0f;
    below_max = metal::max(below_max, (row > 0 && row < M) ? metal::abs(x[s]) : 0.0f);
  }
  const float alpha = simd_sum(alpha_part);
  const float xmax = simd_max(below_max);
  // ‖(alpha, x)‖ scaled by its largest entry (as LAPACK's snrm2/slapy2), so that squares of
  // tiny entries do not underflow: an underflowed sum gives a reflector that is not orthogonal.
  const float big = metal::max(xmax, metal::abs(alpha));
  float below = 0.0f;
  for (int s = 0; s < S; ++s) {
    const int row = (int)lane + 32 * s;
    const float y = (row > 0 && row < M && xmax > 0.0f) ? x[s] / big : 0.0f;
    below = metal::fma(y, y, below);
  }
  const float xnorm2 = simd_sum(below);
  float t_k = 0.0f;
  float beta = alpha;
  float scale = 1.0f;
  if (xmax > 0.0f) {
    const float a_s = alpha / big;
    const float r = big * metal::sqrt(metal::fma(a_s, a_s, xnorm2));
    beta = alpha >= 0.0f ? -r : r;
    t_k = (beta - alpha) / beta;
    scale = 1.0f / (alpha - beta);
  }
  for (int s = 0; s < S; ++s) {
    const int row = (int)lane + 32 * s;
    if (row == 0) {
      At[0] = beta;
    } else if (row < M) {
      At[row] = x[s] * scale;
    }
  }
  if (lane == 0) {
    tau[0] = t_k;
  }
}
threadgroup_barrier(mem_flags::mem_threadgroup);

for (int k = 0; k < K; ++k) {
  const float t_k = tau[k];
  float v[S];
  for (int s = 0; s < S; ++s) {
    const int row = (int)lane + 32 * s;
    v[s] = row == k ? 1.0f : ((row > k && row < M) ? At[k * M + row] : 0.0f);
  }
  for (int j = (int)sg; j < N; j += (int)nsg) {
    if (j <= k) {
      continue;
    }
    float x[S];
    float dot = 0.0f;
    for (int s = 0; s < S; ++s) {
      const int row = (int)lane + 32 * s;
      x[s] = row < M ? At[j * M + row] : 0.0f;
      dot = metal::fma(v[s], x[s], dot);
    }
    const float w = t_k * simd_sum(dot);
    for (int s = 0; s < S; ++s) {
      const int row = (int)lane + 32 * s;
      x[s] = metal::fma(-v[s], w, x[s]);
      if (row >= k && row < M) {
        At[j * M + row] = x[s];
      }
    }
    if (j == k + 1 && j < K) {
      // Look-ahead: reflector j from the column just updated (still in registers).
      float alpha_part = 0.0f;
      float below_max = 0.0f;
      for (int s = 0; s < S; ++s) {
        const int row = (int)lane + 32 * s;
        alpha_part += row == j ? x[s] : 0.0f;
        below_max = metal::max(below_max, (row > j && row < M) ? metal::abs(x[s]) : 0.0f);
      }
      const float alpha = simd_sum(alpha_part);
      const float xmax = simd_max(below_max);
      const float big = metal::max(xmax, metal::abs(alpha));  // scaled norm, as above
      float below = 0.0f;
      for (int s = 0; s < S; ++s) {
        const int row = (int)lane + 32 * s;
        const float y = (row > j && row < M && xmax > 0.0f) ? x[s] / big : 0.0f;
        below = metal::fma(y, y, below);
      }
      const float xnorm2 = simd_sum(below);
      float t_j = 0.0f;
      float beta = alpha;
      float scale = 1.0f;
      if (xmax > 0.0f) {
        const float a_s = alpha / big;
        const float r = big * metal::sqrt(metal::fma(a_s, a_s, xnorm2));
        beta = alpha >= 0.0f ? -r : r;
        t_j = (beta - alpha) / beta;
        scale = 1.0f / (alpha - beta);
      }
      for (int s = 0; s < S; ++s) {
        const int row = (int)lane + 32 * s;
        if (row == j) {
          At[j * M + row] = beta;
        } else if (row > j && row < M) {
          At[j * M + row] = x[s] * scale;
        }
      }
      if (lane == 0) {
        tau[j] = t_j;
      }
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}

// R: the upper triangle of the first RR rows, zeros below the diagonal.
device float* r_out = R + (size_t)b * (RR * N);
for (uint t = tid; t < (uint)(RR * N); t += nthreads) {
  const uint i = t / N;
  const uint j = t % N;
  r_out[t] = (i <= j && (int)i < K) ? At[j * M + i] : 0.0f;
}

// Q, one column per simdgroup at a time, backward accumulation in registers.
device float* q_out = Qt + (size_t)b * (QC * M);
for (int c = (int)sg; c < QC; c += (int)nsg) {
  float q[S];
  for (int s = 0; s < S; ++s) {
    q[s] = ((int)lane + 32 * s) == c ? 1.0f : 0.0f;
  }
  const int last = c < K - 1 ? c : K - 1;
  for (int k = last; k >= 0; --k) {
    float v[S];
    float dot = 0.0f;
    for (int s = 0; s < S; ++s) {
      const int row = (int)lane + 32 * s;
      v[s] = row == k ? 1.0f : ((row > k && row < M) ? At[k * M + row] : 0.0f);
      dot = metal::fma(v[s], q[s], dot);
    }
    const float w = tau[k] * simd_sum(dot);
    for (int s = 0; s < S; ++s) {
      q[s] = metal::fma(-v[s], w, q[s]);
    }
  }
  for (int s = 0; s < S; ++s) {
    const int row = (int)lane + 32 * s;
    if (row < M) {
      q_out[c * M + row] = q[s];
    }
  }
}
