// @kernel band_to_tridiagonal
// @inputs A:float32
// @outputs d:float32 e:float32 work:float32 reflectors:float32
// @template BAND:int WANT_Q:bool
// @headers linalg_common.h band_chase.h
// @check BAND=2,WANT_Q=false BAND=8,WANT_Q=true BAND=32,WANT_Q=false BAND=32,WANT_Q=true
//
// Stage 2 of the two-stage tridiagonal reduction: a symmetric band matrix to tridiagonal
// form by Householder bulge chasing (the sweeps of Haidar, Ltaief & Dongarra, SC11, and
// PLASMA/MAGMA's sb2st; LAPACK's ssbtrd chases with Givens rotations instead), keeping
// its reflectors when WANT_Q (for the eigenvectors: apply_band_reflectors.metal).
//   A     (B, n, n) float32, n >= 1: symmetric with half-bandwidth BAND; its lower band
//         (A[i + k, i], 0 <= k <= BAND) is read, nothing else.
//   d     (B, n): the tridiagonal matrix's diagonal.
//   e     (B, n): its subdiagonal in e[0 .. n-2]; e[n-1] = 0. Signs are those of the
//         reflectors' betas (the eigenvalues do not depend on them).
//   work  (B, n, 3 BAND + 1): the band while it is chased (column c holds A[c + k, c] for
//         k < 2 BAND: the bulges reach 2 BAND - 1 below the diagonal), then sweep c's
//         reflector (BAND entries) and its tau.
//   reflectors  WANT_Q: (B, S, K, BAND + 1) with S = max(n - 2, 1) sweeps and K = max(1,
//         1 + (n - 3) / BAND) ticks (sweep 0's, the most): [b, s, k] = the reflector H
//         = I - tau v vᵀ that tick k of sweep s applied, v (v[0] = 1, zeros past its
//         length) then tau, acting on rows s + 1 + k BAND ..; zeros (H = I) for ticks a
//         sweep does not have. Then T = Qᵀ A Q with Q = H[0,0] H[0,1] ⋯ H[1,0] ⋯ (sweeps
//         in order, each sweep's ticks in order). Otherwise (B, 1), written 0.
// Launch: grid (B 32 W, 1, 1), threadgroup (32 W, 1, 1): one threadgroup per matrix, each
// sweep one simdgroup at a time, W simdgroups chasing different sweeps at once.
//
// Sweep s (s = 0 .. n-3) takes column s to tridiagonal: its tick 0 annihilates A[s+2 ..
// s+BAND, s] with a reflector H applied to both sides of the diagonal block D = A[st .. ed,
// st .. ed] (st = s + 1, ed = min(st + BAND - 1, n - 1)) and from the right to the block
// below it, B = A[ed + 1 .. ed + BAND, st .. ed], which fills in (the bulge); a new
// reflector annihilates B's first column below its first row and is applied to the rest of
// B from the left; tick k repeats this one block further down (st = s + 1 + k BAND) with
// that reflector, until the block below leaves the matrix: 1 + (n - 3 - s) / BAND ticks.
// B's other columns keep part of the bulge; sweep s + 1 removes it, one column further on.
// Sweep s + 1's tick k touches rows and columns st - 1 .. st + 2 BAND - 2 of sweep s's
// tick k - 2 at most, so a sweep running 3 ticks behind the one before it never touches
// what that one touches at the same time: global tick t runs tick t - 3 s of every sweep
// s, all of them at once, and one threadgroup barrier separates the ticks. About 6 BAND²
// flops per tick of a sweep; 3 n ticks in all.
//
// A lane loads its row of D, then its row of B, from the work buffer into registers (all
// of a row's loads in flight at once), updates them there and writes them back; it holds
// one entry of each reflector, so BAND <= 32. B's column sums v2ᵀ B are a butterfly over
// the simdgroup's lanes (la_butterfly_sum). The simdgroup's reflector and q are also in
// threadgroup memory, where every lane reads them; simdgroup barriers separate the phases.
// nvcc (sm_90) gives it 96 (WANT_Q) and 128 registers per thread, so at most 512 threads
// a threadgroup on an H100. The first version streamed every entry from memory in each
// phase (48 registers): 4.8 to 5.2 times slower on the H100 (n = 1024: 58 against 12 ms,
// 4096: 809 against 157).

