// @kernel apply_band_reflectors
// @inputs reflectors:float32 Z:float32
// @outputs Y:float32
// @template BAND:int NMAX:int
// @headers linalg_common.h
// @check BAND=8,NMAX=1024 BAND=32,NMAX=1024 BAND=32,NMAX=4096
//
// The back-transformation of stage 2 (band_to_tridiagonal.metal with WANT_Q): Q Z for the
// Q = H[0,0] H[0,1] ⋯ H[1,0] ⋯ whose reflectors that kernel kept, given and returned by
// rows (Zᵀ and (Q Z)ᵀ), so that each vector is contiguous.
//   reflectors  (B, S, K, BAND + 1): [b, s, k] = v (BAND entries, v[0] = 1) then tau of the
//         reflector of sweep s, tick k, acting on rows s + 1 + k BAND .. (zeros: H = I).
//   Z     (B, M, n) float32, n <= NMAX: the M vectors to transform, one per row (Zᵀ).
//   Y     (B, M, n): (Q Z)ᵀ.
// Launch: grid (B M 32, 1, 1), threadgroup (32, 1, 1): one simdgroup per vector. n < 3:
// no sweeps, Y = Z.
//
// Q Z = H[0,0] (H[0,1] (⋯ (H[last] Z))): the sweeps from the last to the first. A sweep's
// reflectors act on disjoint windows of rows (tick k on s + 1 + k BAND .. s + (k + 1) BAND),
// so they commute and are applied at once, lane l taking ticks l, l + 32, ...: per
// reflector y ← y − tau v (vᵀ y) over its at most BAND rows, by the lane alone (the dot
// product in four partial sums, then the update), 4 BAND flops. The vector lives in
// threadgroup memory for the whole kernel, entry j at j + j / 32, so that the 32 lanes'
// windows, BAND apart, fall in different banks (for BAND = 8 and 32); the sweep's
// reflectors are staged there too, 32 ticks at a time (a chunk), read coalesced from
// device memory and then each lane's own (stride BAND + 1: again one bank per lane); the
// next chunk is loaded into registers while this one is applied, so its latency is off
// the chain. Simdgroup barriers separate a stage's writes from its reads and one sweep
// from the next, whose windows overlap this one's. 2 n² flops per vector for n² / (2 BAND)
// reflectors, in n - 2 dependent steps (the sweeps) instead of one per reflector. H200,
// Q₂ Z for Z n x n at n = 1024 / 2048 / 4096: 1.70 / 8.51 / 56.1 ms; the earlier kernel,
// one reflector at a time (the lanes on its rows, a simd_sum each, the vector in device
// memory), 6.72 / 36.5 / 185; this one without the prefetch 3.43 / 11.4 / 127.
// Threadgroup memory: NMAX + NMAX / 32 + 32 (BAND + 1) floats (21 KB at NMAX = 4096).

constexpr int STAGE = 32 * (BAND + 1);
constexpr int PER_LANE = (STAGE + 31) / 32;  // the stage's entries each lane loads
threadgroup float ys[NMAX + NMAX / 32];
threadgroup float stage[PER_LANE * 32];

const int sweeps = reflectors_shape[1];
const int ticks = reflectors_shape[2];
const int n = Z_shape[2];
const int lane = (int)thread_index_in_simdgroup;
const size_t row = (size_t)threadgroup_position_in_grid.x;  // (b, vector) flattened
const size_t rows = (size_t)Z_shape[0] * (size_t)Z_shape[1];
if (row < rows && n <= NMAX && n >= 3) {  // uniform over the threadgroup
  const size_t b = row / (size_t)Z_shape[1];
  const device float* z = Z + row * (size_t)n;
  device float* y = Y + row * (size_t)n;
  for (int i = lane; i < n; i += 32) {
    ys[i + (i >> 5)] = z[i];
  }
  const device float* kept = reflectors + b * (size_t)sweeps * (size_t)ticks * (BAND + 1);
  // Chunks (sweep s, first tick k0) in order: s from n - 3 down to 0, k0 = 0, 32, ... while
  // tick k0 is in the matrix. The next chunk's records are loaded into registers while
  // this one is applied (their latency off the chain of sweeps); records past the last
  // tick read as zeros (tau = 0: skipped).
  float next[PER_LANE];
  int s = n - 3;
  int k0 = 0;
  LA_UNROLL
  for (int q = 0; q < PER_LANE; ++q) {
    const int e = lane + 32 * q;
    next[q] = e < metal::min(32, ticks) * (BAND + 1) ? kept[(size_t)s * ticks * (BAND + 1) + e] : 0.0f;
  }
  while (s >= 0) {
    int ns = s;
    int nk0 = k0 + 32;
    if (nk0 >= ticks || s + 1 + nk0 * BAND >= n - 1) {
      ns = s - 1;
      nk0 = 0;
    }
    // The previous chunk's reads of the stage and writes of ys, before the stage changes
    // and before this chunk reads ys (the sweeps' windows overlap).
    simdgroup_barrier(mem_flags::mem_threadgroup);
    LA_UNROLL
    for (int q = 0; q < PER_LANE; ++q) {
      stage[lane + 32 * q] = next[q];
    }
    simdgroup_barrier(mem_flags::mem_threadgroup);
    if (ns >= 0) {
      const device float* h = kept + ((size_t)ns * ticks + nk0) * (BAND + 1);
      const int count = metal::min(32, ticks - nk0) * (BAND + 1);
      LA_UNROLL
      for (int q = 0; q < PER_LANE; ++q) {
        const int e = lane + 32 * q;
        next[q] = e < count ? h[e] : 0.0f;
      }
    }
    // Tick k0 + lane of sweep s: y <- y - tau v (v^T y) on its window, held in registers.
    const int st = s + 1 + (k0 + lane) * BAND;
    const LA_TG float* v = stage + lane * (BAND + 1);
    const float tau = v[BAND];
    if (st < n - 1 && tau != 0.0f) {
      float w[BAND];
      float dot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      LA_UNROLL
      for (int i = 0; i < BAND; ++i) {
        const int j = st + i;
        w[i] = j < n ? ys[j + (j >> 5)] : 0.0f;
        dot[i & 3] = metal::fma(v[i], w[i], dot[i & 3]);
      }
      const float scale = tau * ((dot[0] + dot[1]) + (dot[2] + dot[3]));
      LA_UNROLL
      for (int i = 0; i < BAND; ++i) {
        const int j = st + i;
        if (j < n) {
          ys[j + (j >> 5)] = metal::fma(-scale, v[i], w[i]);
        }
      }
    }
    s = ns;
    k0 = nk0;
  }
  simdgroup_barrier(mem_flags::mem_threadgroup);
  for (int i = lane; i < n; i += 32) {
    y[i] = ys[i + (i >> 5)];
  }
} else if (row < rows && n <= NMAX) {  // n < 3: no sweeps, Q = I
  const device float* z = Z + row * (size_t)n;
  device float* y = Y + row * (size_t)n;
  for (int i = lane; i < n; i += 32) {
    y[i] = z[i];
  }
}
