// @kernel qr_panel
// @inputs A:float32
// @outputs QR:float32 tau:float32
// @template NBMAX:int
// @check NBMAX=64 NBMAX=128 NBMAX=256
//
// Householder QR (LAPACK geqr2) of a stack of tall panels, one threadgroup per panel, the
// panel in device memory (M x NB floats exceed threadgroup memory for tall panels).
//   A     (B, M, NB) float32, M >= 1, 1 <= NB <= NBMAX (NBMAX = 64, 128 or 256).
//   QR    (B, M, NB): R on and above the diagonal, the Householder vectors' tails below
//         it (unit leading entries implied), LAPACK's packed form.
//   tau   (B, NB): H_j = I - tau_j v_j v_jᵀ, v_j[j] = 1, A = H_0 H_1 ... H_{k-1} R,
//         k = min(M, NB); tau_j = 0 (H_j = I) where the part below the diagonal is zero,
//         and for j >= k.
// Reflectors as qr_small.metal and LAPACK slarfg: beta = -sign(alpha) ‖(alpha, x)‖, the
// norm scaled by big = max(max|x|, |alpha|) (so squares of tiny entries neither underflow
// nor overflow), tau = (beta - alpha) / beta, v = x / (alpha - beta) (as x · (1/(alpha -
// beta))). NaN and Inf entries propagate within their own panel (a NaN below the diagonal
// makes the reflector NaN, never an identity).
// Launch: grid (B * T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32 with T >= NBMAX
// (256-1024): panel b = threadgroup_position_in_grid.x.
// Algorithm: geqr2 (Golub & Van Loan 4th ed. Alg. 5.2.1; LAPACK sgeqr2, slarfg, slarf),
// 2 M NB² - 2 NB³/3 flops. Per column j, three passes over the panel and four barriers:
//   1. the scaled sum of squares of the tail (rows j+1..), a threadgroup reduction
//      (per-thread strided partials, simd_sum, one entry per simdgroup in threadgroup
//      memory, every thread sums those in order: all agree); the same pass scales the
//      previous column's tail into its reflector (deferred from that column, below);
//   2. every thread forms beta, tau and scale = 1/(alpha - beta); thread 0 writes beta and
//      tau; w = tau vᵀ A[j:, j+1:] by G = T / width groups of threads, thread (g, c) summing
//      rows j+g, j+g+G, ... of column c (consecutive threads read consecutive columns),
//      partials in threadgroup memory reduced in order; two barriers;
//   3. A[j:, j+1:] -= v wᵀ by the threads of step 2, thread (g, c) updating column c of
//      rows j+g, j+g+G, ...; the threads of column j+1 also take the max|.| of its new
//      entries below row j+1, the next column's scale (reduced like the sums); barrier.
// v's tail (rows j+1..) is P[i][j] * scale wherever it is read in column j's passes, and is
// written into the panel in column j+1's first pass (after the last loop, by one more pass):
// the same products as scaling first and reading back, so results are bitwise those of the
// five-pass form (max, sum of squares, scaling, w, update; six barriers), which took 1.0 ms
// per 4096 x 32 panel on an H100, most of it in the update's per-entry 64-bit index
// division (the update then ran over the entries in row-major order).
// Memory traffic: M NB floats read from A; per column the trailing block is read twice and
// written once (mostly cached), the column j once more; tau written once.

const int batch = A_shape[0];
const int m = A_shape[1];
const int nb = A_shape[2];
const uint b = threadgroup_position_in_grid.x;
const int nthreads = (int)threads_per_threadgroup.x;
if (b >= (uint)batch || nb > NBMAX || m < 1 || nb < 1 || nthreads < NBMAX) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int nwarps = nthreads / 32;
const int k = metal::min(m, nb);
threadgroup float part_max[32];
threadgroup float part_sum[32];
threadgroup float part_w[1024];
threadgroup float wv[NBMAX];

const size_t base = (size_t)b * (size_t)m * (size_t)nb;
device float* P = QR + base;
const size_t total = (size_t)m * (size_t)nb;
for (size_t e = (size_t)tid; e < total; e += (size_t)nthreads) {
  P[e] = A[base + e];
}
for (int j = tid; j < nb; j += nthreads) {
  if (j >= k) {
    tau[(size_t)b * nb + j] = 0.0f;
  }
}

