// One-sided (Hestenes) Jacobi sweeps in the registers of one simdgroup, shared by
// jacobi_eigh_simd.metal and jacobi_svd_simd.metal. Needs linalg_common.h and
// jacobi_common.h (la_jacobi_rotation, LA_JACOBI_TINY2) before it.
//
// Layout: one simdgroup (32 lanes) per matrix; lane i holds row i of the working matrix W
// (M <= 32 rows, NP columns) and row i of V in register arrays w[NP], v[NP], NP a power of
// two in [2, 32]. Rows >= M and columns >= N are zero: a zero column never rotates, so the
// padding columns are the dummies of the tournament. The arrays are indexed only by
// compile-time constants (every loop over columns is unrolled), so they stay in registers.
//
// Ordering (round-robin "circle" tournament with fixed pair slots). Round r rotates the
// column pairs in the slots (2g, 2g + 1), g < NP / 2; then the columns move one step along
// the cycle of slots 1 -> 2 -> 4 -> ... -> NP-2 -> NP-1 -> NP-3 -> ... -> 3 -> 1 (slot 0
// stays). Numbering the cycle c_0 = 1, c_g = 2g, c_{NP-1-g} = 2g + 1 (g >= 1), slot pair g
// is (c_g, c_{NP-1-g}) (and (0, c_0)): the standard circle method, in which column a
// (cycle position a at round 0) meets column b in the round r with a + b = -2r mod
// (NP - 1) and the fixed column meets a when 2a = -2r. NP - 1 is odd, so every pair meets
// exactly once in the NP - 1 rounds of a sweep, and after a sweep every column is back in
// its slot. The round body is the same code every round (the move is a fixed register
// permutation, fused with the rotation's writes), so the round loop is not unrolled.
//
// Per round, each lane forms its row's terms of alpha_g = |w_p|², beta_g = |w_q|²,
// gamma_g = w_p·w_q for all NP / 2 pairs; a reduce-scatter over the 32 lanes (exchange
// half of the values with lane ^ 16, half of the rest with lane ^ 8, ... until each lane
// holds one pair, then full butterflies on those three) leaves the sums of pair g in the
// 32 / (NP / 2) lanes g·32/(NP/2) ...: 3·NP/2 - 3 + 3·(5 - log2(NP/2)) shuffles in all
// (48 at NP = 32) instead of 5 per value. The first exchange selects the row entries
// (4 selects per two pairs rather than 6 on the products) and adds the kept product with
// a fused multiply-add (measured on an H200 at 10000x32x32: eigh 1.61 -> 1.48 ms). Those lanes compute the rotation as
// la_jacobi_rotation (the same threshold test), the first of them writes (s, τ),
// τ = s / (1 + c), to a small threadgroup array (double-buffered, alternating every
// round, so one simdgroup barrier per round suffices), and every lane reads all of them (broadcast
// float4 reads: two pairs each) and applies every rotation to its row of W and V in
// Rutishauser's update form p' = p - s(q + τp), q' = q + s(p - τq) (no rotation: s = τ = 0,
// exactly the identity). Per round and lane: 3·NP/2 products, 48 shuffles, NP/4 shared
// loads, 2·NP (W) + 2·NP (V) fused multiply-adds; no local memory.

#ifndef LA_NO_UNROLL
#if defined(__CUDACC__)
#define LA_NO_UNROLL _Pragma("unroll 1")
#elif defined(__METAL_VERSION__)
#define LA_NO_UNROLL _Pragma("clang loop unroll(disable)")
#else
#define LA_NO_UNROLL
#endif
#endif

// The slot that the column in slot s moves to after a round (the circle's cycle above).
LA_INLINE int la_circle_next(int np, int s) {
  if (s == 0) {
    return 0;
  }
  if (s & 1) {
    return s == 1 ? (np >= 4 ? 2 : 1) : s - 2;
  }
  return s == np - 2 ? np - 1 : s + 2;
}

