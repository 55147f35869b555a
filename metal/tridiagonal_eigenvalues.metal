// @kernel tridiagonal_eigenvalues
// @inputs d:float32 e:float32
// @outputs w:float32
// @headers linalg_common.h
//
// Eigenvalues of symmetric tridiagonal matrices by bisection on Sturm counts (LAPACK's
// sstebz with its pivot guard; Demmel, Applied Numerical Linear Algebra, §5.3.4): thread
// i of matrix b finds its i-th smallest eigenvalue on its own, so the output is ascending.
//   d  (B, n) float32: the diagonals.
//   e  (B, n) float32: the subdiagonals in e[0 .. n-2] (e[n-1] is not read).
//   w  (B, n): the eigenvalues, ascending; all NaN for a matrix with a NaN or Inf entry.
// Launch: grid (B n rounded up to T, 1, 1), threadgroup (T, 1, 1).
//
// Each thread scales its matrix by its largest entry (so e² neither over- nor
// underflows), brackets the spectrum by Gershgorin's discs, then halves its interval until
// it is no wider than 2 u max(|lo|, |hi|) + 2 u ‖T‖ (LAPACK's absolute tolerance at u ‖T‖
// and relative at 2 u): at most about 60 halvings. The Sturm count at x is the number of
// negative pivots of T − x I = L D Lᵀ, q_j = (d_j − x) − e_{j-1}² / q_{j-1}, a pivot of
// |q| < pivmin replaced by −pivmin (pivmin = least normal · max(1, max e²)); the count is
// exact for a matrix within a few ulps of T entry by entry (Kahan; Demmel, Dhillon & Ren,
// 1995), so each eigenvalue is within O(u ‖T‖) of T's, the accuracy of sstebz.

const int n = d_shape[1];
const size_t gid = (size_t)thread_position_in_grid.x;
const size_t batch = (size_t)d_shape[0];
if (gid < batch * (size_t)n) {
  const size_t b = gid / (size_t)n;
  const int i = (int)(gid - b * (size_t)n);
  const device float* dm = d + b * (size_t)n;
  const device float* em = e + b * (size_t)n;
  float scale = 0.0f;
  bool finite = true;
  for (int j = 0; j < n; ++j) {
    const float dj = dm[j];
    const float ej = j + 1 < n ? em[j] : 0.0f;
    finite = finite && metal::isfinite(dj) && metal::isfinite(ej);
    scale = metal::max(scale, metal::max(metal::abs(dj), metal::abs(ej)));
  }
  float result;
  if (!finite) {
    result = NAN;
  } else if (scale == 0.0f) {
    result = 0.0f;
  } else {
    const float inv = 1.0f / scale;
    // Gershgorin's bounds and pivmin of the scaled matrix (entries at most 1 in size).
    float lo = 0.0f;
    float hi = 0.0f;
    float largest_e2 = 0.0f;
    for (int j = 0; j < n; ++j) {
      const float dj = dm[j] * inv;
      const float below = j + 1 < n ? metal::abs(em[j] * inv) : 0.0f;
      const float above = j > 0 ? metal::abs(em[j - 1] * inv) : 0.0f;
      lo = j == 0 ? dj - below - above : metal::min(lo, dj - below - above);
      hi = j == 0 ? dj + below + above : metal::max(hi, dj + below + above);
      largest_e2 = metal::max(largest_e2, below * below);
    }
    const float eps = 5.9604645e-08f;  // u = 2⁻²⁴
    const float pivmin = 1.1754944e-38f * metal::max(1.0f, largest_e2);
    const float norm = metal::max(metal::abs(lo), metal::abs(hi));
    lo -= 2.0f * eps * norm * (float)n + pivmin;  // room for rounding in the bounds
    hi += 2.0f * eps * norm * (float)n + pivmin;
    const float abstol = 2.0f * eps * norm;
    for (int step = 0; step < 128; ++step) {
      if (hi - lo <= abstol + 2.0f * eps * metal::max(metal::abs(lo), metal::abs(hi))) {
        break;
      }
      const float x = 0.5f * (lo + hi);
      if (x <= lo || x >= hi) {
        break;  // adjacent floats
      }
      int below_x = 0;
      float q = 1.0f;
      for (int j = 0; j < n; ++j) {
        const float ej = j > 0 ? em[j - 1] * inv : 0.0f;
        q = (dm[j] * inv - x) - (j > 0 ? ej * ej / q : 0.0f);
        if (metal::abs(q) < pivmin) {
          q = -pivmin;
        }
        below_x += q < 0.0f ? 1 : 0;
      }
      if (below_x > i) {
        hi = x;
      } else {
        lo = x;
      }
    }
    result = 0.5f * (lo + hi) * scale;
  }
  w[gid] = result;
}
