// One-sided (Hestenes) Jacobi sweeps shared by jacobi_svd.metal and jacobi_eigh.metal.
// Needs linalg_common.h (LA_INLINE, LA_TG) before it.
//
// The working matrix W (M x N, M >= N) lives column-major in threadgroup memory: column j
// is At[j * M .. j * M + M). Optionally V (N x N) likewise in Vt. A sweep visits every
// column pair once in NP - 1 rounds of NP / 2 disjoint pairs (round-robin "circle"
// ordering, NP = N rounded up to even; index N is a dummy when N is odd). A segment of L
// lanes owns pair g of each round: its lanes hold rows l, l + L, ... of the two columns,
// form alpha = |w_p|², beta = |w_q|², gamma = w_p·w_q with three segment sums, and
// apply the rotation that makes the two columns orthogonal (Rutishauser's formulas, as
// in Demmel & Veselić 1992) to W and V, in Rutishauser's update form
// p' = p - s·(q + τp), q' = q + s·(p - τq), τ = s / (1 + c): its rounding errors scale
// with the angle, so the many tiny late rotations barely disturb V's orthogonality
// (measured in float32 at n = 64: ‖I - VᵀV‖ 8x smaller than with c·p - s·q). Every lane
// computes the same rotation from the same (butterfly-reduced, hence lane-identical) sums.
// One threadgroup barrier per round.
//
// Rotation test (Demmel-Veselić): rotate only if |gamma| > tol·sqrt(alpha)·sqrt(beta) and
// both columns are above the underflow guard. The sweep loop ends after the first sweep
// with no rotation (then every pair passed the test: W's columns are orthogonal to tol)
// or after MAX sweeps. The cross-simdgroup "did anyone rotate" flag is a device-memory
// word (the caller's per-matrix info slot), because at M = N = 64 the two matrices fill
// all 32 KB of an Apple GPU's threadgroup memory.

// Squared column norm below which a column counts as numerically zero (the callers scale
// every matrix so that its largest entry lies in [1, 2)).
#define LA_JACOBI_TINY2 7.8886091e-31f

// The plane rotation [c s; -s c] that makes columns p and q orthogonal:
// p' = c·p - s·q, q' = s·p + c·q. Returns false (and c = 1, s = 0) when the pair already
// passes the test.
LA_INLINE bool la_jacobi_rotation(float alpha, float beta, float gamma, float tol,
                                  thread float& c, thread float& s) {
  c = 1.0f;
  s = 0.0f;
  if (!(alpha > LA_JACOBI_TINY2 && beta > LA_JACOBI_TINY2)) {
    return false;
  }
  if (!(metal::abs(gamma) > tol * metal::sqrt(alpha) * metal::sqrt(beta))) {
    return false;
  }
  const float zeta = (beta - alpha) / (2.0f * gamma);
  const float az = metal::abs(zeta);
  float t = az > 1.0e15f ? 0.5f / az : 1.0f / (az + metal::sqrt(1.0f + az * az));
  t = zeta < 0.0f ? -t : t;
  c = 1.0f / metal::sqrt(1.0f + t * t);
  s = c * t;
  return true;
}

// The pair (p, q), p < q, handled by simdgroup g in round r of the circle ordering over
// NP (even) indices.
LA_INLINE void la_jacobi_pair(int np, int r, int g, thread int& p, thread int& q) {
  int a;
  int b;
  if (g == 0) {
    a = np - 1;
    b = r;
  } else {
    a = (r + g) % (np - 1);
    b = (r + np - 1 - g) % (np - 1);
  }
  p = a < b ? a : b;
  q = a < b ? b : a;
}

// Sum over the L lanes of an aligned segment of a simdgroup (L a power of two <= 32),
// by butterfly: every lane of the segment gets the bitwise-same sum. All 32 lanes of the
// simdgroup must call it.
template <int L>
LA_INLINE float la_segment_sum(float x) {
  for (ushort off = L / 2; off > 0; off >>= 1) {
    x += simd_shuffle_xor(x, off);
  }
  return x;
}