// Sums over the 32 lanes of x_g = w[2g]², y_g = w[2g + 1]², z_g = w[2g]·w[2g + 1] by
// reduce-scatter: on return (alpha, beta, gamma) are the three sums of pair g (also
// returned), held by the 32 / (NP / 2) lanes with lane >> (5 - log2(NP / 2)) = g.
// Every lane that holds pair g holds bitwise the same sums: each step adds the partner's
// value to its own, and the two partners of a full butterfly add the same two numbers
// (floating-point addition is commutative). Call from all 32 lanes.
template <int NP>
LA_INLINE void la_simd_pair_sums(const thread float (&w)[NP], uint lane, thread float& alpha,
                                 thread float& beta, thread float& gamma, thread int& g) {
  constexpr int H = NP / 2;
  float x[H];
  float y[H];
  float z[H];
  g = 0;
  int first = 0;
  if (H > 1) {
    // First halving step, with the products formed as they are sent or kept.
    const bool upper = (lane & 16u) != 0;
    g = upper ? H / 2 : 0;
    first = 1;
    LA_UNROLL
    for (int j = 0; j < H / 2; ++j) {
      const float pl = w[2 * j];
      const float ql = w[2 * j + 1];
      const float ph = w[2 * (j + H / 2)];
      const float qh = w[2 * (j + H / 2) + 1];
      const float sp = upper ? pl : ph;
      const float sq = upper ? ql : qh;
      const float kp = upper ? ph : pl;
      const float kq = upper ? qh : ql;
      x[j] = metal::fma(kp, kp, simd_shuffle_xor(sp * sp, (ushort)16));
      y[j] = metal::fma(kq, kq, simd_shuffle_xor(sq * sq, (ushort)16));
      z[j] = metal::fma(kp, kq, simd_shuffle_xor(sp * sq, (ushort)16));
    }
  } else {
    x[0] = w[0] * w[0];
    y[0] = w[1] * w[1];
    z[0] = w[0] * w[1];
  }
  LA_UNROLL
  for (int step = 0; step < 5; ++step) {
    if (step < first) {
      continue;
    }
    const ushort mask = (ushort)(16 >> step);
    const int h = H >> step;  // values per array held before this step
    if (h > 1) {
      // Keep the lower half (mask bit clear) or the upper half; send the other half.
      const bool upper = (lane & mask) != 0;
      g += upper ? h / 2 : 0;
      LA_UNROLL
      for (int j = 0; j < 16; ++j) {
        if (j < h / 2) {
          const float sx = upper ? x[j] : x[j + h / 2];
          const float sy = upper ? y[j] : y[j + h / 2];
          const float sz = upper ? z[j] : z[j + h / 2];
          const float kx = upper ? x[j + h / 2] : x[j];
          const float ky = upper ? y[j + h / 2] : y[j];
          const float kz = upper ? z[j + h / 2] : z[j];
          x[j] = kx + simd_shuffle_xor(sx, mask);
          y[j] = ky + simd_shuffle_xor(sy, mask);
          z[j] = kz + simd_shuffle_xor(sz, mask);
        }
      }
    } else {
      x[0] += simd_shuffle_xor(x[0], mask);
      y[0] += simd_shuffle_xor(y[0], mask);
      z[0] += simd_shuffle_xor(z[0], mask);
    }
  }
  alpha = x[0];
  beta = y[0];
  gamma = z[0];
}