constexpr int WIDTH = 2 * BAND;       // stored subdiagonals of the band and its bulges
constexpr int STRIDE = 3 * BAND + 1;  // work's entries per column
// A lane's entries of a row: BAND, rounded up to a power of two for the butterfly.
constexpr int SPAN = BAND <= 2 ? 2 : BAND <= 4 ? 4 : BAND <= 8 ? 8 : BAND <= 16 ? 16 : 32;
const int n = A_shape[1];
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int warps = (int)simdgroups_per_threadgroup;
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const size_t m = (size_t)threadgroup_position_in_grid.x;
threadgroup float shared[32 * 2 * 32];  // per simdgroup: the reflector v, then q
LA_TG float* vs = shared + warp * 64;
LA_TG float* qs = vs + 32;
if (m < (size_t)A_shape[0]) {
  const device float* a = A + m * (size_t)n * (size_t)n;
  device float* w = work + m * (size_t)n * (size_t)STRIDE;
  for (int i = tid; i < n * STRIDE; i += nthreads) {
    const int c = i / STRIDE;
    const int k = i - c * STRIDE;
    w[i] = (k <= BAND && c + k < n) ? a[(size_t)(c + k) * (size_t)n + (size_t)c] : 0.0f;
  }
  const int sweeps = n - 2;
  const int first_ticks = sweeps > 0 ? 1 + (n - 3) / BAND : 0;  // sweep 0's, the most
  const size_t slots = WANT_Q ? (size_t)metal::max(sweeps, 1) * (size_t)metal::max(first_ticks, 1) : 1;
  device float* kept = reflectors + m * slots * (WANT_Q ? BAND + 1 : 1);
  for (size_t i = (size_t)tid; i < slots * (WANT_Q ? BAND + 1 : 1); i += (size_t)nthreads) {
    kept[i] = 0.0f;
  }
  threadgroup_barrier(mem_flags::mem_device);

  const int total = sweeps > 0 ? 3 * sweeps - 2 : 0;  // the last sweep's one tick is last
  for (int t = 0; t < total; ++t) {
    const int s_last = metal::min(sweeps - 1, t / 3);
    const int s_first = metal::max(0, t - first_ticks + 3) / 3;
    for (int s = s_first + warp; s <= s_last; s += warps) {
      const int k = t - 3 * s;
      if (k >= 1 + (n - 3 - s) / BAND) {
        continue;  // sweep s has ended (uniform over the simdgroup)
      }
      const int st = s + 1 + k * BAND;
      const int ed = metal::min(st + BAND - 1, n - 1);
      const int len = ed - st + 1;
      device float* reflector = w + (size_t)s * STRIDE + WIDTH;
      float v;
      float tau;
      if (k == 0) {
        device float* column = w + (size_t)s * STRIDE + 1;  // A[st + i, s]
        const float x = lane < len ? column[lane] : 0.0f;
        const float beta = la_simd_householder(x, (uint)lane, v, tau);
        if (lane < len) {
          column[lane] = lane == 0 ? beta : 0.0f;
        }
      } else {
        v = lane < len ? reflector[lane] : 0.0f;
        tau = reflector[BAND];
      }
      if (WANT_Q) {
        device float* slot = kept + ((size_t)s * first_ticks + k) * (BAND + 1);
        if (lane < BAND) {
          slot[lane] = v;
        }
        if (lane == 0) {
          slot[BAND] = tau;
        }
      }
      simdgroup_barrier(mem_flags::mem_threadgroup);  // the last step's reads of vs, qs
      vs[lane] = v;
      simdgroup_barrier(mem_flags::mem_threadgroup);
      // D <- H D H with H = I - tau v vᵀ: p = tau D v, q = p - (tau/2)(pᵀv) v,
      // D - v qᵀ - q vᵀ (LAPACK ssytd2's symmetric rank-2 form). Lane i holds row i of D
      // (below the diagonal from the columns before its own, the rest from its own).
      // Row i's entry j sits at below[j (STRIDE - 1)] for j <= i, at above[j] after.
      device float* below = w + (size_t)st * STRIDE + lane;
      const device float* above = w + (size_t)(st + lane) * STRIDE - lane;
      float row[SPAN];
      LA_UNROLL
      for (int j = 0; j < SPAN; ++j) {
        const device float* at = j <= lane ? below + j * (STRIDE - 1) : above + j;
        row[j] = (lane < len && j < len) ? *at : 0.0f;
      }
      float p = 0.0f;
      LA_UNROLL
      for (int j = 0; j < SPAN; ++j) {
        p += row[j] * vs[j];
      }
      p *= tau;
      const float q = p - 0.5f * tau * simd_sum(p * v) * v;
      qs[lane] = q;
      simdgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);
      LA_UNROLL
      for (int j = 0; j < SPAN; ++j) {
        if (j <= lane && lane < len) {
          below[j * (STRIDE - 1)] = row[j] - v * qs[j] - q * vs[j];
        }
      }
      const int st2 = ed + 1;
      const int len2 = metal::min(BAND, n - st2);
      if (len2 >= 1) {
        // B <- B H, B = A[st2 .., st ..] (entry (i, j) is column st + j's subdiagonal
        // st2 - st + i - j, apart from D's): lane i holds row i, y = B v, B - tau y vᵀ.
        device float* b = w + (size_t)st * STRIDE + (st2 - st);  // B(i, j) = b[j (STRIDE - 1) + i]
        float brow[SPAN];
        LA_UNROLL
        for (int j = 0; j < SPAN; ++j) {
          brow[j] = (lane < len2 && j < len) ? b[j * (STRIDE - 1) + lane] : 0.0f;
        }
        float y = 0.0f;
        LA_UNROLL
        for (int j = 0; j < SPAN; ++j) {
          y += brow[j] * vs[j];
        }
        LA_UNROLL
        for (int j = 0; j < SPAN; ++j) {
          brow[j] -= tau * y * vs[j];
        }
        if (len2 >= 2) {
          // The reflector of B's first column, then B[:, 1:] <- (I - tau2 v2 v2ᵀ) B[:, 1:]:
          // z_j = v2ᵀ B(:, j), summed over the lanes by a butterfly that leaves z_j on
          // lane j (SPAN - 1 shuffles), then B(:, j) - tau2 z_j v2.
          float v2;
          float tau2;
          const float beta2 = la_simd_householder(brow[0], (uint)lane, v2, tau2);
          brow[0] = lane == 0 ? beta2 : 0.0f;
          float z[SPAN];
          LA_UNROLL
          for (int j = 0; j < SPAN; ++j) {
            z[j] = v2 * brow[j];
          }
          la_butterfly_sum<SPAN, 16>(z, lane);
          la_butterfly_sum<SPAN, 8>(z, lane);
          la_butterfly_sum<SPAN, 4>(z, lane);
          la_butterfly_sum<SPAN, 2>(z, lane);
          la_butterfly_sum<SPAN, 1>(z, lane);
          simdgroup_barrier(mem_flags::mem_threadgroup);  // the D update's reads of qs
          qs[lane] = z[0];  // z_(lane mod SPAN)
          simdgroup_barrier(mem_flags::mem_threadgroup);
          LA_UNROLL
          for (int j = 1; j < SPAN; ++j) {
            brow[j] -= tau2 * qs[j] * v2;
          }
          if (lane < BAND) {
            reflector[lane] = v2;
          }
          if (lane == 0) {
            reflector[BAND] = tau2;
          }
        }
        LA_UNROLL
        for (int j = 0; j < SPAN; ++j) {
          if (lane < len2 && j < len) {
            b[j * (STRIDE - 1) + lane] = brow[j];
          }
        }
      }
    }
    threadgroup_barrier(mem_flags::mem_device);
  }
  for (int i = tid; i < n; i += nthreads) {
    d[m * (size_t)n + (size_t)i] = w[(size_t)i * STRIDE];
    e[m * (size_t)n + (size_t)i] = i + 1 < n ? w[(size_t)i * STRIDE + 1] : 0.0f;
  }
}