// Runs the sweeps; returns the number of sweeps made, negated if the last one still
// rotated. Thread `tid` works on pair tid / L of each round, S rows of it: L lanes
// (an aligned segment of a simdgroup) share one pair, so a dot product costs log2(L)
// shuffles and a small matrix needs few threads. Threads beyond the last pair (the
// threadgroup is a whole number of simdgroups) and the dummy pair of an odd N join the
// shuffles with zero columns and never rotate. `flag` must hold 0 and the threadgroup must
// have passed a barrier since At (and Vt) were filled. Every thread calls this.
template <int M, int N, int L, bool WANT_V>
LA_INLINE int la_jacobi_sweeps(LA_TG float* At, LA_TG float* Vt, device int* flag, float tol,
                               int max_sweeps, uint tid) {
  constexpr int S = (M + L - 1) / L;
  constexpr int SV = (N + L - 1) / L;
  constexpr int NP = N + (N & 1);
  const int g = (int)(tid / L);
  const int sl = (int)(tid % L);
  // Row slot s of this lane holds row sl + L·((s + seg) mod S): the segments of one
  // simdgroup start at different slots, so one load instruction of the simdgroup touches
  // 32 different banks when M is a multiple of 32 (instead of 32 / L lanes per bank).
  const int seg = g % (32 / L);
  for (int sweep = 1; sweep <= max_sweeps; ++sweep) {
    bool rotated = false;
    for (int r = 0; r < NP - 1; ++r) {
      int p = 0;
      int q = 0;
      la_jacobi_pair(NP, r, g, p, q);
      const bool valid = g < NP / 2 && q < N;
      float xp[S];
      float xq[S];
      float alpha = 0.0f;
      float beta = 0.0f;
      float gamma = 0.0f;
      for (int s = 0; s < S; ++s) {
        const int row = sl + L * ((s + seg) % S);
        const bool in = valid && row < M;
        xp[s] = in ? At[p * M + row] : 0.0f;
        xq[s] = in ? At[q * M + row] : 0.0f;
        alpha = metal::fma(xp[s], xp[s], alpha);
        beta = metal::fma(xq[s], xq[s], beta);
        gamma = metal::fma(xp[s], xq[s], gamma);
      }
      alpha = la_segment_sum<L>(alpha);
      beta = la_segment_sum<L>(beta);
      gamma = la_segment_sum<L>(gamma);
      float c;
      float sn;
      if (valid && la_jacobi_rotation(alpha, beta, gamma, tol, c, sn)) {
        rotated = true;
        const float tr = sn / (1.0f + c);
        for (int s = 0; s < S; ++s) {
          const int row = sl + L * ((s + seg) % S);
          if (row < M) {
            At[p * M + row] = xp[s] - sn * metal::fma(tr, xp[s], xq[s]);
            At[q * M + row] = xq[s] + sn * metal::fma(-tr, xq[s], xp[s]);
          }
        }
        if (WANT_V) {
          for (int s = 0; s < SV; ++s) {
            const int row = sl + L * ((s + seg) % SV);
            if (row < N) {
              const float vp = Vt[p * N + row];
              const float vq = Vt[q * N + row];
              Vt[p * N + row] = vp - sn * metal::fma(tr, vp, vq);
              Vt[q * N + row] = vq + sn * metal::fma(-tr, vq, vp);
            }
          }
        }
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (rotated && sl == 0) {
      *flag = 1;
    }
    threadgroup_barrier(mem_flags::mem_device);
    const int any = *flag;
    threadgroup_barrier(mem_flags::mem_device);
    if (any == 0) {
      return sweep;
    }
    if (tid == 0) {
      *flag = 0;
    }
    threadgroup_barrier(mem_flags::mem_device);
  }
  return -max_sweeps;
}

// Rank of key `mine` (index i; ok false: not a column, rank 0) among keys[0..n) read from
// device memory by the L lanes of a segment: the number of keys that come before it
// (DESCENDING: larger first), ties broken by index. Every lane of the segment gets the
// same rank. All 32 lanes of the simdgroup must call it.
template <bool DESCENDING, int L>
LA_INLINE int la_rank(const device float* keys, int n, float mine, int i, bool ok, int sl) {
  float count = 0.0f;
  if (ok) {
    for (int j = sl; j < n; j += L) {
      const float other = keys[j];
      const bool before = DESCENDING ? (other > mine) : (other < mine);
      count += (before || (other == mine && j < i)) ? 1.0f : 0.0f;
    }
  }
  return (int)la_segment_sum<L>(count);
}
