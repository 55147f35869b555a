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
