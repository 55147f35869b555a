// Helpers of the band_to_tridiagonal kernel. Needs linalg_common.h (LA_INLINE) before it.

// LAPACK's slarfg on a vector held one entry per lane (lanes past its length hold 0):
// H = I - tau v vᵀ with v[0] = 1 maps x to beta e₀. The vector is scaled by its largest
// entry first, so no square over- or underflows. x = beta e₀ already (a zero tail) gives
// tau = 0, H = I, as LAPACK. A NaN anywhere gives NaN v, tau and beta, so it spreads to the
// rest of its matrix instead of being written over with zeros. Every lane must call it.
LA_INLINE float la_simd_householder(float x, uint lane, thread float& v, thread float& tau) {
  if (simd_any(metal::isnan(x))) {
    v = NAN;
    tau = NAN;
    return NAN;
  }
  const float alpha = simd_shuffle(x, (ushort)0);
  const float scale = simd_max(metal::abs(x));
  const float xs = scale > 0.0f ? x / scale : 0.0f;
  const float tail = simd_sum(lane > 0 ? xs * xs : 0.0f);
  if (tail == 0.0f) {
    v = lane == 0 ? 1.0f : 0.0f;
    tau = 0.0f;
    return alpha;
  }
  const float as = alpha / scale;
  const float beta = -metal::copysign(metal::sqrt(as * as + tail), as);
  tau = (beta - as) / beta;
  v = lane == 0 ? 1.0f : xs / (as - beta);
  return beta * scale;
}

// One stage of a sum over the simdgroup of SPAN values per lane (SPAN a power of two):
// lanes H apart add their values; where H < SPAN each keeps half of its entries (the
// upper half where lane bit H is set), so after the stages H = 16, 8, .., 1 lane l holds
// the sum of entry l mod SPAN in z[0].
template <int SPAN, int H>
LA_INLINE void la_butterfly_sum(thread float* z, uint lane) {
  if (H >= SPAN) {
    LA_UNROLL
    for (int j = 0; j < SPAN; ++j) {
      z[j] += simd_shuffle_xor(z[j], (ushort)H);
    }
  } else {
    const bool upper = (lane & H) != 0;
    LA_UNROLL
    for (int j = 0; j < H; ++j) {
      const float send = upper ? z[j] : z[j + H];
      const float keep = upper ? z[j + H] : z[j];
      z[j] = keep + simd_shuffle_xor(send, (ushort)H);
    }
  }
}

// The band's storage: column c of the work buffer holds A[c + k, c] for k < 2 BAND (the
// band and its bulges), then sweep c's current reflector (BAND entries) and its tau.
template <int BAND>
struct LaChase {
  static constexpr int WIDTH = 2 * BAND;       // stored subdiagonals of the band and bulges
  static constexpr int STRIDE = 3 * BAND + 1;  // work's entries per column
  // A lane's entries of a row: BAND, rounded up to a power of two for the butterfly.
  static constexpr int SPAN = BAND <= 2 ? 2 : BAND <= 4 ? 4 : BAND <= 8 ? 8 : BAND <= 16 ? 16 : 32;
};

// Tick k of sweep s of the bulge chase (band_to_tridiagonal.metal says what a tick does
// and why sweeps three ticks apart never touch the same entries) on the work buffer w of
// one n x n band matrix, by one simdgroup: it reads and writes column s (k = 0: the
// column it annihilates; every tick: the sweep's reflector there) and columns st .. ed
// (st = s + 1 + k BAND, ed = min(st + BAND - 1, n - 1)), nothing else. vs and qs: the
// simdgroup's 32 + 32 floats of threadgroup memory. WANT_Q: the tick's reflector (v, then
// tau) is written to slot[0 .. BAND]. Every lane of the simdgroup must call it.
template <int BAND, bool WANT_Q>
LA_INLINE void la_chase_tick(device float* w, int n, int s, int k, int lane, LA_TG float* vs,
                             LA_TG float* qs, device float* slot) {
  constexpr int WIDTH = LaChase<BAND>::WIDTH;
  constexpr int STRIDE = LaChase<BAND>::STRIDE;
  constexpr int SPAN = LaChase<BAND>::SPAN;
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

// dst[i] = src[i] for lo <= i < hi, by the nthreads threads of a threadgroup (tid its
// thread), COPY_DEPTH float4 loads in flight per thread where both buffers are 16-byte
// aligned (a single threadgroup copies up to a few hundred KB this way: one float per
// load in turn was slower than the work the copy precedes).
template <int COPY_DEPTH>
LA_INLINE void la_copy_span(const device float* src, device float* dst, size_t lo, size_t hi,
                            int tid, int nthreads) {
  const bool aligned = ((size_t)src % 16) == 0 && ((size_t)dst % 16) == 0;
  const size_t head = aligned ? metal::min((lo + 3) / 4 * 4, hi) : hi;
  const size_t tail = aligned ? metal::max(head, hi / 4 * 4) : hi;
  for (size_t i = lo + (size_t)tid; i < head; i += (size_t)nthreads) {
    dst[i] = src[i];
  }
  for (size_t i = tail + (size_t)tid; i < hi; i += (size_t)nthreads) {
    dst[i] = src[i];
  }
  const device float4* src4 = (const device float4*)src;
  device float4* dst4 = (device float4*)dst;
  const size_t step = (size_t)nthreads;
  for (size_t q = head / 4 + (size_t)tid; q < tail / 4; q += COPY_DEPTH * step) {
    float4 x[COPY_DEPTH];
    LA_UNROLL
    for (int u = 0; u < COPY_DEPTH; ++u) {
      if (q + u * step < tail / 4) {
        x[u] = src4[q + u * step];
      }
    }
    LA_UNROLL
    for (int u = 0; u < COPY_DEPTH; ++u) {
      if (q + u * step < tail / 4) {
        dst4[q + u * step] = x[u];
      }
    }
  }
}
