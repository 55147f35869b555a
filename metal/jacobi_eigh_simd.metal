// @kernel jacobi_eigh_simd
// @inputs A:float32
// @outputs W:float32 V:float32 info:int32
// @template N:int NP:int WANT_V:bool MAX_SWEEPS:int
// @headers linalg_common.h jacobi_common.h jacobi_simd.h
// @check N=5,NP=8,WANT_V=true,MAX_SWEEPS=30 N=16,NP=16,WANT_V=true,MAX_SWEEPS=30 N=32,NP=32,WANT_V=true,MAX_SWEEPS=30 N=32,NP=32,WANT_V=false,MAX_SWEEPS=30 N=1,NP=2,WANT_V=true,MAX_SWEEPS=30
//
// Symmetric eigendecomposition of a stack of small matrices (N <= 32) by one-sided Jacobi
// on a shifted copy, one simdgroup per matrix with the matrix in registers.
//
// Contract
//   A     (B, N, N) row-major, raw (no scaling needed): only the lower triangle is read
//         (the matrix used is tril(A) + tril(A, -1)ᵀ); the upper triangle may hold
//         anything, Inf and NaN included.
//   W     (B, N) eigenvalues, ascending (ties keep column order).
//   V     (B, N, N): column k is the unit eigenvector of W[k] (the layout eigh returns).
//         (1,) holding 0 when !WANT_V.
//   info  (B,) sweeps made; negative when MAX_SWEEPS ran out first; 0 for a matrix with a
//         non-finite entry in its lower triangle, whose W and V entries are all NaN.
//   Threadgroup (32, 1, 1), grid (B·32, 1, 1). NP: a power of two, max(N, 2) <= NP <= 32.
//
// Algorithm
//   Load (coalesced, staged in threadgroup memory); lane i takes row i of the symmetric
//   matrix, every lower-triangle entry is checked finite (simd_all) and the matrix is
//   scaled by 2^-e with 2^e <= max|a| < 2^(e+1) (metal::ldexp: exact), so no squared norm
//   overflows or underflows. With c = |A|_F, A + cI is positive semidefinite; one-sided
//   Jacobi (jacobi_simd.h) on W = (A + cI)·V makes W's columns orthogonal, i.e.
//   Vᵀ(A + cI)²V diagonal: the columns of V are eigenvectors of A (the implicit cyclic
//   Jacobi method on (A + cI)², Veselić & Hari 1989). Eigenvalue k: the Rayleigh quotient
//   v_kᵀw_k - c (|w_k| - c without vectors), times 2^e. Then a rank sort (ascending, ties
//   by index) and coalesced writes staged through threadgroup memory.
//   Traffic: A read once (N² floats), W and V written once. Registers per lane: w[NP],
//   v[NP] and the round's temporaries (about 3·NP); no local memory.

constexpr int TS = 33;  // row stride of the staging tile (conflict-free column reads)
constexpr int RQ = NP >= 4 ? NP / 4 : 1;

threadgroup float tile[32 * TS];
threadgroup float4 rot[2 * RQ];

const uint b = threadgroup_position_in_grid.x;
const uint nb = (uint)A_shape[0];
if (b >= nb) {
  return;
}
const uint lane = thread_index_in_simdgroup;

if (!WANT_V && b == 0 && lane == 0) {
  V[0] = 0.0f;
}

// Coalesced load of the raw matrix; lane i then takes row i of the symmetric matrix.
const device float* a = A + (size_t)b * (N * N);
for (uint e = lane; e < (uint)(N * N); e += 32) {
  tile[(e / N) * TS + e % N] = a[e];
}
simdgroup_barrier(mem_flags::mem_threadgroup);
float w[NP];
float v[NP];
bool finite = true;
float largest = 0.0f;
LA_UNROLL
for (int k = 0; k < NP; ++k) {
  float x = 0.0f;
  if (k < N && lane < (uint)N) {
    x = lane >= (uint)k ? tile[lane * TS + k] : tile[k * TS + lane];
  }
  finite = finite && metal::isfinite(x);
  largest = metal::max(largest, metal::abs(x));
  w[k] = x;
}
finite = simd_all(finite);

device float* w_out = W + (size_t)b * N;
device float* v_out = V + (size_t)b * (WANT_V ? N * N : 0);
if (!finite) {
  const float nan_value = la_nan();
  for (uint e = lane; e < (uint)N; e += 32) {
    w_out[e] = nan_value;
  }
  if (WANT_V) {
    for (uint e = lane; e < (uint)(N * N); e += 32) {
      v_out[e] = nan_value;
    }
  }
  if (lane == 0) {
    info[b] = 0;
  }
  return;
}

// Scale by 2^-e; shift c = |A|_F (of the scaled matrix) onto the diagonal.
const int ex = la_scale_exponent(simd_max(largest));
float ss = 0.0f;
LA_UNROLL
for (int k = 0; k < NP; ++k) {
  w[k] = metal::ldexp(w[k], -ex);
  ss = metal::fma(w[k], w[k], ss);
}
const float shift = metal::sqrt(simd_sum(ss));
LA_UNROLL
for (int k = 0; k < NP; ++k) {
  const bool diag = (uint)k == lane && k < N;
  w[k] = diag ? w[k] + shift : w[k];
  v[k] = diag ? 1.0f : 0.0f;
}

// Rotation threshold sqrt(N)·eps: above the rounding noise of an N-term dot product.
const float tol = metal::sqrt((float)N) * 1.1920929e-7f;
const int sweeps = la_simd_jacobi_sweeps<NP, WANT_V>(w, v, rot, tol, MAX_SWEEPS, lane);

// Eigenvalues (lane k keeps its own), ranks, and the writes.
float mine = 0.0f;
LA_UNROLL
for (int k = 0; k < NP; ++k) {
  const float d = simd_sum(WANT_V ? v[k] * w[k] : w[k] * w[k]);
  mine = (uint)k == lane ? (WANT_V ? d : metal::sqrt(d)) - shift : mine;
}
const int my_rank = la_simd_rank<N, false>(mine, lane);
if (lane < (uint)N) {
  w_out[my_rank] = metal::ldexp(mine, ex);
}
if (WANT_V) {
  la_simd_store_columns<NP, N, N>(v, my_rank, tile, v_out, lane);
}
if (lane == 0) {
  info[b] = sweeps;
}