// Runs the sweeps on w (and v when WANT_V); returns the number of sweeps made, negated
// if the last one still rotated. `rot` is a threadgroup array of 2·max(NP / 4, 1) float4.
// Call from all 32 lanes of the simdgroup (the threadgroup is that one simdgroup).
template <int NP, bool WANT_V>
LA_INLINE int la_simd_jacobi_sweeps(thread float (&w)[NP], thread float (&v)[NP],
                                    LA_TG float4* rot, float tol, int max_sweeps, uint lane) {
  constexpr int H = NP / 2;
  constexpr int Q = H >= 2 ? H / 2 : 1;  // float4 slots per buffer
  // Buffer parity alternates over all rounds, across sweeps too (NP - 1 is odd), so the
  // barrier of round t + 1 orders round t's reads before round t + 2's writes.
  int parity = 0;
  for (int sweep = 1; sweep <= max_sweeps; ++sweep) {
    bool rotated = false;
    LA_NO_UNROLL
    for (int r = 0; r < NP - 1; ++r) {
      float alpha;
      float beta;
      float gamma;
      int g;
      la_simd_pair_sums<NP>(w, lane, alpha, beta, gamma, g);
      float c;
      float s;
      rotated = la_jacobi_rotation(alpha, beta, gamma, tol, c, s) || rotated;
      const float tau = s / (1.0f + c);
      LA_TG float4* buf = rot + parity * Q;
      parity ^= 1;
      if ((lane & (uint)(32 / H - 1)) == 0) {
        if (g & 1) {
          buf[g >> 1].z = s;
          buf[g >> 1].w = tau;
        } else {
          buf[g >> 1].x = s;
          buf[g >> 1].y = tau;
        }
      }
      simdgroup_barrier(mem_flags::mem_threadgroup);
      // Rotate every pair and move each column to its next slot (fused).
      float nw[NP];
      float nv[NP];
      LA_UNROLL
      for (int k = 0; k < H; ++k) {
        const float4 f = buf[k >> 1];
        const float rs = (k & 1) ? f.z : f.x;
        const float rt = (k & 1) ? f.w : f.y;
        const float p = w[2 * k];
        const float q = w[2 * k + 1];
        nw[la_circle_next(NP, 2 * k)] = metal::fma(-rs, metal::fma(rt, p, q), p);
        nw[la_circle_next(NP, 2 * k + 1)] = metal::fma(rs, metal::fma(-rt, q, p), q);
        if (WANT_V) {
          const float pv = v[2 * k];
          const float qv = v[2 * k + 1];
          nv[la_circle_next(NP, 2 * k)] = metal::fma(-rs, metal::fma(rt, pv, qv), pv);
          nv[la_circle_next(NP, 2 * k + 1)] = metal::fma(rs, metal::fma(-rt, qv, pv), qv);
        }
      }
      LA_UNROLL
      for (int k = 0; k < NP; ++k) {
        w[k] = nw[k];
        if (WANT_V) {
          v[k] = nv[k];
        }
      }
    }
    if (!simd_any(rotated)) {
      return sweep;
    }
  }
  return -max_sweeps;
}

// Exponent e with 2^e <= x < 2^(e+1) for x > 0, and 0 for x = 0: the matrix scaled by
// 2^-e (metal::ldexp, exact) has its largest entry in [1, 2).
LA_INLINE int la_scale_exponent(float largest) {
  int e = 0;
  const float m = metal::frexp(largest, e);
  return m > 0.0f ? e - 1 : 0;
}

// Rank of column `lane`, whose key is `mine` (the other keys come by shuffles, so no lane
// holds them all), among the keys of columns 0..N-1 (DESCENDING: larger first), ties by
// index, as la_rank; lanes >= N get N. Call from all 32 lanes.
template <int N, bool DESCENDING>
LA_INLINE int la_simd_rank(float mine, uint lane) {
  int rank = 0;
  LA_UNROLL
  for (int j = 0; j < N; ++j) {
    const float other = simd_shuffle(mine, (ushort)j);
    const bool before = DESCENDING ? (other > mine) : (other < mine);
    rank += (before || (other == mine && (uint)j < lane)) ? 1 : 0;
  }
  return lane < (uint)N ? rank : N;
}

// Writes column k of the lanes' rows x[k] (k < N, rows < R) as column rank_k of the
// row-major R x N matrix `out`, rank_k = my_rank of lane k: staged in `tile` (row stride
// 33) so the global stores are coalesced. Call from all 32 lanes.
template <int NP, int N, int R>
LA_INLINE void la_simd_store_columns(const thread float (&x)[NP], int my_rank,
                                     LA_TG float* tile, device float* out, uint lane) {
  LA_UNROLL
  for (int k = 0; k < N; ++k) {
    const int rank = simd_shuffle(my_rank, (ushort)k);
    if (lane < (uint)R) {
      tile[lane * 33 + rank] = x[k];
    }
  }
  simdgroup_barrier(mem_flags::mem_threadgroup);
  for (uint e = lane; e < (uint)(R * N); e += 32) {
    out[e] = tile[(e / N) * 33 + e % N];
  }
  simdgroup_barrier(mem_flags::mem_threadgroup);
}
