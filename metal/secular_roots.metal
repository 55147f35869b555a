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
// The secular function increases between two poles, so the thread halves its bracket 80
// times, float32's need (tridiagonal_dc._secular_steps), each halving one pass over the k
// poles: 80 k divisions per root, with nothing but the root read back (the MLX-op
// version moves k² floats per halving).

constexpr int STEPS = 80;
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
    for (int step = 0; step < STEPS; ++step) {
      t = 0.5f * (lo + hi);
      f = 1.0f;
      for (int i = 0; i < k; ++i) {
        if (zm[i] != 0.0f) {
          f += r * zm[i] * zm[i] / ((dm[i] - o) - t);
        }
      }
      if (f < 0.0f) {
        lo = t;
      } else {
        hi = t;
      }
    }
    t = 0.5f * (lo + hi);
  }
  origin[gid] = o;
  tau[gid] = t;
}