// max|x| of column 0's tail, read from A (the copy above is not yet ordered). A NaN entry
// counts as INFINITY in the max (every comparison then involves numbers only, so all
// threads agree, and the reflector becomes NaN instead of an identity: the NaN reaches tau
// and R).
float amax = 0.0f;
for (int i = 1 + tid; i < m; i += nthreads) {
  float w = metal::abs(A[base + (size_t)i * nb]);
  w = w >= 0.0f ? w : INFINITY;
  amax = w > amax ? w : amax;
}
amax = simd_max(amax);
if (lane == 0) {
  part_max[warp] = amax;
}
threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);

bool prev_scaled = false;  // column j - 1's tail still to be multiplied by prev_scale
float prev_scale = 1.0f;
for (int j = 0; j < k; ++j) {
  // 1. The scaled sum of squares of the tail; column j - 1's tail scaled into v.
  const float alpha = P[(size_t)j * nb + j];
  float xmax = part_max[0];
  for (int w = 1; w < nwarps; ++w) {
    xmax = part_max[w] > xmax ? part_max[w] : xmax;
  }
  const float big = metal::max(xmax, metal::abs(alpha));
  float sq = 0.0f;
  for (int i = j + 1 + tid; i < m; i += nthreads) {
    if (xmax > 0.0f) {
      const float y = P[(size_t)i * nb + j] / big;
      sq = metal::fma(y, y, sq);
    }
    if (prev_scaled) {
      P[(size_t)i * nb + j - 1] = P[(size_t)i * nb + j - 1] * prev_scale;
    }
  }
  if (prev_scaled && tid == 0) {
    P[(size_t)j * nb + j - 1] = P[(size_t)j * nb + j - 1] * prev_scale;
  }
  sq = simd_sum(sq);
  if (lane == 0) {
    part_sum[warp] = sq;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float xnorm2 = 0.0f;
  for (int w = 0; w < nwarps; ++w) {
    xnorm2 += part_sum[w];
  }

  // 2. The reflector (every thread), beta on the diagonal (every thread has read alpha),
  // and w = tau vᵀ A[j:, j+1:] (v_j = 1).
  float t_j = 0.0f;
  float beta = alpha;
  float scale = 1.0f;
  const bool scaled = xmax > 0.0f;
  if (scaled) {
    const float a_s = alpha / big;
    const float r = big * metal::sqrt(metal::fma(a_s, a_s, xnorm2));
    beta = alpha >= 0.0f ? -r : r;
    t_j = (beta - alpha) / beta;
    scale = 1.0f / (alpha - beta);
  }
  if (tid == 0) {
    P[(size_t)j * nb + j] = beta;
    tau[(size_t)b * nb + j] = t_j;
  }
  const int width = nb - j - 1;
  amax = 0.0f;
  if (width > 0) {
    const int groups = nthreads / width;  // >= 1: width < NBMAX <= nthreads
    const int g = tid / width;
    const int c = j + 1 + (tid - g * width);
    if (g < groups) {
      float acc = 0.0f;
      for (int i = j + g; i < m; i += groups) {
        // v from the unscaled tail; v_j = 1 is never read (thread 0 writes beta there).
        const float vi = i == j ? 1.0f : P[(size_t)i * nb + j] * (scaled ? scale : 1.0f);
        acc = metal::fma(vi, P[(size_t)i * nb + c], acc);
      }
      part_w[tid] = acc;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid < width) {
      float s = 0.0f;
      for (int q = 0; q < groups; ++q) {
        s += part_w[q * width + tid];
      }
      wv[tid] = t_j * s;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // 3. A[j:, j+1:] -= v wᵀ by the same threads as w: thread (g, c) updates column c of
    // rows j+g, j+g+G, ... (no index division per entry), and the threads of column j + 1
    // take the max|.| of its new tail (rows j+2..).
    if (g < groups) {
      const float wc = wv[c - j - 1];
      for (int i = j + g; i < m; i += groups) {
        const float vi = i == j ? 1.0f : P[(size_t)i * nb + j] * (scaled ? scale : 1.0f);
        const size_t at = (size_t)i * nb + c;
        const float updated = metal::fma(-vi, wc, P[at]);
        P[at] = updated;
        if (c == j + 1 && i >= j + 2) {
          float w = metal::abs(updated);
          w = w >= 0.0f ? w : INFINITY;
          amax = w > amax ? w : amax;
        }
      }
    }
  }
  amax = simd_max(amax);
  if (lane == 0) {
    part_max[warp] = amax;
  }
  threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
  prev_scaled = scaled;
  prev_scale = scale;
}
// The last reflector's tail (rows k..).
if (prev_scaled) {
  for (int i = k + tid; i < m; i += nthreads) {
    P[(size_t)i * nb + k - 1] = P[(size_t)i * nb + k - 1] * prev_scale;
  }
}
