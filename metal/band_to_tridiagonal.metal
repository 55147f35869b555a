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
// A tick is la_chase_tick (band_chase.h), shared with band_chase_tiles.metal, which runs
// the same ticks on many threadgroups. A lane loads its row of D, then its row of B, from
// the work buffer into registers (all of a row's loads in flight at once), updates them
// there and writes them back; it holds one entry of each reflector, so BAND <= 32. B's
// column sums v2ᵀ B are a butterfly over
// the simdgroup's lanes (la_butterfly_sum). The simdgroup's reflector and q are also in
// threadgroup memory, where every lane reads them; simdgroup barriers separate the phases.
// nvcc (sm_90) gives it 96 (WANT_Q) and 128 registers per thread, so at most 512 threads
// a threadgroup on an H100. The first version streamed every entry from memory in each
// phase (48 registers): 4.8 to 5.2 times slower on the H100 (n = 1024: 58 against 12 ms,
// 4096: 809 against 157).

constexpr int STRIDE = LaChase<BAND>::STRIDE;  // work's entries per column
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
      device float* slot = kept + ((size_t)s * first_ticks + k) * (BAND + 1);
      la_chase_tick<BAND, WANT_Q>(w, n, s, k, lane, vs, qs, slot);
    }
    threadgroup_barrier(mem_flags::mem_device);
  }
  for (int i = tid; i < n; i += nthreads) {
    d[m * (size_t)n + (size_t)i] = w[(size_t)i * STRIDE];
    e[m * (size_t)n + (size_t)i] = i + 1 < n ? w[(size_t)i * STRIDE + 1] : 0.0f;
  }
}
