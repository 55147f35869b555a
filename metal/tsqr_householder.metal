// @kernel tsqr_householder
// @inputs Q1:float32 R:float32
// @outputs Rh:float32 V:float32 T:float32 tau:float32 Uinv:float32
// @template NB:int SQUARE:bool
// @check NB=8,SQUARE=false NB=32,SQUARE=true NB=32,SQUARE=false NB=64,SQUARE=false
//
// Householder reconstruction of a TSQR panel, its b x b top block (Ballard, Demmel,
// Grigori, Jacobsen, Knight & Nguyen, "Reconstructing Householder vectors from Tall-Skinny
// QR", JPDC 85, 2015, "Modified LU"), one threadgroup per matrix.
//
// Contract (b = NB <= 64)
//   Q1      (B, b, b): the top b rows of the panel's explicit thin Q (orthonormal columns).
//   R       (B, b, b): the panel's TSQR R (upper triangular; only the upper triangle read).
//   The LU without pivoting Q1 - S = L U, S = diag(s), s_k = -sign(d_k) (sign(0) = +1)
//   with d_k the k-th pivot of Q1's elimination before s_k is subtracted, so that
//   |U_kk| = 1 + |d_k| >= 1 (the stable choice, and LAPACK's: tau_k = 1 + |d_k| in
//   [1, 2]). With SQUARE (the panel is b x b: its last reflector has nothing below the
//   diagonal, which geqr2 makes the identity) the last sign is s = +sign(d), so that
//   U's last pivot and T's last column vanish; T's last column and tau are then set to 0.
//   Rh      (B, b, b): geqr2's R, R_h = S R (upper triangular, zeros below).
//   V       (B, b, b): the reflectors' top block: L with a unit diagonal, zeros above.
//   T       (B, b, b): the compact-WY T = -U S L⁻ᵀ (upper triangular, zeros below).
//   tau     (B, b): T's diagonal.
//   Uinv    (B, b, b): U⁻¹ (upper triangular, zeros below): the rest of the panel's
//           reflectors are Y₂ = Q₂ U⁻¹. Not finite in its last column with SQUARE (U's last
//           pivot is zero there; there is no Q₂).
//   Then I - V T Vᵀ (V extended by Y₂) = H₁ ⋯ H_b and the panel is (I - V T Vᵀ) [R_h; 0];
//   geqr2's packed top block is R_h on and above the diagonal, V below.
//   NaN/Inf entries propagate within their own matrix; every loop is bounded by b.
// Launch: grid (B * W, 1, 1), threadgroup (W, 1, 1), W = 32 * ceil(b / 32): thread i owns
//   row i of the elimination and of T, column i of U⁻¹.
// Algorithm: (1) right-looking elimination without pivoting in threadgroup memory (row
//   stride b + 1: a column read by all rows hits distinct banks), one barrier per step;
//   (2) U⁻¹ by back substitution, one column per thread; (3) T row by row from
//   T Lᵀ = -U S (forward substitution along the row, in place of U's row). 2b³/3 + b³/3 +
//   b³/3 flops.
// Memory traffic: 2 b² floats read, 4 b² + b written.

constexpr int S = NB + 1;
threadgroup float tile[NB * S];
threadgroup float signs[NB];

const int batch = Q1_shape[0];
const uint g = threadgroup_position_in_grid.x;
if (g >= (uint)batch) {
  return;
}
const int tid = (int)thread_index_in_threadgroup;
const int nthreads = (int)threads_per_threadgroup.x;
const size_t base = (size_t)g * (size_t)(NB * NB);

for (int e = tid; e < NB * NB; e += nthreads) {
  tile[(e / NB) * S + e % NB] = Q1[base + e];
}
threadgroup_barrier(mem_flags::mem_threadgroup);

// (1) Elimination: at step k every thread reads the pivot row k (written by its owner at
// step k - 1, before the barrier) and thread i > k updates its own row.
const int i = tid;
float s_own = 0.0f;
for (int k = 0; k < NB; ++k) {
  const float d = tile[k * S + k];
  const bool flip = SQUARE && k == NB - 1;
  const float s = (d >= 0.0f) != flip ? -1.0f : 1.0f;
  const float pivot = d - s;
  if (i == k) {
    s_own = s;
  }
  if (i > k && i < NB) {
    const float l = tile[i * S + k] / pivot;
    tile[i * S + k] = l;
    for (int j = k + 1; j < NB; ++j) {
      tile[i * S + j] = metal::fma(-l, tile[k * S + j], tile[i * S + j]);
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}
if (i < NB) {
  tile[i * S + i] -= s_own;  // U's diagonal: Q1 - S's pivots
  signs[i] = s_own;
}
threadgroup_barrier(mem_flags::mem_threadgroup);

// R_h and V, coalesced.
for (int e = tid; e < NB * NB; e += nthreads) {
  const int r = e / NB;
  const int c = e - r * NB;
  const float l = tile[r * S + c];
  Rh[base + e] = c < r ? 0.0f : signs[r] * R[base + e];
  V[base + e] = c < r ? l : (c == r ? 1.0f : 0.0f);
}

// (2) U⁻¹, column i: x_i = 1 / U_ii, x_r = -(Σ_{c=r+1..i} U_rc x_c) / U_rr for r < i, read
// back from this thread's own writes.
if (i < NB) {
  for (int r = NB - 1; r > i; --r) {
    Uinv[base + (size_t)(r * NB + i)] = 0.0f;
  }
  Uinv[base + (size_t)(i * NB + i)] = 1.0f / tile[i * S + i];
  for (int r = i - 1; r >= 0; --r) {
    float sum = 0.0f;
    for (int c = r + 1; c <= i; ++c) {
      sum = metal::fma(tile[r * S + c], Uinv[base + (size_t)(c * NB + i)], sum);
    }
    Uinv[base + (size_t)(r * NB + i)] = -sum / tile[r * S + r];
  }
}
threadgroup_barrier(mem_flags::mem_threadgroup);

// (3) T's row i in place of U's: T_ik = -U_ik s_k - Σ_{m=i..k-1} L_km T_im (L's strict
// lower triangle is read only; row i's upper part is this thread's alone).
if (i < NB) {
  for (int k = i; k < NB; ++k) {
    float t = -tile[i * S + k] * signs[k];
    for (int m = i; m < k; ++m) {
      t = metal::fma(-tile[k * S + m], tile[i * S + m], t);
    }
    tile[i * S + k] = SQUARE && k == NB - 1 ? 0.0f : t;
  }
}
threadgroup_barrier(mem_flags::mem_threadgroup);
for (int e = tid; e < NB * NB; e += nthreads) {
  const int r = e / NB;
  const int c = e - r * NB;
  T[base + e] = c < r ? 0.0f : tile[r * S + c];
}
if (i < NB) {
  tau[(size_t)g * NB + i] = tile[i * S + i];
}
