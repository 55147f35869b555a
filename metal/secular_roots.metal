// @kernel secular_roots
// @inputs d:float32 z:float32 rho:float32
// @outputs origin:float32 tau:float32
//
// The roots of the secular equations of a level of the tridiagonal divide and conquer
// (mlx_linalg/_gpu/tridiagonal_dc.py, step 3; LAPACK's slaed4), one thread per root:
// 1 + rho Σᵢ zᵢ² / (dᵢ − λ) = 0, whose root j lies between pole j and the next pole with
// zᵢ ≠ 0 (the last: below d[k−1] + rho ‖z‖²).
//   d      (M, k) float32: the poles, ascending.
//   z      (M, k): the deflated vector (entries exactly 0 are deflated poles, no root).
//   rho    (M,): ρ > 0.
//   origin, tau  (M, k): root j is origin + tau, origin the nearer end of its bracket (the
//          pole j or the next one), so that dᵢ − λⱼ = (dᵢ − origin) − tau keeps its
//          relative accuracy; origin = d[j], tau = 0 for a deflated j.
// Launch: grid (M k rounded up to T, 1, 1), threadgroup (T, 1, 1).
//
// The secular function f increases between two poles. From the middle of the bracket the
// thread iterates on tau with LAPACK slaed4's "middle way" (Li, "Solving secular equations
// stably and efficiently", LAPACK Working Note 89, 1994): the poles at or below the bracket
// (ψ) and above it (φ) are each modelled as a constant plus one rational term at the
// bracket's pole, matching f's value and derivative there, and the model's root is the next
// tau, which converges quadratically. Each evaluation of f also narrows the bracket (f's
// sign); a step that leaves it, or any NaN, halves it instead, so the iteration never does
// worse than bisection. It stops when f is zero to its rounding error (|f| <= 8 EPSILON
// (1 + Σ|terms|), slaed4's test), when tau moves by at most EPSILON relative, or after
// STEPS evaluations (tridiagonal_dc._secular_steps, enough for bisection alone): one pass
// over the k poles per evaluation, 3-4 on average (at most 8 on Gaussian poles, emulated)
// instead of 80.

constexpr int STEPS = 80;
constexpr float EPSILON = 1.1920929e-7f;  // float32's machine epsilon, 2^-23
const int k = d_shape[1];
const size_t gid = (size_t)thread_position_in_grid.x;
if (gid < (size_t)d_shape[0] * (size_t)k) {
  const size_t m = gid / (size_t)k;
  const int j = (int)(gid - m * (size_t)k);
  const device float* dm = d + m * (size_t)k;
  const device float* zm = z + m * (size_t)k;
  const float r = rho[m];
  float o = dm[j];
  float t = 0.0f;
  if (zm[j] != 0.0f) {
    int up = j + 1;
    while (up < k && zm[up] == 0.0f) {
      ++up;
    }
    float z2 = 0.0f;
    for (int i = 0; i < k; ++i) {
      z2 += zm[i] * zm[i];
    }
    const bool has_upper = up < k;
    const float upper = has_upper ? dm[up] : dm[k - 1] + r * z2;
    const float middle = 0.5f * (dm[j] + upper);
    float f = 1.0f;
    for (int i = 0; i < k; ++i) {
      if (zm[i] != 0.0f) {
        f += r * zm[i] * zm[i] / (dm[i] - middle);
      }
    }
    const bool from_lower = f > 0.0f || !has_upper;
    o = from_lower ? dm[j] : upper;
    const float half = 0.5f * (upper - dm[j]);
    float lo = from_lower ? 0.0f : -half;
    float hi = from_lower ? (has_upper ? half : upper - dm[j]) : 0.0f;
    t = from_lower ? half : -half;  // the bracket's middle
    const float low_pole = dm[j] - o;  // the bracket's poles, relative to the origin
    const float high_pole = upper - o;
    for (int step = 0; step < STEPS; ++step) {
      // f, and the derivatives of its parts ψ (poles i <= j) and φ (i > j), at tau = t.
      f = 1.0f;
      float dpsi = 0.0f;
      float dphi = 0.0f;
      float size = 1.0f;  // 1 + Σ |terms|: f's rounding error is about EPSILON times it
      for (int i = 0; i < k; ++i) {
        if (zm[i] != 0.0f) {
          const float inv = 1.0f / ((dm[i] - o) - t);
          const float term = r * zm[i] * zm[i] * inv;
          f += term;
          size += metal::fabs(term);
          if (i <= j) {
            dpsi += term * inv;
          } else {
            dphi += term * inv;
          }
        }
      }
      if (metal::fabs(f) <= 8.0f * EPSILON * size) {
        break;  // f is zero to its rounding error: t is the root (slaed4's test)
      }
      if (f < 0.0f) {
        lo = t;
      } else {
        hi = t;
      }
      // The model C + s/(δ_L − η) + S/(δ_U − η) = 0 (s = δ_L² ψ', S = δ_U² φ') as
      // C η² − A η + B = 0, its root between the poles (slaed4's a, b, c).
      const float del_lo = low_pole - t;
      float next;
      if (has_upper) {
        const float del_hi = high_pole - t;
        const float c = f - del_lo * dpsi - del_hi * dphi;
        const float a = (del_lo + del_hi) * f - del_lo * del_hi * (dpsi + dphi);
        const float b = del_lo * del_hi * f;
        const float root = metal::sqrt(metal::fabs(a * a - 4.0f * b * c));
        float eta = c == 0.0f ? b / a : a <= 0.0f ? (a - root) / (2.0f * c) : 2.0f * b / (a + root);
        if (f * eta >= 0.0f) {
          eta = -f / (dpsi + dphi);  // the model's root on the wrong side: a Newton step
        }
        next = t + eta;
      } else {
        // The last root: every pole below it, C + s/(δ_L − η) = 0, C = f − δ_L ψ'.
        next = t + del_lo + del_lo * del_lo * dpsi / (f - del_lo * dpsi);
      }
      if (!(next > lo && next < hi)) {
        next = 0.5f * (lo + hi);
      }
      const bool done = metal::fabs(next - t) <= EPSILON * metal::fabs(next);
      t = next;
      if (done) {
        break;
      }
    }
  }
  origin[gid] = o;
  tau[gid] = t;
}
