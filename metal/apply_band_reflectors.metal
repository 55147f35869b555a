// @kernel apply_band_reflectors
// @inputs reflectors:float32 Z:float32
// @outputs Y:float32
// @template BAND:int
// @check BAND=8 BAND=32
//
// The back-transformation of stage 2 (band_to_tridiagonal.metal with WANT_Q): Q Z for the
// Q = H[0,0] H[0,1] ⋯ H[1,0] ⋯ whose reflectors that kernel kept, given and returned by
// rows (Zᵀ and (Q Z)ᵀ), so that each vector is contiguous.
//   reflectors  (B, S, K, BAND + 1): [b, s, k] = v (BAND entries, v[0] = 1) then tau of the
//         reflector of sweep s, tick k, acting on rows s + 1 + k BAND .. (zeros: H = I).
//   Z     (B, M, n) float32: the M vectors to transform, one per row (Zᵀ).
//   Y     (B, M, n): (Q Z)ᵀ.
// Launch: grid (B M 32 rounded up to T, 1, 1), threadgroup (T, 1, 1), T a multiple of 32:
// one simdgroup per vector, lane i on entry s + 1 + k BAND + i of each reflector's rows.
//
// Q Z = H[0,0] (H[0,1] (⋯ (H[last] Z))): the reflectors in reverse order, sweeps from the
// last, each sweep's ticks from its last; per reflector y ← y − tau v (vᵀ y) over its at
// most BAND rows: one load, one simd_sum and one store per lane, 4 BAND flops. The vector
// lives in Y (device memory; the window moves by one row from sweep to sweep, so it stays
// in cache), a simdgroup barrier between reflectors orders the lanes' writes. 2 n² flops
// per vector for n² / (2 BAND) reflectors.

const int sweeps = reflectors_shape[1];
const int ticks = reflectors_shape[2];
const int n = Z_shape[2];
const int vectors = Z_shape[1];
const int lane = (int)thread_index_in_simdgroup;
const size_t row = (size_t)thread_position_in_grid.x / 32;  // (b, vector) flattened
const size_t rows = (size_t)Z_shape[0] * (size_t)vectors;
if (row < rows) {  // uniform over the simdgroup
  const size_t b = row / (size_t)vectors;
  const device float* z = Z + row * (size_t)n;
  device float* y = Y + row * (size_t)n;
  for (int i = lane; i < n; i += 32) {
    y[i] = z[i];
  }
  const device float* kept = reflectors + b * (size_t)sweeps * (size_t)ticks * (BAND + 1);
  for (int s = n - 3; s >= 0; --s) {
    for (int k = ticks - 1; k >= 0; --k) {
      const int st = s + 1 + k * BAND;
      if (st >= n - 1) {
        continue;  // past the matrix: this sweep has no such tick (uniform)
      }
      const device float* h = kept + ((size_t)s * ticks + k) * (BAND + 1);
      const float tau = h[BAND];
      if (tau == 0.0f) {
        continue;  // H = I (uniform)
      }
      simdgroup_barrier(mem_flags::mem_device);  // the previous reflector's writes
      const bool mine = lane < BAND && st + lane < n;
      const float v = mine ? h[lane] : 0.0f;
      const float x = mine ? y[st + lane] : 0.0f;
      const float dot = simd_sum(v * x);
      if (mine) {
        y[st + lane] = x - tau * v * dot;
      }
    }
  }
}
