// @kernel band_chase_tiles
// @inputs work_in:float32 tiles:int32
// @outputs work_out:float32 kept:float32
// @template BAND:int WANT_Q:bool SWEEPS:int TICKS:int
// @headers linalg_common.h band_chase.h
// @check BAND=8,WANT_Q=true,SWEEPS=4,TICKS=6 BAND=32,WANT_Q=false,SWEEPS=8,TICKS=12 BAND=32,WANT_Q=true,SWEEPS=16,TICKS=16
//
// One step of stage 2's bulge chase spread over many threadgroups (SMs): the sweeps and
// global ticks of band_to_tridiagonal.metal cut into tiles of SWEEPS sweeps by TICKS
// ticks, a launch running some tiles at once, each on its own threadgroup. The launches
// and their tiles come from the host (band_chase_tiles.tile_schedule): tile (i, j), sweeps
// i SWEEPS .., ticks j TICKS .., runs in launch i + j, after (i - 1, j) and (i, j - 1),
// and the tiles of a launch touch disjoint columns, so each runs its ticks as the
// one-threadgroup kernel does, with the same arithmetic (the results are that kernel's,
// bit for bit, where the compiler contracts alike).
//   work_in   (B, n, 3 BAND + 1): the band being chased, band_to_tridiagonal.metal's
//             layout (column c: A[c + k, c] for k < 2 BAND, then sweep c's reflector and
//             tau), as the launch before left it.
//   tiles     (P, 8) int32, one row per tile slot: s0, s1, t0, t1 (sweeps s0 <= s < s1 at
//             global ticks t0 <= t < t1, tick k = t - 3 s of sweep s where it has one),
//             then two column ranges [lo, hi) the tile owns: every column its ticks touch
//             lies in one of them, and no other tile of the launch touches them. A slot
//             with s0 = s1 is empty.
//   work_out  (B, n, 3 BAND + 1): work_in after the launch's tiles. A tile copies the
//             columns it owns (float4 loads, several in flight: la_copy_span) before it
//             chases; threadgroups P .. (the copiers) copy every other column, striding
//             over the band's floats together, so each column is written by one
//             threadgroup.
//   kept      WANT_Q: (B, P, SWEEPS, TICKS, BAND + 1): [b, p, g, τ] = the reflector (v,
//             then tau) of sweep s0 + g at global tick t0 + τ of slot p's tile, zeros where
//             that sweep has no such tick. Otherwise (B, 1), written 0.
// Launch: grid (B Q 32 W, 1, 1), threadgroup (32 W, 1, 1) with Q >= P + 1 threadgroups a
// matrix (the first P its tiles, the rest copiers) and W simdgroups taking a tile's sweeps
// in turn (W = SWEEPS: one each). P <= 32 (the copiers keep the column ranges in
// threadgroup memory).

constexpr int STRIDE = LaChase<BAND>::STRIDE;
const int batch = work_in_shape[0];
const int n = work_in_shape[1];
const int slots = tiles_shape[0];
const int lane = (int)thread_index_in_simdgroup;
const int warp = (int)simdgroup_index_in_threadgroup;
const int warps = (int)simdgroups_per_threadgroup;
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const int per_matrix = (int)threadgroups_per_grid.x / batch;
const int m = (int)threadgroup_position_in_grid.x / per_matrix;
const int p = (int)threadgroup_position_in_grid.x - m * per_matrix;
threadgroup float shared[32 * 2 * 32];  // per simdgroup: the reflector v, then q
threadgroup int owned[4 * 32];          // copiers: the launch's owned column ranges
LA_TG float* vs = shared + warp * 64;
LA_TG float* qs = vs + 32;
if (m < batch) {
  const device float* in = work_in + (size_t)m * (size_t)n * (size_t)STRIDE;
  device float* w = work_out + (size_t)m * (size_t)n * (size_t)STRIDE;
  if (p < slots) {
    const device int* tile = tiles + 8 * p;
    const int s0 = tile[0];
    const int s1 = tile[1];
    const int t0 = tile[2];
    const int t1 = tile[3];
    // Loads in flight per thread of the copy. H100 (n = 4096 / 8192): with 16 the chase
    // keeping Q took 107 / 229 ms and the other 156 / 329; with 4, 112 / 258 and 108 / 231
    // (two runs; the second also without a gather per launch). nvcc (sm_90) gives the
    // kernel without Q 138 registers a thread with 16 and 96 with 4 (with Q 139 and 128).
    constexpr int COPY_DEPTH = WANT_Q ? 16 : 4;
    const size_t matrix = (size_t)m * (size_t)n * (size_t)STRIDE;
    for (int r = 0; r < 2; ++r) {
      la_copy_span<COPY_DEPTH>(work_in, work_out, matrix + (size_t)tile[4 + 2 * r] * STRIDE,
                   matrix + (size_t)tile[5 + 2 * r] * STRIDE, tid, nthreads);
    }
    device float* kept_tile =
        kept + ((size_t)m * slots + p) * (WANT_Q ? SWEEPS * TICKS * (BAND + 1) : 0);
    if (WANT_Q) {
      for (int i = tid; i < SWEEPS * TICKS * (BAND + 1); i += nthreads) {
        kept_tile[i] = 0.0f;
      }
    } else if (m == 0 && p == 0 && tid == 0) {
      kept[0] = 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_device);
    for (int t = t0; t < t1; ++t) {
      for (int s = s0 + warp; s < s1; s += warps) {
        const int k = t - 3 * s;
        if (k < 0 || k >= 1 + (n - 3 - s) / BAND) {
          continue;  // sweep s has not started or has ended (uniform over the simdgroup)
        }
        device float* slot = kept_tile + ((size_t)(s - s0) * TICKS + (t - t0)) * (BAND + 1);
        la_chase_tick<BAND, WANT_Q>(w, n, s, k, lane, vs, qs, slot);
      }
      threadgroup_barrier(mem_flags::mem_device);
    }
  } else {
    // A copier: the columns no tile owns, the copiers' threads striding over the band's
    // floats together, COPY_DEPTH loads in flight each.
    constexpr int COPY_DEPTH = 8;
    const int ranges = 2 * slots;
    for (int i = tid; i < 2 * ranges; i += nthreads) {
      owned[i] = tiles[8 * (i / 4) + 4 + i % 4];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const size_t total = (size_t)n * STRIDE;
    const size_t step = (size_t)(per_matrix - slots) * (size_t)nthreads;
    const size_t start = (size_t)(p - slots) * (size_t)nthreads + (size_t)tid;
    for (size_t base = start; base < total; base += COPY_DEPTH * step) {
      float x[COPY_DEPTH];
      bool mine[COPY_DEPTH];
      LA_UNROLL
      for (int u = 0; u < COPY_DEPTH; ++u) {
        const size_t i = base + u * step;
        const int c = (int)(i / STRIDE);
        mine[u] = i < total;
        for (int r = 0; r < ranges; ++r) {
          mine[u] = mine[u] && !(owned[2 * r] <= c && c < owned[2 * r + 1]);
        }
        x[u] = mine[u] ? in[i] : 0.0f;
      }
      LA_UNROLL
      for (int u = 0; u < COPY_DEPTH; ++u) {
        if (mine[u]) {
          w[base + u * step] = x[u];
        }
      }
    }
  }
}
